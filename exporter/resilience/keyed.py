"""One circuit breaker per key (device id, host, tenant), made on first use from shared settings.

A service that talks to thousands of peers cannot name a breaker for each up front, nor keep one
forever for a peer it no longer calls: keys unused for ``idle_timeout`` are dropped, and past
``max_keys`` the least recently used key makes room (both counted, both to within a second). An evicted key starts again
CLOSED, as it would have after ``open_timeout`` anyway (``idle_timeout`` must not be shorter).
"""
from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any, Awaitable, Callable, TypeVar

from .breaker import OUTCOMES, CircuitBreaker, CircuitState

T = TypeVar("T")
EVICTION_REASONS = ("idle", "cap")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")  # Prometheus' label name syntax; __ is reserved
# A key's last use is recorded (and its LRU position moved) at most this often, so the hot path
# takes no lock; idle and LRU eviction are exact to within this much.
TOUCH_SECONDS = 1.0


@dataclass(frozen=True)
class BreakerSettings:
    """The configuration every breaker of a keyed set is built from; checked once, here."""

    failure_threshold: int = 5
    window: float = 60.0
    open_timeout: float = 30.0
    success_threshold: int = 2
    half_open_max_calls: int = 1
    excluded: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = ()

    def __post_init__(self) -> None:
        self.build("settings")  # CircuitBreaker owns the validation; a bad value fails now, not at first use

    def build(self, name: str, clock: Callable[[], float] = time.monotonic, **overrides: Any) -> CircuitBreaker:
        """A new breaker from these settings; `overrides` (CircuitBreaker's keywords) win over them."""
        return CircuitBreaker(name, clock=clock, **{**{f.name: getattr(self, f.name) for f in fields(self)},
                                                    **overrides})


class _Entry:
    """A key's breaker and its last use (slots: one of these per key)."""

    __slots__ = ("breaker", "last_used")

    def __init__(self, breaker: CircuitBreaker, last_used: float) -> None:
        self.breaker = breaker
        self.last_used = last_used


@dataclass(frozen=True)
class KeyedSnapshot:
    """Point-in-time view of a keyed set for metrics: per-key state, set-wide counts."""

    name: str
    label: str
    states: list[tuple[str, CircuitState]]
    transitions: list[tuple[str, dict[tuple[str, str], int]]]
    calls: dict[str, int]
    evicted: dict[str, int]


class KeyedBreakers:
    """Thread-safe map key -> CircuitBreaker, bounded by idle time and by a key cap.

    ``label`` is the metric label that carries the key: ``circuit_breaker_state{deviceId="d1"}``.
    Calls made on a key after its eviction land in its new breaker; the outcome of a call still
    running when its key is evicted is not counted in the set's ``calls``.
    """

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        label: str = "name",
        idle_timeout: float = 3600.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings if settings is not None else BreakerSettings()
        if not (isinstance(max_keys, int) and max_keys >= 1):
            raise ValueError(f"keyed breakers {name!r}: max_keys must be an int >= 1, got {max_keys!r}")
        if not idle_timeout >= self.settings.open_timeout:
            raise ValueError(f"keyed breakers {name!r}: idle_timeout must be >= open_timeout "
                             f"({self.settings.open_timeout!r} s), got {idle_timeout!r}")
        if not (_LABEL_NAME.fullmatch(label) and not label.startswith("__")):
            raise ValueError(f"keyed breakers {name!r}: label must be a Prometheus label name, got {label!r}")
        self.name = name
        self.label = label
        self.idle_timeout = float(idle_timeout)
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently used first
        self._sweep_every = self.idle_timeout / 8
        self._next_sweep = clock() + self._sweep_every
        self._evicted = dict.fromkeys(EVICTION_REASONS, 0)
        self._evicted_calls = dict.fromkeys(OUTCOMES, 0)

    def __repr__(self) -> str:
        return (f"KeyedBreakers({self.name!r}, {self.settings!r}, label={self.label!r}, "
                f"idle_timeout={self.idle_timeout}, max_keys={self.max_keys}, keys={len(self._entries)})")

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    # ---------------------------------------------------------------- lookup
    def get(self, key: str) -> CircuitBreaker:
        """The breaker of ``key``, created CLOSED on first use; marks the key as used now."""
        now = self._clock()
        entry = self._entries.get(key)
        # Lock-free for a key already marked within TOUCH_SECONDS: a dict read, no write.
        if entry is not None and now - entry.last_used < TOUCH_SECONDS:
            return entry.breaker
        return self._get_slow(key, now)

    def _get_slow(self, key: str, now: float) -> CircuitBreaker:
        """First use of a key, or its first use in TOUCH_SECONDS: mark it, sweep when due."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.last_used = now
                self._entries.move_to_end(key)
            else:
                if not isinstance(key, str):
                    raise TypeError(f"keyed breakers {self.name!r}: keys are label values and must be str, "
                                    f"got {type(key).__name__} {key!r}")
                if len(self._entries) >= self.max_keys:
                    self._evict_locked(next(iter(self._entries)), "cap")
                entry = self._entries[key] = _Entry(self.settings.build(key, self._clock), now)
            if now >= self._next_sweep:
                self._sweep_locked(now)
            return entry.breaker

    def call(self, key: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` through the breaker of ``key`` (CircuitOpenError when open)."""
        now = self._clock()  # get() inlined: one Python call less on every call's path
        entry = self._entries.get(key)
        if entry is not None and now - entry.last_used < TOUCH_SECONDS:
            return entry.breaker.call(fn, *args, **kwargs)
        return self._get_slow(key, now).call(fn, *args, **kwargs)

    async def call_async(self, key: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        return await self.get(key).call_async(fn, *args, **kwargs)

    # ---------------------------------------------------------------- bounds
    def _evict_locked(self, key: str, reason: str) -> None:
        breaker = self._entries.pop(key).breaker
        for outcome, count in breaker.snapshot().calls.items():  # keep the set's call counters monotonic
            self._evicted_calls[outcome] += count
        self._evicted[reason] += 1

    def _sweep_locked(self, now: float) -> int:
        self._next_sweep = now + self._sweep_every
        horizon = now - self.idle_timeout
        entries = self._entries
        evicted = 0
        while entries:
            key, entry = next(iter(entries.items()))
            if entry.last_used > horizon:
                break
            self._evict_locked(key, "idle")
            evicted += 1
        return evicted

    def evict_idle(self) -> int:
        """Drop keys unused for ``idle_timeout`` now (also done on use and on every snapshot)."""
        now = self._clock()
        with self._lock:
            return self._sweep_locked(now)

    @property
    def evicted(self) -> dict[str, int]:
        """Keys evicted so far, by reason (idle, cap)."""
        with self._lock:
            return dict(self._evicted)

    def snapshot(self) -> KeyedSnapshot:
        now = self._clock()
        with self._lock:
            self._sweep_locked(now)
            breakers = [(key, entry.breaker) for key, entry in self._entries.items()]
            calls = dict(self._evicted_calls)
            evicted = dict(self._evicted)
        states, transitions = [], []
        for key, breaker in sorted(breakers, key=lambda kb: kb[0]):
            snap = breaker.snapshot()
            states.append((key, snap.state))
            if snap.transitions:
                transitions.append((key, snap.transitions))
            for outcome, count in snap.calls.items():
                calls[outcome] += count
        return KeyedSnapshot(self.name, self.label, states, transitions, calls, evicted)
