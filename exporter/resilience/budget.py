"""Client-side retry budget (Google SRE book ch. 22; Finagle's RetryBudget).

Retries are paid from a balance that every call tops up by ``ratio``: at steady state
retries cannot exceed ~``ratio`` of calls, so a struggling backend is not hit by a retry storm.
A small time-based floor lets a quiet process still retry a few times.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Callable

_EPSILON = 1e-9  # 10 deposits of 0.1 must buy one retry despite float rounding


class RetryBudget:
    """Thread-safe token balance: ``deposit()`` per call, ``try_spend()`` per retry."""

    def __init__(
        self,
        ratio: float = 0.1,
        min_retries_per_second: float = 1.0,
        max_balance: float = 100.0,
        clock: Callable[[], float] = time.monotonic,
        reserve_seconds: float = 10.0,
    ) -> None:
        if not (ratio >= 0 and math.isfinite(ratio)):
            raise ValueError(f"ratio must be finite and >= 0, got {ratio!r}")
        if not (min_retries_per_second >= 0 and math.isfinite(min_retries_per_second)):
            raise ValueError(f"min_retries_per_second must be finite and >= 0, got {min_retries_per_second!r}")
        if not max_balance >= 1:
            raise ValueError(f"max_balance must be >= 1 (one retry), got {max_balance!r}")
        if not reserve_seconds > 0:
            raise ValueError(f"reserve_seconds must be > 0, got {reserve_seconds!r}")
        self.ratio = ratio
        self.min_retries_per_second = min_retries_per_second
        self.max_balance = max_balance
        self.reserve_seconds = reserve_seconds
        self._clock = clock
        # The floor refills the balance only up to this reserve (Finagle: minRetriesPerSec * ttl),
        # so an idle hour does not bank a burst of retries.
        self._reserve = min(max_balance, min_retries_per_second * reserve_seconds)
        self._balance = self._reserve
        self._last_refill = clock()
        self._lock = threading.Lock()
        self._unlimited = False
        self.exhausted_total = 0
        self.spent_total = 0

    @classmethod
    def unlimited(cls) -> "RetryBudget":
        """A budget that never refuses; for callers that bound retries by other means."""
        budget = cls(ratio=0.0, min_retries_per_second=0.0)
        budget._unlimited = True
        return budget

    def __repr__(self) -> str:
        if self._unlimited:
            return "RetryBudget.unlimited()"
        return (f"RetryBudget(ratio={self.ratio!r}, min_retries_per_second={self.min_retries_per_second!r}, "
                f"max_balance={self.max_balance!r})")

    @property
    def balance(self) -> float:
        """Retries currently affordable (fractional)."""
        with self._lock:
            self._refill()
            return self._balance

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._last_refill
        self._last_refill = now
        if elapsed > 0 and self.min_retries_per_second and self._balance < self._reserve:
            self._balance = min(self._reserve, self._balance + elapsed * self.min_retries_per_second)

    def deposit(self) -> None:
        """Credit one call's worth (``ratio``) of retry allowance."""
        ratio = self.ratio
        if ratio:  # hot path (every call): bare acquire/release, no exception can occur inside
            lock = self._lock
            lock.acquire()
            balance = self._balance + ratio
            self._balance = balance if balance < self.max_balance else self.max_balance
            lock.release()

    def try_spend(self) -> bool:
        """Withdraw one retry; False (and count it in ``exhausted_total``) if unaffordable."""
        with self._lock:
            if self._unlimited:
                self.spent_total += 1
                return True
            self._refill()
            if self._balance + _EPSILON >= 1.0:
                self._balance = max(0.0, self._balance - 1.0)
                self.spent_total += 1
                return True
            self.exhausted_total += 1
            return False
