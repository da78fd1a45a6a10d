"""The thread-safe state store: sources write records, collectors and the API read them.

The store is the only meeting point between sources and exposition. Every change notifies
subscribers (the metrics cache marks the key dirty) and reason changes are kept in a bounded
ring of transitions for the status view and troubleshooting.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, TypeVar

from exporter.state.model import ContainerRecord

log = logging.getLogger(__name__)

Listener = Callable[[str, "ContainerRecord | None"], None]
E = TypeVar("E")


class Transition(NamedTuple):
    """A container moved from one reason to another (or appeared/disappeared); a NamedTuple
    because one is built on the event hot path."""

    at: float
    key: str
    source: str
    host: str
    namespace: str
    pod: str
    container: str
    from_reason: str
    to_reason: str
    message: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at, "key": self.key, "source": self.source, "host": self.host,
            "namespace": self.namespace, "pod": self.pod, "container": self.container,
            "from": self.from_reason, "to": self.to_reason, "message": self.message,
        }


@dataclass
class SourceStatus:
    """Health of one source: connected, initial sync done, and events seen by result."""

    name: str
    up: bool = False
    synced: bool = False
    events: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    engine: str = ""          # what the source talks to: docker, podman, kubernetes
    engine_version: str = ""
    errors: int = 0  # sessions (list + watch) that ended in an error


class StateStore:
    """Records by key, change notifications, recent transitions and source status."""

    def __init__(self, *, transitions: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, ContainerRecord] = {}
        self._listeners: list[Listener] = []
        self._transitions: deque[Transition] = deque(maxlen=transitions)
        self._sources: dict[str, SourceStatus] = {}
        self._clock = clock

    # -- subscriptions -------------------------------------------------------------------
    def subscribe(self, listener: Listener) -> None:
        """Call `listener(key, record_or_None)` after every change; None means removed."""
        with self._lock:
            self._listeners.append(listener)

    def _notify(self, key: str, record: ContainerRecord | None) -> None:
        for listener in self._listeners:
            try:
                listener(key, record)
            except Exception:  # a broken subscriber must not stop the sources
                log.exception("state listener failed for %s", key)

    # -- writes (sources only) -----------------------------------------------------------
    def put(self, record: ContainerRecord, *, message: str = "") -> ContainerRecord:
        """Insert or replace a record; logs a transition when its reason changes."""
        with self._lock:
            old = self._records.get(record.key)
            self._records[record.key] = record
            self._record_transition(old, record, message)
            self._notify(record.key, record)
        return record

    def update(self, key: str, change: Callable[[ContainerRecord], ContainerRecord],
               *, message: str = "") -> ContainerRecord | None:
        """Apply `change` to the current record atomically; no-op if the key is unknown."""
        with self._lock:
            old = self._records.get(key)
            if old is None:
                return None
            new = change(old)
            if new is old:
                return old
            self._records[key] = new
            self._record_transition(old, new, message)
            self._notify(key, new)
        return new

    def apply_event(self, key: str, reduce: Callable[[E, ContainerRecord], ContainerRecord | None], event: E,
                    *, source: str, result: str = "ok") -> ContainerRecord | None:
        """`update` for one event of a source: `reduce(event, record)` under the lock, and the event
        counted by `result` under the same lock (one lock per event on the ingest path).
        `reduce` returning None or the record itself changes nothing; an unknown key counts nothing
        and returns None."""
        with self._lock:
            old = self._records.get(key)
            if old is None:
                return None
            status = self._sources.get(source)
            if status is None:
                status = self._sources[source] = SourceStatus(source)
            events = status.events
            events[result] = events.get(result, 0) + 1
            new = reduce(event, old)
            if new is None or new is old:
                return old
            self._records[key] = new
            if new.reason is not old.reason or new.raw_reason != old.raw_reason:
                self._record_transition(old, new, "")
            for listener in self._listeners:  # _notify, inline: once per event
                try:
                    listener(key, new)
                except Exception:
                    log.exception("state listener failed for %s", key)
        return new

    def remove(self, key: str) -> ContainerRecord | None:
        """Forget a record; its series disappear from the next scrape."""
        with self._lock:
            old = self._records.pop(key, None)
            if old is None:
                return None
            self._record_transition(old, None, "removed")
            self._notify(key, None)
        return old

    def retain(self, keys: Iterable[str], *, source: str, kind: str = "container") -> list[str]:
        """Remove every record of `source` and `kind` whose key is not in `keys` (after a relist)."""
        keep = set(keys)
        with self._lock:
            gone = [k for k, r in self._records.items()
                    if r.source.value == source and r.kind == kind and k not in keep]
        for key in gone:
            self.remove(key)
        return gone

    def _record_transition(self, old: ContainerRecord | None, new: ContainerRecord | None,
                           message: str) -> None:
        if old is not None and new is not None and old.reason is new.reason and old.raw_reason == new.raw_reason:
            return  # the common case on the event path: no change of reason
        ref = new or old
        assert ref is not None
        before = old.display_reason if old else ""
        after = new.display_reason if new else ""
        if before == after:
            return
        self._transitions.append(Transition(  # positional: a third of the events on the ingest path make one
            self._clock(), ref.key, ref.source._value_, ref.host, ref.namespace, ref.pod, ref.container,
            before, after, message or (new.message if new else "")))

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: str) -> ContainerRecord | None:
        return self._records.get(key)

    def records(self) -> list[ContainerRecord]:
        with self._lock:
            return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    def transitions(self, *, container: str | None = None, reason: str | None = None,
                    limit: int | None = None) -> list[Transition]:
        """Recent transitions, newest first, optionally filtered by container and reason."""
        with self._lock:
            items = list(self._transitions)
        items.reverse()
        if container:
            items = [t for t in items if t.container == container]
        if reason:
            items = [t for t in items if reason in (t.to_reason, t.from_reason)]
        return items[:limit] if limit else items

    # -- source status -------------------------------------------------------------------
    def register_source(self, name: str) -> SourceStatus:
        with self._lock:
            return self._sources.setdefault(name, SourceStatus(name))

    def set_source(self, name: str, *, up: bool | None = None, synced: bool | None = None,
                   engine: str | None = None, engine_version: str | None = None) -> None:
        with self._lock:
            status = self._sources.setdefault(name, SourceStatus(name))
            if up is not None:
                status.up = up
            if synced is not None:
                status.synced = synced
            if engine is not None:
                status.engine, status.engine_version = engine, engine_version or ""

    def count_event(self, name: str, result: str, n: int = 1) -> None:
        """Count a source event by result (ok, malformed, ignored, ...).

        Locked: a source may write from several threads (one watch per Kubernetes namespace).
        """
        with self._lock:
            status = self._sources.get(name)
            if status is None:
                status = self._sources[name] = SourceStatus(name)
            events = status.events
            events[result] = events.get(result, 0) + n

    def count_dropped(self, name: str) -> None:
        """A new object was not tracked because the source's cap was reached."""
        with self._lock:
            self._sources.setdefault(name, SourceStatus(name)).dropped += 1

    def count_source_error(self, name: str) -> None:
        """A list or watch session of the source ended in an error (the source backs off and resumes)."""
        with self._lock:
            self._sources.setdefault(name, SourceStatus(name)).errors += 1

    def sources(self) -> list[SourceStatus]:
        with self._lock:
            return [SourceStatus(s.name, s.up, s.synced, s.events.copy(), s.dropped, s.engine, s.engine_version,
                                 s.errors)
                    for s in self._sources.values()]

    def ready(self) -> bool:
        """Ready once every registered source has finished its initial sync."""
        with self._lock:
            return all(s.synced for s in self._sources.values())
