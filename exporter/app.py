"""Wire one exporter process: config -> store -> sources, collectors -> exposition -> HTTP."""
from __future__ import annotations

import logging
import threading

from exporter import __version__
from exporter.config import Config, ResilienceConfig
from exporter.device.components import REGISTRY_TEXTFILE, DeviceSide
from exporter.metrics import ContainerCollector, Exposition, ResilienceCollector, SelfCollector
from exporter.metrics.device import device_collectors
from exporter.metrics.textfile import collisions, render_textfile
from exporter.resilience import BreakerSettings, ResilienceRegistry, RetryBudget
from exporter.sources import Source, build_sources
from exporter.state import StateStore
from exporter.web.limits import connection_cap, raise_open_file_limit
from exporter.web.server import ExporterHTTPServer, HTTPLimits, serve_in_thread
from exporter.web.status import device_docs, events_document, state_document
from exporter.web.webconfig import load_web_config

log = logging.getLogger(__name__)


def build_registry(settings: ResilienceConfig) -> ResilienceRegistry:
    """The one registry of a process, from `resilience.*`: every breaker and retry policy of the
    sources, the agent and the probes is built on it (their own keywords win over these defaults)."""
    return ResilienceRegistry(
        budget=RetryBudget(ratio=settings.retry_budget_ratio),
        breaker_settings=BreakerSettings(
            failure_threshold=settings.breaker_failure_threshold, window=float(settings.breaker_window),
            open_timeout=float(settings.breaker_open_timeout), success_threshold=settings.breaker_success_threshold))


class Exporter:
    """One running exporter; `start()` binds the port and starts sources, `stop()` ends both."""

    def __init__(self, config: Config, *, registry: ResilienceRegistry | None = None) -> None:
        self.config = config
        self.registry = registry if registry is not None else build_registry(config.resilience)
        self.store = StateStore(transitions=config.state.transitions_kept)
        self.device = DeviceSide(config, self.registry)
        collectors = [
            SelfCollector(self.store),
            ContainerCollector(self.store, label_allowlist=config.docker.label_allowlist,
                               pod_label_allowlist=config.kubernetes.label_allowlist),
            ResilienceCollector(self.registry),
            *device_collectors(self.device),
        ]
        self.exposition = Exposition(collectors)
        # The whole registry minus process_*/python_* (node_exporter owns those names).
        self.device.attach_textfile(lambda writer: render_textfile(collectors, writer), REGISTRY_TEXTFILE,
                                    periodic=True, check=collisions)
        self.sources: list[Source] = []
        self.server: ExporterHTTPServer | None = None
        self._stopped = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        # Sources register before the port opens, so /readyz is 503 until their first list.
        self.sources = build_sources(self.config, self.store, self.registry)
        host, port = self.config.web.listen_address.host_port
        web = self.config.web
        security = load_web_config(web.config_file) if web.config_file else None
        agents, probes = device_docs(self.device)
        limits = HTTPLimits(max_connections=connection_cap(web.max_connections, raise_open_file_limit()),
                            max_requests=web.max_requests, read_header_timeout=float(web.read_header_timeout),
                            idle_timeout=float(web.idle_timeout))
        self.server = ExporterHTTPServer(
            (host, port), self.exposition, telemetry_path=web.telemetry_path, ready=self.store.ready,
            state=lambda: state_document(self.store, self.registry, host=self.config.host, agents=agents, probes=probes),
            events=lambda **query: events_document(self.store, **query), security=security, limits=limits)
        serve_in_thread(self.server)
        log.info("listening", extra={"fields": {
            "address": f"{self.address[0]}:{self.address[1]}", "telemetry_path": self.config.web.telemetry_path,
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
