"""The status document behind /api/state, the page and `resilience-exporter status`.

One read-only view of everything an operator asks first: containers with their reason, restarts
and remedy, circuit breakers, agent runs, probes and source health. The CLI, the page and the
JSON API all render this same document, so they always agree. Each part is a frozen view built
beside its snapshot (`exporter.state.views`, `exporter.device.views`, `BreakerView` here).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from exporter.device.status import AgentStatus, ProbeStatus
from exporter.device.views import AgentView, ProbeView
from exporter.resilience import BreakerSnapshot, ResilienceRegistry
from exporter.state import StateStore
from exporter.state.views import ContainerView, SourceView
from exporter.view import View


@dataclass(frozen=True)
class BreakerView(View):
    """A circuit breaker: state (and its `circuit_breaker_state` value), failures, calls, retry-after."""

    name: str
    state: str
    value: int
    failures_in_window: int
    calls: Mapping[str, int]
    retry_after: float | None

    @classmethod
    def of(cls, s: BreakerSnapshot) -> BreakerView:
        return cls(name=s.name, state=s.state.label, value=s.state.metric_value,
                   failures_in_window=s.failures_in_window, calls=dict(s.calls), retry_after=s.retry_after)


@dataclass(frozen=True)
class StatusDocument(View):
    """/api/state: `as_dict()` is the JSON users read, key for key."""

    host: str
    generated_at: float
    sources: tuple[SourceView, ...] = ()
    containers: tuple[ContainerView, ...] = ()
    breakers: tuple[BreakerView, ...] = ()
    agents: tuple[AgentView, ...] = ()
    probes: tuple[ProbeView, ...] = ()

    @classmethod
    def empty(cls) -> StatusDocument:
        """What a server without a status source answers."""
        return cls(host="", generated_at=time.time())


class StatusView:
    """Builds the status document and the recent transitions of one exporter on request."""

    def __init__(self, store: StateStore, registry: ResilienceRegistry, *, host: str,
                 agent: AgentStatus | None = None, probes: ProbeStatus | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.registry, self.host = store, registry, host
        self.agent, self.probes, self.clock = agent, probes, clock

    def document(self) -> StatusDocument:
        records = sorted(self.store.records(), key=lambda r: (r.namespace, r.pod, r.container, r.image))
        return StatusDocument(
            host=self.host, generated_at=self.clock(),
            sources=tuple(SourceView.of(s) for s in self.store.sources()),
            containers=tuple(ContainerView.of(r) for r in records),
            breakers=tuple(BreakerView.of(s) for s in sorted(self.registry.breaker_snapshots(), key=lambda s: s.name)),
            agents=(AgentView.of(self.agent.snapshot()),) if self.agent is not None else (),
            probes=tuple(ProbeView.of(p) for p in self.probes.snapshots()) if self.probes is not None else ())

    def events(self, *, container: str | None = None, reason: str | None = None,
               limit: int = 100) -> list[dict[str, Any]]:
        """Recent transitions, newest first, filtered by container name and/or reason."""
        return [t.as_dict() for t in self.store.transitions(container=container or None, reason=reason or None,
                                                            limit=max(1, min(limit, 1000)))]
