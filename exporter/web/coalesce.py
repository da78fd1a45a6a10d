"""Concurrent scrapes with the same negotiation share one render (Go's singleflight).

Rendering costs ~1 ms of CPU under the GIL, so 50 scrapers arriving together would wait ~50
renders for the last answer. A request that arrives while an identical render is running waits
for it and sends the same bytes instead: its data is at most one render old, which Prometheus
cannot tell from a scrape that arrived a millisecond earlier.
"""
from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Flight(Generic[V]):
    __slots__ = ("done", "value", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: V | None = None
        self.error: BaseException | None = None


class Coalescer(Generic[K, V]):
    """`call(key, fn)`: the first caller runs `fn`; callers with the same key meanwhile get its result."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[K, _Flight[V]] = {}
        self.shared_total = 0

    def call(self, key: K, fn: Callable[[], V]) -> V:
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                self.shared_total += 1
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value  # type: ignore[return-value]
        try:
            flight.value = fn()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.value
