"""Back-off strategies: property-based bounds, the kubelet schedule, validation and repr."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.resilience import (
    Constant,
    DecorrelatedJitter,
    EqualJitter,
    Exponential,
    FullJitter,
    KubeletBackoff,
)

bases = st.floats(min_value=1e-6, max_value=100.0, allow_nan=False)
spans = st.floats(min_value=1.0, max_value=1e6, allow_nan=False)  # cap = base * span
attempts = st.integers(min_value=1, max_value=2_000)
huge_attempts = st.integers(min_value=1_000, max_value=10**18)
seeds = st.integers(min_value=0, max_value=2**32)
fast = settings(max_examples=150, deadline=None, database=None)  # no files written


def nominal(base: float, cap: float, attempt: int) -> float:
    """Reference value min(cap, base*2**(attempt-1)) computed with exact integers."""
    if attempt > 1_000:  # 2**1000 * 1e-6 already exceeds any cap generated here
        return cap
    return min(cap, base * 2.0 ** (attempt - 1))


@fast
@given(bases, spans, attempts, seeds)
def test_full_jitter_stays_between_zero_and_the_capped_exponential(base, span, attempt, seed) -> None:
    cap = base * span
    d = FullJitter(base, cap).delay(attempt, rng=random.Random(seed))
    assert 0.0 <= d <= nominal(base, cap, attempt) * (1 + 1e-12) and d <= cap


@fast
@given(bases, spans, attempts, seeds)
def test_equal_jitter_waits_at_least_half_the_capped_exponential(base, span, attempt, seed) -> None:
    cap = base * span
    v = nominal(base, cap, attempt)
    d = EqualJitter(base, cap).delay(attempt, rng=random.Random(seed))
    assert v / 2 * (1 - 1e-12) <= d <= v * (1 + 1e-12) and d <= cap


@fast
@given(bases, spans, st.one_of(st.none(), st.floats(min_value=0.0, max_value=1e12)), seeds)
def test_decorrelated_jitter_stays_between_base_and_cap(base, span, previous, seed) -> None:
    cap = base * span
    d = DecorrelatedJitter(base, cap).delay(3, previous=previous, rng=random.Random(seed))
    assert base <= d <= cap


@fast
@given(bases, spans, seeds)
def test_decorrelated_jitter_chained_through_its_own_output_stays_bounded(base, span, seed) -> None:
    strategy, rng, previous = DecorrelatedJitter(base, base * span), random.Random(seed), None
    for attempt in range(1, 30):
        previous = strategy.delay(attempt, previous, rng)
        assert base <= previous <= base * span


@fast
@given(bases, spans, st.floats(min_value=1.0, max_value=10.0))
def test_exponential_is_monotonic_until_it_reaches_the_cap(base, span, factor) -> None:
    cap = base * span
    strategy = Exponential(base, factor, cap)
    delays = [strategy.delay(a) for a in range(1, 80)]
    assert delays[0] == pytest.approx(min(base, cap))
    assert all(a <= b for a, b in zip(delays, delays[1:]))
    assert all(0 <= d <= cap for d in delays)
    if factor >= 1.5:
        assert delays[-1] == cap


@fast
@given(st.sampled_from([FullJitter, EqualJitter, DecorrelatedJitter, Exponential, KubeletBackoff]),
       bases, spans, huge_attempts)
def test_huge_attempt_numbers_never_overflow(cls, base, span, attempt) -> None:
    d = cls(base, cap=base * span) if cls is not KubeletBackoff else KubeletBackoff(base, base * span)
    d = d.delay(attempt, previous=1e308, rng=random.Random(0))
    assert 0.0 <= d <= base * span


@fast
@given(st.floats(min_value=1e-300, max_value=1e-200), st.floats(min_value=1e200, max_value=1e300), huge_attempts)
def test_extreme_base_to_cap_ratios_do_not_overflow(base, cap, attempt) -> None:
    assert Exponential(base, 2.0, cap).delay(attempt) <= cap
    assert FullJitter(base, cap).delay(attempt, rng=random.Random(1)) <= cap


def test_kubelet_schedule_doubles_from_ten_seconds_to_the_five_minute_cap() -> None:
    kubelet = KubeletBackoff()
    assert [kubelet.delay(a) for a in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert kubelet.reset_after == 600.0


def test_only_the_kubelet_strategy_resets_after_a_quiet_period() -> None:
    for strategy in (Constant(1), Exponential(), FullJitter(), EqualJitter(), DecorrelatedJitter()):
        assert strategy.reset_after is None
    assert KubeletBackoff(1.0, 8.0).reset_after == 16.0


def test_constant_returns_the_same_delay_for_every_attempt() -> None:
    assert {Constant(0.25).delay(a) for a in (1, 2, 50)} == {0.25}


def test_repr_reads_like_the_configuration() -> None:
    assert repr(FullJitter(1.0, 30.0)) == "FullJitter(base=1.0, cap=30.0)"
    assert repr(Exponential()) == "Exponential(base=1.0, factor=2.0, cap=30.0)"
    assert repr(KubeletBackoff()) == "KubeletBackoff(initial=10.0, max=300.0)"


def test_strategies_are_immutable_and_comparable() -> None:
    strategy = EqualJitter(1.0, 5.0)
    with pytest.raises(AttributeError):
        strategy.base = 2.0  # type: ignore[misc]
    assert strategy == EqualJitter(1.0, 5.0) and hash(strategy) == hash(EqualJitter(1.0, 5.0))


@pytest.mark.parametrize("factory, message", [
    (lambda: FullJitter(0, 1), "base must be > 0"),
    (lambda: EqualJitter(2, 1), "cap must be >= base"),
    (lambda: DecorrelatedJitter(-1, 1), "base must be > 0"),
    (lambda: Exponential(1, 0.5, 2), "factor must be >= 1"),
    (lambda: Exponential(1, 2, float("inf")), "cap must be finite"),
    (lambda: KubeletBackoff(10, 5), "max must be >= initial"),
    (lambda: Constant(-1), "seconds must be"),
])
def test_invalid_arguments_raise_clear_value_errors(factory, message) -> None:
    with pytest.raises(ValueError, match=message):
        factory()


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 1"):
        FullJitter().delay(0)
