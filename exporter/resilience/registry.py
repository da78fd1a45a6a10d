"""Process-wide home for breakers, retry outcome counts, error counts and the retry budget.

Metrics exporters read snapshots from here; breakers are visible from creation so a
``circuit_breaker_state`` series exists before the first trip.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable

from .breaker import BreakerSnapshot, CircuitBreaker
from .budget import RetryBudget
from .errors import ErrorCode
from .keyed import BreakerSettings, KeyedBreakers, KeyedSnapshot


class RetryOutcome(str, Enum):
    """resilience4j's retry event kinds; the value is the metric label."""

    SUCCESSFUL_WITHOUT_RETRY = "successful_without_retry"
    SUCCESSFUL_WITH_RETRY = "successful_with_retry"
    FAILED_WITHOUT_RETRY = "failed_without_retry"
    FAILED_WITH_RETRY = "failed_with_retry"


_KINDS = tuple(kind.value for kind in RetryOutcome)


@dataclass(frozen=True)
class RetrySnapshot:
    """Outcome counts of one named retry policy; every kind is present (zeros included)."""

    name: str
    kinds: dict[str, int]


class RetryCounter:
    """The outcome counts of one named retry policy, each kind counted under the counter's own lock.

    ``RetryPolicy`` holds its counter, so the common case (success at the first try) costs one
    uncontended lock and no registry lookup.
    """

    __slots__ = ("_lock", "_counts")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = [0, 0, 0, 0]

    def succeeded_first_try(self) -> None:
        lock = self._lock  # bare acquire/release: cheaper than `with` on the hot path
        lock.acquire()
        self._counts[0] += 1
        lock.release()

    def record(self, kind: RetryOutcome | str) -> None:
        index = _KINDS.index(kind.value if isinstance(kind, RetryOutcome) else kind)
        with self._lock:
            self._counts[index] += 1

    def kinds(self) -> dict[str, int]:
        with self._lock:
            return dict(zip(_KINDS, self._counts))


class ResilienceRegistry:
    """Thread-safe home of breakers and retry counts, with the settings new breakers start from.

    An application builds one from its configuration and passes it down; ``REGISTRY`` is the
    process-wide default for services that import the library and want no wiring.
    """

    def __init__(self, budget: RetryBudget | None = None, breaker_settings: BreakerSettings | None = None) -> None:
        self._lock = threading.Lock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._keyed: dict[str, KeyedBreakers] = {}
        self._retries: dict[str, RetryCounter] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._budget = budget if budget is not None else RetryBudget()
        self._breaker_settings = breaker_settings if breaker_settings is not None else BreakerSettings()

    @property
    def budget(self) -> RetryBudget:
        """The retry budget of every policy built on this registry without one of its own."""
        return self._budget

    @property
    def breaker_settings(self) -> BreakerSettings:
        """What ``breaker(name)`` builds a new breaker from (its keywords override them)."""
        return self._breaker_settings

    def __repr__(self) -> str:
        return f"ResilienceRegistry(breakers={sorted(self._breakers)!r}, retries={sorted(self._retries)!r})"

    # ---------------------------------------------------------------- breakers
    def _get_or_make(self, table: dict[str, Any], name: str, make: Callable[[], Any]) -> Any:
        with self._lock:
            existing = table.get(name)
            if existing is None:
                existing = table[name] = make()
            return existing

    def _add(self, table: dict[str, Any], item: Any, what: str) -> Any:
        with self._lock:
            current = table.setdefault(item.name, item)
        if current is not item:
            raise ValueError(f"a different {what} named {item.name!r} is already registered")
        return item

    def breaker(self, name: str, **config: Any) -> CircuitBreaker:
        """Get the breaker called ``name``, creating it from ``breaker_settings`` + ``config`` on first use.

        Later calls return the existing breaker and ignore ``config``.
        """
        return self._get_or_make(self._breakers, name, lambda: self._breaker_settings.build(name, **config))

    def register(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Add an externally built breaker; its name must be unused (or map to itself)."""
        return self._add(self._breakers, breaker, "circuit breaker")

    def keyed(self, name: str, settings: BreakerSettings | None = None, **config: Any) -> KeyedBreakers:
        """Get the keyed breaker set called ``name``, creating it on first use (later ``config`` is ignored).

        ``config``: KeyedBreakers' keywords (label, idle_timeout, max_keys, clock).
        """
        return self._get_or_make(self._keyed, name, lambda: KeyedBreakers(name, settings, **config))

    def register_keyed(self, keyed: KeyedBreakers) -> KeyedBreakers:
        """Add an externally built keyed set; its name must be unused (or map to itself)."""
        return self._add(self._keyed, keyed, "keyed breaker set")

    def keyed_snapshots(self) -> list[KeyedSnapshot]:
        with self._lock:
            sets = list(self._keyed.values())
        return [k.snapshot() for k in sets]

    def breakers(self) -> list[CircuitBreaker]:
        with self._lock:
            return list(self._breakers.values())

    def breaker_snapshots(self) -> list[BreakerSnapshot]:
        return [b.snapshot() for b in self.breakers()]

    # ---------------------------------------------------------------- retries
    def retry_counter(self, name: str) -> RetryCounter:
        """The outcome counter of policy ``name``, made (all zeros, so its series show) on first use."""
        with self._lock:
            counter = self._retries.get(name)
            if counter is None:
                counter = self._retries[name] = RetryCounter()
            return counter

    def record_retry(self, name: str, kind: RetryOutcome | str) -> None:
        """Count one finished retried-or-not call of policy ``name``."""
        self.retry_counter(name).record(kind)

    def retry_snapshots(self) -> list[RetrySnapshot]:
        with self._lock:
            counters = list(self._retries.items())
        return [RetrySnapshot(name, counter.kinds()) for name, counter in counters]

    # ---------------------------------------------------------------- errors
    def record_error(self, name: str, code: ErrorCode) -> None:
        key = (name, code.value)
        with self._lock:
            self._errors[key] = self._errors.get(key, 0) + 1

    def error_counts(self) -> dict[tuple[str, str], int]:
        """Failed attempts keyed ``(policy name, ErrorCode.value)``."""
        with self._lock:
            return dict(self._errors)


REGISTRY = ResilienceRegistry()
"""The library's convenience for services without wiring of their own; the exporter never uses it."""


def get_breaker(name: str, **config: Any) -> CircuitBreaker:
    """``REGISTRY.breaker(name, **config)``."""
    return REGISTRY.breaker(name, **config)
