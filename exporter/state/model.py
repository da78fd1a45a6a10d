"""The normalized record of one watched container, the same shape for Docker and Kubernetes."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from enum import Enum
from types import MappingProxyType
from typing import Any, Mapping

from exporter.state.reasons import Reason


class Phase(str, Enum):
    """The kubelet's three container states."""

    RUNNING = "running"
    WAITING = "waiting"
    TERMINATED = "terminated"


class Health(str, Enum):
    """Health-check status; NONE when the container defines no health check."""

    NONE = "none"
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class Source(str, Enum):
    DOCKER = "docker"
    KUBERNETES = "kubernetes"


_OTHER = Reason.OTHER
_EMPTY: Mapping[Reason, int] = MappingProxyType({})
_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class PodMeta:
    """A Kubernetes pod's own facts, rendered once per pod (kube_pod_labels, kube_pod_owner)."""

    labels: Mapping[str, str] = field(default_factory=lambda: _NO_LABELS)  # allow-listed pod labels only
    owners: tuple[tuple[str, str, bool], ...] = ()  # ownerReferences: (kind, name, controller)


@dataclass(frozen=True)
class ContainerRecord:
    """One container as the exporter understands it.

    Frozen: the store swaps whole records, so readers (collectors, the API) never see a
    half-updated one and need no lock. `failures` counts entries into each failure reason so a
    state that lasted less than a scrape interval is still visible as a counter increase.
    """

    key: str
    source: Source
    container: str
    kind: str = "container"  # "image" for the pull guard's desired images
    host: str = ""
    namespace: str = ""
    pod: str = ""
    image: str = ""
    container_id: str = ""
    phase: Phase = Phase.WAITING
    reason: Reason = Reason.CREATED
    raw_reason: str = ""
    message: str = ""
    restarts: int = 0
    last_exit_code: int | None = None
    last_terminated_reason: Reason | None = None
    last_terminated_at: float | None = None
    oom_kills: int = 0
    health: Health = Health.NONE
    retry_count: int = 0
    next_retry_at: float | None = None
    terminal: bool = False
    remedy_override: str = ""
    created_at: float | None = None
    started_at: float | None = None
    failures: Mapping[Reason, int] = field(default_factory=lambda: _EMPTY)
    labels: Mapping[str, str] = field(default_factory=lambda: _NO_LABELS)  # allow-listed engine labels only
    pod_meta: PodMeta | None = None  # on a Kubernetes pod's first container only: its pod-level facts
    # What the source's reducer carries beyond the record (Docker: its Life); never exported,
    # never compared: it changes with the record, inside StateStore.update.
    engine: Any = field(default=None, compare=False, repr=False)
    # At most 29 fields: CPython 3.11 then shares one key table among all records, and a record's
    # instance dict holds only its values (~0.3 KB; from 30 fields on, a table of its own: 1.6 KB,
    # 0.8 KB rebuilt at its size). Evolved copies keep the shared form (tests/unit/test_record_memory.py).

    @property
    def remedy(self) -> str:
        """The record's own remedy (e.g. 'docker login ...') or its reason's."""
        return self.remedy_override or self.reason.remedy

    @property
    def display_reason(self) -> str:
        """The raw runtime reason when the vocabulary had to fold it into Other."""
        reason = self.reason
        if reason is _OTHER and self.raw_reason:
            return self.raw_reason
        return reason._value_  # Enum's `value` is a Python-level property: read per event

    def with_failure(self, failure: Reason, count: int = 1, **changes: object) -> "ContainerRecord":
        """A copy with the failures counter for `failure` raised by `count`, and `changes` (one copy)."""
        failures = dict(self.failures)
        failures[failure] = failures.get(failure, 0) + count
        return self.evolve(failures=MappingProxyType(failures), **changes)

    def evolve(self, **changes: object) -> "ContainerRecord":
        """A copy with `changes`: dataclasses.replace without its per-call introspection.

        Records are evolved several times per engine event; replace() re-reads the field list
        and re-runs __init__ each time (~30 us per event), which dominated event ingest. Copying
        the instance dict is one memcpy; a name that is no field shows as one key too many.
        """
        state = self.__dict__.copy()
        state.update(changes)
        if len(state) != _FIELD_COUNT:
            return replace(self, **changes)  # type: ignore[arg-type] # raises the usual TypeError
        new = _new(ContainerRecord)
        _set(new, "__dict__", state)
        return new


_FIELD_COUNT = len(fields(ContainerRecord))
_new = object.__new__
_set = object.__setattr__  # the frozen dataclass refuses setattr; a copy is built before anyone sees it
