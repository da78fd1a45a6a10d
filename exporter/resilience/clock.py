"""Injectable time: a fake clock so tests advance time instead of sleeping."""
from __future__ import annotations

import math
import threading


class FakeClock:
    """Callable like ``time.monotonic``; ``sleep``/``async_sleep`` advance it and record the delay.

    Thread-safe so concurrent tests can share one clock.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r})"

    def time(self) -> float:
        """Alias for ``clock()``, for code that expects a ``time`` method."""
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward (never backward) and return the new now."""
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"can only advance by a finite, non-negative amount, got {seconds!r}")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to an absolute time that is not in the past."""
        with self._lock:
            if now < self._now:
                raise ValueError(f"time cannot go backwards ({now!r} < {self._now!r})")
            self._now = float(now)

    def sleep(self, seconds: float) -> None:
        """Drop-in for ``time.sleep``: advances instantly and remembers the requested delay."""
        with self._lock:
            self.sleeps.append(seconds)
        self.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        """Drop-in for ``asyncio.sleep``: advances, then yields once so other tasks can run."""
        import asyncio  # only asyncio users pay for importing it

        self.sleep(seconds)
        await asyncio.sleep(0)
