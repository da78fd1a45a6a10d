"""The device side of one process: agent runner + schedule, health.json, textfile, probes.

Built from the configuration and started/stopped as one unit by the exporter (`serve`) or by
the `agent` command. Rendering is injected (`attach_textfile`) so this package never imports
the metrics package; collectors read `agent_status` and `probe_status`.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from exporter.config import Config
from exporter.device.agent import AgentRunner
from exporter.device.health import HealthFile, health_document, read_counters
from exporter.device.probes import Prober
from exporter.device.status import AgentStatus, ProbeStatus
from exporter.device.textfile import CollisionCheck, TextfilePublisher, TextfileWriter
from exporter.resilience import ResilienceRegistry

if TYPE_CHECKING:  # apscheduler (4 MiB of RSS) is imported only when an agent is configured
    from apscheduler.triggers.base import BaseTrigger

    from exporter.device.schedule import AgentScheduler

log = logging.getLogger(__name__)

REGISTRY_TEXTFILE = "resilience_exporter.prom"


def agent_textfile_name(agent_name: str) -> str:
    """`role_agent_<name>.prom`, the default file of the standalone `agent` command."""
    return "role_agent_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in agent_name) + ".prom"


class DeviceSide:
    """Owns the device components a configuration asks for; none when it asks for none."""

    def __init__(self, config: Config, registry: ResilienceRegistry) -> None:
        self.config = config
        self.agent_status: AgentStatus | None = None
        self.runner: AgentRunner | None = None
        self.scheduler: AgentScheduler | None = None
        self.health: HealthFile | None = None
        self.textfile: TextfileWriter | None = None
        self.publisher: TextfilePublisher | None = None
        self.probe_status = ProbeStatus()
        self.prober = Prober(config.probes, self.probe_status, registry) if config.probes else None
        agent = config.agent
        if agent.command:
            self.agent_status = AgentStatus(agent.name, config.host)
            self.runner = AgentRunner(agent, self.agent_status, registry)
            from exporter.device.schedule import build_trigger

            self.trigger: BaseTrigger = build_trigger(every=float(agent.every), jitter=float(agent.jitter), cron=agent.cron)
            if agent.health_file:
                runner, status = self.runner, self.agent_status
                self.health = HealthFile(agent.health_file, lambda: health_document(
                    status.snapshot(), runner.breaker, runner.command))
                self.runner.after_run.append(self.health.write)

    @property
    def writers(self) -> list[TextfileWriter]:
        return [self.textfile] if self.textfile is not None else []

    def attach_textfile(self, render: Callable[[str], bytes], default_name: str, *, periodic: bool,
                        check: CollisionCheck | None = None) -> None:
        """Write `render(writer)` to the textfile after every agent run and, if `periodic`, every interval.

        `writer` is the file's name without `.prom`: unique in the directory, so it tells this
        file's series from every other writer's there.
        """
        settings = self.config.textfile
        if not settings.directory:
            return
        filename = settings.file or default_name
        writer = filename[:-5] if filename.endswith(".prom") else filename
        self.textfile = TextfileWriter(settings.directory, filename, lambda: render(writer), check=check)
        if self.runner is not None:
            self.runner.after_run.append(self.textfile.write)
        if periodic:
            self.publisher = TextfilePublisher(self.textfile, float(settings.interval))

    def start(self, *, schedule: bool = True) -> None:
        """Start probes, the textfile publisher and (if `schedule`) the agent's schedule."""
        if self.prober is not None:
            self.prober.start()
        if self.publisher is not None:
            self.publisher.start()
        elif self.textfile is not None:
            self.textfile.write()  # the file exists (runs at zero) before the first run ends
        if schedule and self.runner is not None:
            from exporter.device.schedule import AgentScheduler

            self.scheduler = AgentScheduler(self.runner, self.trigger)
            self.scheduler.start()

    def run_once(self) -> int:
        """One run now (counters continue from the previous health.json); returns the agent's exit code."""
        assert self.runner is not None and self.agent_status is not None, "agent.command is empty"
        if self.health is not None:
            previous = read_counters(self.health.path)
            if previous is not None:
                self.agent_status.restore(**previous)
        snap = self.runner.run()
        run = snap.last_run
        return run.exit_code if run is not None and snap.rejected_reason is None else 1

    def failure(self) -> str | None:
        """A part that stopped on its own (the agent's schedule); the process must not go on silently."""
        return self.scheduler.failure() if self.scheduler is not None else None

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.prober is not None:
            self.prober.stop()
        if self.publisher is not None:
            self.publisher.stop()
