"""Views of the store for the status document: one per container record, one per source."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from exporter.state.model import ContainerRecord
from exporter.state.store import SourceStatus
from exporter.view import View


@dataclass(frozen=True)
class ContainerView(View):
    """A container as /api/state, the page and `resilience-exporter status` show it."""

    name: str
    key: str
    kind: str
    source: str
    host: str
    namespace: str
    pod: str
    container: str
    image: str
    status: str
    reason: str
    classification: str
    phase: str
    terminal: bool
    health: str
    restarts: int
    last_exit_code: int | None
    last_terminated_reason: str | None
    last_terminated_at: float | None
    created_at: float | None
    started_at: float | None
    retries: int
    next_retry_at: float | None
    oom_kills: int
    failures: Mapping[str, int]
    message: str
    remedy: str

    @classmethod
    def of(cls, r: ContainerRecord) -> ContainerView:
        name = r.container or r.image
        if r.pod and r.source.value == "kubernetes":
            name = f"{r.pod}/{r.container}"
        return cls(
            name=name, key=r.key, kind=r.kind, source=r.source.value, host=r.host, namespace=r.namespace,
            pod=r.pod, container=r.container, image=r.image, status=r.display_reason, reason=r.reason.value,
            classification=r.reason.classification.value, phase=r.phase.value, terminal=r.terminal,
            health=r.health.value, restarts=r.restarts, last_exit_code=r.last_exit_code,
            last_terminated_reason=r.last_terminated_reason.value if r.last_terminated_reason else None,
            last_terminated_at=r.last_terminated_at, created_at=r.created_at, started_at=r.started_at,
            retries=r.retry_count, next_retry_at=r.next_retry_at, oom_kills=r.oom_kills,
            failures={k.value: v for k, v in r.failures.items()}, message=r.message, remedy=r.remedy)


@dataclass(frozen=True)
class SourceView(View):
    """A source's health: connected, first list done, events by result, containers dropped at the cap."""

    name: str
    up: bool
    synced: bool
    events: Mapping[str, int]
    dropped: int

    @classmethod
    def of(cls, s: SourceStatus) -> SourceView:
        return cls(name=s.name, up=s.up, synced=s.synced, events=dict(s.events), dropped=s.dropped)
