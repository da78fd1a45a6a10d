"""The device side of one process: agent runner + schedule, health.json, textfile, probes.

Built by the wiring (`exporter.app`) from the `agent` and `probes` sections and started/stopped
as one unit by `serve` or `agent`. The textfile writer is built by the wiring too (it renders
the collectors) and attached here, so this package never imports the metrics package.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Sequence

from exporter.config import AgentConfig, ProbeConfig
from exporter.device.status import AgentStatus, ProbeStatus
from exporter.resilience import ResilienceRegistry

# Each part is imported only when its section enables it: apscheduler alone is 4 MiB of RSS, and
# a `serve` watching containers pays for no agent, probe, health.json or textfile code.
if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

    from exporter.device.agent import AgentRunner
    from exporter.device.health import HealthFile
    from exporter.device.probes import Prober
    from exporter.device.schedule import AgentScheduler
    from exporter.device.textfile import TextfilePublisher, TextfileWriter

log = logging.getLogger(__name__)

REGISTRY_TEXTFILE = "resilience_exporter.prom"


def agent_textfile_name(agent_name: str) -> str:
    """`role_agent_<name>.prom`, the default file of the standalone `agent` command."""
    return "role_agent_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in agent_name) + ".prom"


class DeviceSide:
    """Owns the device components its sections ask for; none when they ask for none."""

    def __init__(self, *, host: str, agent: AgentConfig, probes: Sequence[ProbeConfig],
                 registry: ResilienceRegistry) -> None:
        self.agent = agent
        self.agent_status: AgentStatus | None = None
        self.runner: AgentRunner | None = None
        self.scheduler: AgentScheduler | None = None
        self.health: HealthFile | None = None
        self.textfile: TextfileWriter | None = None
        self.publisher: TextfilePublisher | None = None
        self.probe_status = ProbeStatus()
        self.prober: Prober | None = None
        if probes:
            from exporter.device.probes import Prober

            self.prober = Prober(probes, self.probe_status, registry)
        if agent.command:
            from exporter.device.agent import AgentRunner
            from exporter.device.schedule import build_trigger

            self.agent_status = AgentStatus(agent.name, host)
            self.runner = AgentRunner(agent, self.agent_status, registry)
            self.trigger: BaseTrigger = build_trigger(every=float(agent.every), jitter=float(agent.jitter), cron=agent.cron)
            if agent.health_file:
                from exporter.device.health import HealthFile

                self.health = HealthFile(agent.health_file, self.health_document)
                self.runner.after_run.append(self.health.write)

    def health_document(self) -> dict[str, Any]:
        """health.json now: the agent's status snapshot and its breaker."""
        from exporter.device.health import HealthView

        assert self.runner is not None and self.agent_status is not None
        return HealthView.of(self.agent_status.snapshot(), self.runner.breaker, self.runner.command).as_dict()

    def attach_textfile(self, writer: TextfileWriter, *, interval: float | None) -> None:
        """Write the textfile after every agent run and, with an `interval`, every interval."""
        from exporter.device.textfile import TextfilePublisher

        self.textfile = writer
        if self.runner is not None:
            self.runner.after_run.append(writer.write)
        if interval is not None:
            self.publisher = TextfilePublisher(writer, interval)

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
            from exporter.device.health import read_counters

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
