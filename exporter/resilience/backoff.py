"""Back-off strategies: small immutable objects that turn an attempt number into a delay.

Jittered variants follow the AWS Architecture blog post "Exponential Backoff And Jitter";
KubeletBackoff mirrors the kubelet's flowcontrol.Backoff (doubling, capped, reset when quiet).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@runtime_checkable
class BackoffStrategy(Protocol):
    """What RetryPolicy and RetryTracker need from a strategy."""

    @property
    def reset_after(self) -> float | None: ...

    def delay(self, attempt: int, previous: float | None = None,
              rng: random.Random | None = None) -> float: ...


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1 (1 is the first retry), got {attempt}")


def _check_base_cap(base: float, cap: float, base_name: str = "base", cap_name: str = "cap") -> None:
    if not base > 0:
        raise ValueError(f"{base_name} must be > 0 seconds, got {base!r}")
    if not cap >= base:
        raise ValueError(f"{cap_name} must be >= {base_name} ({base!r}), got {cap!r}")
    if math.isinf(cap):
        raise ValueError(f"{cap_name} must be finite, got {cap!r}")


def _doubling_limit(base: float, cap: float, factor: float = 2.0) -> float:
    """Smallest exponent n with base * factor**n >= cap; beyond it the delay is just ``cap``."""
    if factor <= 1.0:
        return math.inf
    return math.log(cap / base) / math.log(factor)


def _capped(base: float, cap: float, attempt: int, limit: float, factor: float = 2.0) -> float:
    """min(cap, base * factor**(attempt-1)) without ever computing a huge power."""
    n = attempt - 1
    if n >= limit:
        return cap
    try:  # factor**n alone can overflow when base is tiny and cap huge
        return min(cap, base * factor ** n)
    except OverflowError:
        return cap


class _NoReset:
    """Mixin: only the kubelet strategy forgets failures after a quiet period."""

    @property
    def reset_after(self) -> float | None:
        return None


@dataclass(frozen=True)
class Constant(_NoReset):
    """The same delay every time; mostly for tests and polling loops."""

    seconds: float = 1.0

    def __post_init__(self) -> None:
        if not (self.seconds >= 0 and math.isfinite(self.seconds)):
            raise ValueError(f"seconds must be finite and >= 0, got {self.seconds!r}")

    def delay(self, attempt: int, previous: float | None = None,
              rng: random.Random | None = None) -> float:
        _check_attempt(attempt)
        return self.seconds


@dataclass(frozen=True)
class Exponential(_NoReset):
    """base * factor**(attempt-1), capped; deterministic (no jitter), so clients can herd."""

    base: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    _limit: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_base_cap(self.base, self.cap)
        if not self.factor >= 1.0:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")
        object.__setattr__(self, "_limit", _doubling_limit(self.base, self.cap, self.factor))

    def delay(self, attempt: int, previous: float | None = None,
              rng: random.Random | None = None) -> float:
        _check_attempt(attempt)
        return _capped(self.base, self.cap, attempt, self._limit, self.factor)


@dataclass(frozen=True)
class _Doubling(_NoReset):
    """Shared shape of the jittered strategies: base doubling per attempt up to cap."""

    base: float = 1.0
    cap: float = 30.0
    _limit: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_base_cap(self.base, self.cap)
        object.__setattr__(self, "_limit", _doubling_limit(self.base, self.cap))

    def _ceiling(self, attempt: int) -> float:
        _check_attempt(attempt)
        return _capped(self.base, self.cap, attempt, self._limit)


@dataclass(frozen=True)
class FullJitter(_Doubling):
    """uniform(0, min(cap, base*2**(attempt-1))): the AWS post's best spread of load."""

    def delay(self, attempt: int, previous: float | None = None,
              rng: random.Random | None = None) -> float:
        return (rng or random).uniform(0.0, self._ceiling(attempt))


@dataclass(frozen=True)
class EqualJitter(_Doubling):
    """v/2 + uniform(0, v/2): keeps a guaranteed minimum wait while still spreading clients."""

    def delay(self, attempt: int, previous: float | None = None,
              rng: random.Random | None = None) -> float:
        half = self._ceiling(attempt) / 2.0
        return half + (rng or random).uniform(0.0, half)


@dataclass(frozen=True)
class DecorrelatedJitter(_NoReset):
    """min(cap, uniform(base, previous*3)): grows from the last delay, not the attempt count."""

    base: float = 1.0
    cap: float = 30.0

    def __post_init__(self) -> None:
        _check_base_cap(self.base, self.cap)

    def delay(self, attempt: int, previous: float | None = None,
              rng: random.Random | None = None) -> float:
        _check_attempt(attempt)
        # Clamp `previous` to cap so a bogus huge/inf value cannot overflow or yield NaN.
        prev = self.base if not previous or previous < self.base else min(previous, self.cap)
        return min(self.cap, (rng or random).uniform(self.base, prev * 3.0))


@dataclass(frozen=True)
class KubeletBackoff:
    """min(max, initial*2**(attempt-1)); like flowcontrol.Backoff, forgotten after 2*max quiet."""

    initial: float = 10.0
    max: float = 300.0
    _limit: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_base_cap(self.initial, self.max, "initial", "max")
        object.__setattr__(self, "_limit", _doubling_limit(self.initial, self.max))

    @property
    def reset_after(self) -> float | None:
        return 2.0 * self.max

    def delay(self, attempt: int, previous: float | None = None,
              rng: random.Random | None = None) -> float:
        _check_attempt(attempt)
        return _capped(self.initial, self.max, attempt, self._limit)
