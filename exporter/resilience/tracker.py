"""Non-blocking per-key retry bookkeeping for reconciliation loops (kubelet style).

A loop asks ``should_retry(key)`` each pass instead of sleeping; failures push the key's
next attempt out by a doubling, capped delay, and a key quiet for ``reset_after`` starts over.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

from .backoff import BackoffStrategy, KubeletBackoff

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class RetryState:
    """Back-off bookkeeping for one key after ``count`` consecutive failures."""

    count: int
    last_error: str | None
    last_failure: float
    next_retry: float
    exhausted: bool


def _describe(error: BaseException | str | None) -> str | None:
    if error is None or isinstance(error, str):
        return error
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class RetryTracker(Generic[K]):
    """Thread-safe map of key -> RetryState; never sleeps, only answers "is it time yet?"."""

    def __init__(
        self,
        backoff: BackoffStrategy | None = None,
        clock: Callable[[], float] = time.time,
        max_attempts: int | None = None,
    ) -> None:
        if max_attempts is not None and not (isinstance(max_attempts, int) and max_attempts >= 1):
            raise ValueError(f"max_attempts must be an int >= 1 or None, got {max_attempts!r}")
        self.backoff: BackoffStrategy = backoff if backoff is not None else KubeletBackoff()
        self.max_attempts = max_attempts
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[K, RetryState] = {}

    def __repr__(self) -> str:
        return f"RetryTracker(backoff={self.backoff!r}, max_attempts={self.max_attempts!r}, keys={len(self._states)})"

    def _quiet(self, state: RetryState, now: float) -> bool:
        reset_after = self.backoff.reset_after
        return reset_after is not None and now - state.last_failure > reset_after

    def should_retry(self, key: K) -> bool:
        """True if ``key`` never failed or its back-off has elapsed.

        An exhausted key stays False until it has been quiet for ``backoff.reset_after``
        (then it gets a fresh start), or until ``record_success``/``forget``.
        """
        now = self._clock()
        with self._lock:
            state = self._states.get(key)
        if state is None:
            return True
        if state.exhausted:
            return self._quiet(state, now)
        return now >= state.next_retry

    def record_failure(self, key: K, error: BaseException | str | None = None) -> RetryState:
        """Count a failure and schedule the next attempt; returns the new state."""
        now = self._clock()
        with self._lock:
            old = self._states.get(key)
            count = 1 if old is None or self._quiet(old, now) else old.count + 1
            delay = self.backoff.delay(count)
            state = RetryState(
                count=count,
                last_error=_describe(error),
                last_failure=now,
                next_retry=now + delay,
                exhausted=self.max_attempts is not None and count >= self.max_attempts,
            )
            self._states[key] = state
        return state

    def record_success(self, key: K) -> None:
        """A success clears the key's history entirely."""
        self.forget(key)

    def forget(self, key: K) -> None:
        with self._lock:
            self._states.pop(key, None)

    def state(self, key: K) -> RetryState | None:
        with self._lock:
            return self._states.get(key)

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._states)

    def gc(self) -> int:
        """Drop keys quiet for longer than ``reset_after`` (kubelet's GC); returns how many."""
        now = self._clock()
        with self._lock:
            stale = [k for k, s in self._states.items() if self._quiet(s, now)]
            for key in stale:
                del self._states[key]
        return len(stale)
