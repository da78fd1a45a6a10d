"""The one wiring place: builds `serve` (`Exporter`) and `agent` (`Agent`) from a loaded Config.

Here, and only here, the configuration is taken apart: the resilience registry is built once
from `resilience.*` and passed down, and every part receives only its own section (the sources
`docker`/`kubernetes`, the device side `agent`/`probes`, the textfile writer `textfile`, the HTTP
server `web`). Data then flows one way: sources -> state store -> collectors -> exposition.
Heavy libraries (kubernetes, apscheduler, jinja2, bcrypt) are imported by the parts that need
them, when a section enables them, never here.
"""
from __future__ import annotations

import functools
import logging
import threading
from typing import TYPE_CHECKING, Sequence

from exporter import __version__
from exporter.config import Config, ResilienceConfig, TextfileConfig
from exporter.device.components import REGISTRY_TEXTFILE, DeviceSide, agent_textfile_name
from exporter.metrics import ContainerCollector, Exposition, ResilienceCollector, SelfCollector
from exporter.metrics.device import AgentCollector, TextfileCollector, device_collectors
from exporter.metrics.exposition import Collector
from exporter.resilience import BreakerSettings, ResilienceRegistry, RetryBudget
from exporter.sources import Source, build_sources
from exporter.state import StateStore
from exporter.web.limits import connection_cap, raise_open_file_limit
from exporter.web.server import ExporterHTTPServer, HTTPLimits, serve_in_thread
from exporter.web.status import StatusView

if TYPE_CHECKING:
    from exporter.device.atomic import WriteCounts
    from exporter.device.textfile import TextfileWriter

log = logging.getLogger(__name__)


def build_registry(settings: ResilienceConfig) -> ResilienceRegistry:
    """The one registry of a process, from `resilience.*`: every breaker and retry policy of the
    sources, the agent and the probes is built on it (their own keywords win over these defaults)."""
    return ResilienceRegistry(
        budget=RetryBudget(ratio=settings.retry_budget_ratio),
        breaker_settings=BreakerSettings(
            failure_threshold=settings.breaker_failure_threshold, window=float(settings.breaker_window),
            open_timeout=float(settings.breaker_open_timeout), success_threshold=settings.breaker_success_threshold))


def textfile_writer(settings: TextfileConfig, default_name: str, collectors: Sequence[Collector],
                    counts: WriteCounts) -> TextfileWriter:
    """The node_exporter textfile of `collectors` (process_*/python_* left out: node_exporter owns them).

    Its `writer` label is the file's name without `.prom`: unique in the directory, so it tells
    this file's series from every other writer's there. `counts` is what a TextfileCollector among
    `collectors` already reads.
    """
    from exporter.device.textfile import TextfileWriter  # a process without a textfile never imports these
    from exporter.metrics.textfile import collisions, render_textfile

    filename = settings.file or default_name
    writer = filename[:-5] if filename.endswith(".prom") else filename
    return TextfileWriter(settings.directory, filename, functools.partial(render_textfile, tuple(collectors), writer),
                          check=collisions, counts=counts)


def _write_counts() -> WriteCounts:
    from exporter.device.atomic import WriteCounts  # textfile writing only

    return WriteCounts()


class Exporter:
    """`serve`: `start()` builds the sources, binds the port and starts the sources; `stop()` ends both."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.registry = build_registry(config.resilience)
        self.store = StateStore(transitions=config.state.transitions_kept)
        self.device = DeviceSide(host=config.host, agent=config.agent, probes=config.probes, registry=self.registry)
        counts = _write_counts() if config.textfile.directory else None
        collectors = [
            SelfCollector(self.store),
            ContainerCollector(self.store, label_allowlist=config.docker.label_allowlist,
                               pod_label_allowlist=config.kubernetes.label_allowlist),
            ResilienceCollector(self.registry),
            *device_collectors(self.device, [counts] if counts is not None else ()),
        ]
        self.exposition = Exposition(collectors)
        if counts is not None:
            self.device.attach_textfile(textfile_writer(config.textfile, REGISTRY_TEXTFILE, collectors, counts),
                                        interval=float(config.textfile.interval))
        self.sources: list[Source] = []
        self.server: ExporterHTTPServer | None = None
        self._stopped = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        config = self.config
        # Sources register before the port opens, so /readyz is 503 until their first list.
        self.sources = build_sources(self.store, self.registry, host=config.host, docker=config.docker,
                                     kubernetes=config.kubernetes)
        web = config.web
        host, port = web.listen_address.host_port
        security = None
        if web.config_file:  # TLS and basic auth: imported only for a web config file
            from exporter.web.webconfig import load_web_config

            security = load_web_config(web.config_file)
        status = StatusView(self.store, self.registry, host=config.host, agent=self.device.agent_status,
                            probes=self.device.probe_status)
        limits = HTTPLimits(max_connections=connection_cap(web.max_connections, raise_open_file_limit()),
                            max_requests=web.max_requests, read_header_timeout=float(web.read_header_timeout),
                            idle_timeout=float(web.idle_timeout))
        self.server = ExporterHTTPServer(
            (host, port), self.exposition, telemetry_path=web.telemetry_path, ready=self.store.ready,
            state=status.document, events=status.events, security=security, limits=limits)
        serve_in_thread(self.server)
        log.info("listening", extra={"fields": {
            "address": f"{self.address[0]}:{self.address[1]}", "telemetry_path": web.telemetry_path,
            "tls": security is not None and security.ssl_context is not None,
            "version": __version__}})
        for source in self.sources:
            source.start()
        self.device.start()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        self.device.stop()
        for source in self.sources:
            source.stop()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self._stopped.set()
        log.info("stopped")


class Agent:
    """`agent`: the role agent alone, no HTTP server; its families (and its breaker's and retry
    policy's) go to its own textfile `role_agent_<name>.prom`. ValueError if `agent.command` is empty."""

    def __init__(self, config: Config) -> None:
        if not config.agent.command:
            raise ValueError("agent: no command")
        self.settings = config.agent
        self.registry = build_registry(config.resilience)
        self.device = DeviceSide(host=config.host, agent=config.agent, probes=(), registry=self.registry)
        assert self.device.agent_status is not None and self.device.runner is not None
        self.runner = self.device.runner
        counts = _write_counts()
        collectors = [AgentCollector(self.device.agent_status), ResilienceCollector(self.registry),
                      TextfileCollector([counts])]
        if config.textfile.directory:
            self.device.attach_textfile(textfile_writer(config.textfile, agent_textfile_name(config.agent.name),
                                                        collectors, counts), interval=None)

    def run_once(self) -> int:
        return self.device.run_once()

    def start(self) -> None:
        self.device.start()

    def failure(self) -> str | None:
        return self.device.failure()

    def stop(self) -> None:
        self.device.stop()
        log.info("stopped")
