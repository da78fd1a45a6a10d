"""Circuit breaker with a time-window failure count and an explicit transition table.

Modelled on resilience4j: CLOSED -> OPEN when ``failure_threshold`` failures fall inside
``window`` seconds; OPEN -> HALF_OPEN lazily after ``open_timeout``; HALF_OPEN admits at most
``half_open_max_calls`` concurrent probes and closes after ``success_threshold`` consecutive
successes or reopens on any probe failure. No lock is held while the protected call runs.
"""
from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any, Awaitable, Callable, TypeVar

from .errors import CircuitOpenError

log = logging.getLogger(__name__)
T = TypeVar("T")


class CircuitState(Enum):
    """Breaker states; the value is the metric label."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    DISABLED = "disabled"

    @property
    def label(self) -> str:
        return self.value

    @property
    def metric_value(self) -> int:
        """Numeric gauge value for ``circuit_breaker_state``."""
        return _METRIC_VALUES[self]


_METRIC_VALUES = {
    CircuitState.CLOSED: 0, CircuitState.OPEN: 1, CircuitState.HALF_OPEN: 2,
    CircuitState.FORCED_OPEN: 3, CircuitState.DISABLED: 4,
}
_CLOSED, _OPEN, _HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
_FORCED_OPEN, _DISABLED = CircuitState.FORCED_OPEN, CircuitState.DISABLED

# The ONE table of allowed edges. Anything else is a bug and raises RuntimeError.
TRANSITIONS: frozenset[tuple[CircuitState, CircuitState]] = frozenset({
    (_CLOSED, _OPEN),            # failure threshold reached inside the window
    (_OPEN, _HALF_OPEN),         # open_timeout elapsed; next call / state read probes
    (_HALF_OPEN, _CLOSED),       # success_threshold consecutive probe successes
    (_HALF_OPEN, _OPEN),         # a probe failed
    # manual operations: force_open(), disable(), reset()
    (_CLOSED, _FORCED_OPEN), (_OPEN, _FORCED_OPEN), (_HALF_OPEN, _FORCED_OPEN), (_DISABLED, _FORCED_OPEN),
    (_CLOSED, _DISABLED), (_OPEN, _DISABLED), (_HALF_OPEN, _DISABLED), (_FORCED_OPEN, _DISABLED),
    (_OPEN, _CLOSED), (_FORCED_OPEN, _CLOSED), (_DISABLED, _CLOSED),
})

OUTCOMES = ("success", "failure", "rejected", "ignored")
Listener = Callable[["CircuitBreaker", CircuitState, CircuitState], None]
Edge = tuple[CircuitState, CircuitState]


@dataclass(frozen=True)
class BreakerSnapshot:
    """Point-in-time view for metrics and status pages."""

    name: str
    state: CircuitState
    calls: dict[str, int]
    transitions: dict[tuple[str, str], int]
    failures_in_window: int
    opened_at: float | None
    retry_after: float | None


def _never(exc: BaseException) -> bool:
    return False


def _exclusion_predicate(
    excluded: tuple[type[BaseException], ...] | Callable[[BaseException], bool],
) -> Callable[[BaseException], bool]:
    if isinstance(excluded, tuple):
        if not excluded:
            return _never  # shared: no closure per breaker
        kinds = excluded
        return lambda exc: isinstance(exc, kinds)
    if callable(excluded):
        return excluded
    raise TypeError(f"excluded must be a tuple of exception types or a predicate, got {excluded!r}")


class CircuitBreaker:
    """Thread- and asyncio-safe breaker; ``call``/``call_async``/decorator or the permit API."""

    # slots: a keyed set holds one breaker per device, so per-instance bytes count
    __slots__ = ("_name", "failure_threshold", "window", "open_timeout", "success_threshold",
                 "half_open_max_calls", "excluded", "_is_excluded", "_clock", "_lock", "_phase", "_failures",
                 "_opened_at", "_probes_in_flight", "_probe_successes", "_n_success", "_n_failure",
                 "_n_rejected", "_n_ignored", "_transition_counts", "_listeners", "__weakref__")

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        window: float = 60.0,
        open_timeout: float = 30.0,
        success_threshold: int = 2,
        half_open_max_calls: int = 1,
        excluded: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for label, value in (("failure_threshold", failure_threshold), ("success_threshold", success_threshold),
                             ("half_open_max_calls", half_open_max_calls)):
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{label} must be an int >= 1, got {value!r}")
        for label, fvalue in (("window", window), ("open_timeout", open_timeout)):
            if not fvalue > 0:
                raise ValueError(f"{label} must be > 0 seconds, got {fvalue!r}")
        self._name = name
        self.failure_threshold = failure_threshold
        self.window = float(window)
        self.open_timeout = float(open_timeout)
        self.success_threshold = success_threshold
        self.half_open_max_calls = half_open_max_calls
        self.excluded = excluded
        self._is_excluded = _exclusion_predicate(excluded)
        self._clock = clock
        self._lock = threading.Lock()
        # (state, generation) swapped atomically on each transition; doubles as the permit token
        # so a late result from an earlier phase cannot disturb the current one.
        self._phase: tuple[CircuitState, int] = (_CLOSED, 0)
        # made on the first failure and dropped on every transition: a healthy breaker holds none
        # (a keyed set keeps thousands of breakers, and an empty deque costs ~0.7 KiB)
        self._failures: deque[float] | None = None
        self._opened_at: float | None = None
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._n_success = 0
        self._n_failure = 0
        self._n_rejected = 0
        self._n_ignored = 0
        self._transition_counts: dict[Edge, int] | None = None  # both made on first use (memory)
        self._listeners: tuple[Listener, ...] = ()

    def __repr__(self) -> str:
        return (f"CircuitBreaker({self._name!r}, failure_threshold={self.failure_threshold}, "
                f"window={self.window}, open_timeout={self.open_timeout}, "
                f"success_threshold={self.success_threshold}, half_open_max_calls={self.half_open_max_calls}, "
                f"state={self._phase[0].label})")

    # ---------------------------------------------------------------- state machine
    def _transition(self, to: CircuitState) -> Edge:
        """The single place state changes: check the table, reset per-state data, count. Lock held."""
        frm = self._phase[0]
        if (frm, to) not in TRANSITIONS:
            raise RuntimeError(f"circuit breaker {self._name!r}: illegal transition {frm.label} -> {to.label}")
        self._phase = (to, self._phase[1] + 1)
        self._failures = None
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._opened_at = self._clock() if to is _OPEN else None
        edge = (frm, to)
        counts = self._transition_counts
        if counts is None:
            counts = self._transition_counts = {}
        counts[edge] = counts.get(edge, 0) + 1
        return edge

    def _emit(self, edge: Edge | None) -> None:
        """Notify listeners of a transition, after the lock is released; never propagate errors."""
        if edge is None:
            return
        log.info("circuit breaker %r: %s -> %s", self._name, edge[0].label, edge[1].label)
        for listener in self._listeners:
            try:
                listener(self, edge[0], edge[1])
            except Exception:  # a broken listener must not break the breaker
                log.exception("circuit breaker %r: listener %r failed", self._name, listener)

    def add_listener(self, listener: Listener) -> None:
        """Register ``fn(breaker, from_state, to_state)``, called once per transition."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            listeners = list(self._listeners)
            listeners.remove(listener)
            self._listeners = tuple(listeners)

    def _maybe_half_open(self) -> Edge | None:
        """Lazy OPEN -> HALF_OPEN once open_timeout has elapsed. Lock held."""
        if self._phase[0] is _OPEN and self._clock() - self._opened_at >= self.open_timeout:  # type: ignore[operator]
            return self._transition(_HALF_OPEN)
        return None

    def _manual(self, to: CircuitState) -> None:
        with self._lock:
            edge = None if self._phase[0] is to else self._transition(to)
        self._emit(edge)

    def force_open(self) -> None:
        """Reject every call until ``reset()`` (maintenance, known-bad dependency)."""
        self._manual(_FORCED_OPEN)

    def disable(self) -> None:
        """Let every call through and never trip (kill switch for the breaker itself)."""
        self._manual(_DISABLED)

    def reset(self) -> None:
        """Back to CLOSED with an empty failure window."""
        with self._lock:
            if self._phase[0] is _CLOSED:
                self._failures = None
                edge = None
            else:
                edge = self._transition(_CLOSED)
        self._emit(edge)

    # ---------------------------------------------------------------- permit API
    def acquire_permission(self) -> tuple[CircuitState, int]:
        """Return an opaque permit or raise CircuitOpenError; pair with on_success/on_error."""
        phase = self._phase
        if phase[0] is _CLOSED:
            return phase
        return self._acquire_slow()

    def _acquire_slow(self) -> tuple[CircuitState, int]:
        with self._lock:
            edge = self._maybe_half_open()
            phase = self._phase
            state = phase[0]
            if state is _CLOSED or state is _DISABLED:
                admitted = True
            elif state is _HALF_OPEN and self._probes_in_flight < self.half_open_max_calls:
                self._probes_in_flight += 1
                admitted = True
            else:
                admitted = False
                self._n_rejected += 1
                retry_after = self._retry_after_locked()
        self._emit(edge)
        if not admitted:
            raise CircuitOpenError(self._name, retry_after)
        return phase

    def _retry_after_locked(self) -> float | None:
        if self._phase[0] is _OPEN:
            return max(0.0, self._opened_at + self.open_timeout - self._clock())  # type: ignore[operator]
        return None

    def on_success(self, permit: tuple[CircuitState, int] | None = None) -> None:
        """Record a successful call made under ``permit`` (default: the current phase)."""
        with self._lock:
            self._n_success += 1
            if (permit or self._phase)[0] is not _HALF_OPEN:
                return
            edge = self._probe_done(permit, True)
        self._emit(edge)

    def on_error(self, exc: BaseException, permit: tuple[CircuitState, int] | None = None) -> None:
        """Record a failed call; excluded errors and non-Exception signals count as ignored."""
        ignored = not isinstance(exc, Exception) or self._is_excluded(exc)
        edge = None
        with self._lock:
            phase = self._phase
            permit = permit or phase
            if ignored:
                self._n_ignored += 1
                if permit[0] is _HALF_OPEN and permit is phase:
                    self._probes_in_flight -= 1
            else:
                self._n_failure += 1
                if permit[0] is _HALF_OPEN:
                    edge = self._probe_done(permit, False)
                elif phase[0] is _CLOSED:
                    now = self._clock()
                    failures = self._failures
                    if failures is None:
                        failures = self._failures = deque(maxlen=self.failure_threshold)
                    failures.append(now)
                    if len(failures) >= self.failure_threshold and failures[0] > now - self.window:
                        edge = self._transition(_OPEN)
        self._emit(edge)

    def _probe_done(self, permit: tuple[CircuitState, int] | None, ok: bool) -> Edge | None:
        """Account a HALF_OPEN probe outcome. Lock held; stale permits do not move the state."""
        if permit is not None and permit is not self._phase:
            return None
        self._probes_in_flight -= 1
        if not ok:
            return self._transition(_OPEN)
        self._probe_successes += 1
        if self._probe_successes >= self.success_threshold:
            return self._transition(_CLOSED)
        return None

    # ---------------------------------------------------------------- call paths
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` through the breaker (CircuitOpenError if not permitted)."""
        phase = self._phase
        if phase[0] is not _CLOSED:
            phase = self._acquire_slow()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self.on_error(exc, phase)
            raise
        if phase[0] is _CLOSED:  # closed fast path: one short lock, no allocation
            lock = self._lock  # bare acquire/release: measurably cheaper than `with` here
            lock.acquire()
            self._n_success += 1
            lock.release()
        else:
            self.on_success(phase)
        return result

    async def call_async(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker; no lock is held across the await."""
        phase = self._phase
        if phase[0] is not _CLOSED:
            phase = self._acquire_slow()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:  # CancelledError is recorded as ignored, then re-raised
            self.on_error(exc, phase)
            raise
        self.on_success(phase)
        return result

    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator for sync or async functions."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await self.call_async(fn, *args, **kwargs)
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self.call(fn, *args, **kwargs)
        return wrapper

    # ---------------------------------------------------------------- introspection
    @property
    def name(self) -> str:
        return self._name

    @property
    def state(self) -> CircuitState:
        """Current state; reading it performs the lazy OPEN -> HALF_OPEN move when due."""
        state = self._phase[0]
        if state is not _OPEN:
            return state
        with self._lock:
            edge = self._maybe_half_open()
            state = self._phase[0]
        self._emit(edge)
        return state

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            edge = self._maybe_half_open()
            now = self._clock()
            horizon = now - self.window
            snap = BreakerSnapshot(
                name=self._name,
                state=self._phase[0],
                calls={"success": self._n_success, "failure": self._n_failure,
                       "rejected": self._n_rejected, "ignored": self._n_ignored},
                transitions={(a.label, b.label): n for (a, b), n in (self._transition_counts or {}).items()},
                failures_in_window=sum(1 for t in self._failures or () if t > horizon),
                opened_at=self._opened_at,
                retry_after=self._retry_after_locked(),
            )
        self._emit(edge)
        return snap
