"""Registry, retry budget and FakeClock: the shared plumbing other modules and tests rely on."""
from __future__ import annotations

import asyncio
import threading

import pytest

from exporter.resilience import (
    REGISTRY,
    BreakerSettings,
    CircuitBreaker,
    CircuitState,
    ErrorCode,
    FakeClock,
    ResilienceRegistry,
    RetryBudget,
    RetrySnapshot,
    get_breaker,
)


def test_breaker_is_created_once_and_visible_before_it_ever_trips() -> None:
    registry = ResilienceRegistry()
    first = registry.breaker("docker", failure_threshold=2)
    assert registry.breaker("docker", failure_threshold=99) is first
    assert first.failure_threshold == 2
    (snap,) = registry.breaker_snapshots()
    assert (snap.name, snap.state) == ("docker", CircuitState.CLOSED)
    assert snap.calls == {"success": 0, "failure": 0, "rejected": 0, "ignored": 0}
    assert registry.breakers() == [first]


def test_register_accepts_an_external_breaker_but_not_a_name_clash() -> None:
    registry = ResilienceRegistry()
    breaker = CircuitBreaker("kube")
    assert registry.register(breaker) is breaker and registry.register(breaker) is breaker
    with pytest.raises(ValueError, match="kube"):
        registry.register(CircuitBreaker("kube"))


def test_get_breaker_uses_the_process_wide_registry() -> None:
    breaker = get_breaker("test-registry-default")
    assert breaker is REGISTRY.breaker("test-registry-default")
    assert isinstance(REGISTRY.budget, RetryBudget)


def test_retry_snapshots_always_list_every_kind() -> None:
    registry = ResilienceRegistry()
    registry.record_retry("pull", "failed_with_retry")
    assert registry.retry_snapshots() == [RetrySnapshot("pull", {
        "successful_without_retry": 0, "successful_with_retry": 0,
        "failed_without_retry": 0, "failed_with_retry": 1})]
    with pytest.raises(ValueError):
        registry.record_retry("pull", "bogus")


def test_error_counts_are_keyed_by_name_and_code_value() -> None:
    registry = ResilienceRegistry()
    registry.record_error("pull", ErrorCode.TIMEOUT)
    registry.record_error("pull", ErrorCode.TIMEOUT)
    registry.record_error("ps", ErrorCode.PERMISSION_DENIED)
    assert registry.error_counts() == {("pull", "TIMEOUT"): 2, ("ps", "PERMISSION_DENIED"): 1}


def test_concurrent_get_or_create_yields_a_single_breaker() -> None:
    registry = ResilienceRegistry()
    start = threading.Barrier(16, timeout=10)
    got: list[CircuitBreaker] = []

    def work() -> None:
        start.wait()
        got.append(registry.breaker("shared"))

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(got) == 16 and len({id(b) for b in got}) == 1


# ------------------------------------------------------------------ RetryBudget
def test_budget_without_floor_allows_ratio_retries_per_call() -> None:
    budget = RetryBudget(ratio=0.1, min_retries_per_second=0.0, clock=FakeClock())
    assert not budget.try_spend()
    for _ in range(50):
        budget.deposit()
    assert sum(budget.try_spend() for _ in range(20)) == 5
    assert budget.exhausted_total == 16 and budget.spent_total == 5


def test_budget_floor_lets_a_quiet_process_retry_but_does_not_bank_a_storm() -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.1, min_retries_per_second=1.0, clock=clock, reserve_seconds=10.0)
    assert sum(budget.try_spend() for _ in range(20)) == 10  # starts with the 10 s reserve
    clock.advance(3.0)
    assert sum(budget.try_spend() for _ in range(20)) == 3
    clock.advance(3600.0)
    assert budget.balance == pytest.approx(10.0)


def test_budget_balance_is_capped() -> None:
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0.0, max_balance=5.0, clock=FakeClock())
    for _ in range(100):
        budget.deposit()
    assert budget.balance == 5.0


def test_unlimited_budget_never_refuses() -> None:
    budget = RetryBudget.unlimited()
    assert all(budget.try_spend() for _ in range(1000)) and budget.exhausted_total == 0
    assert repr(budget) == "RetryBudget.unlimited()"


def test_budget_is_thread_safe() -> None:
    budget = RetryBudget(ratio=1.0, min_retries_per_second=0.0, max_balance=1e9, clock=FakeClock())
    start = threading.Barrier(8, timeout=10)
    granted: list[int] = []

    def work() -> None:
        start.wait()
        n = 0
        for _ in range(500):
            budget.deposit()
            n += budget.try_spend()
        granted.append(n)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sum(granted) == 4000 and budget.exhausted_total == 0


@pytest.mark.parametrize("kwargs", [dict(ratio=-0.1), dict(min_retries_per_second=-1), dict(max_balance=0.5)])
def test_budget_rejects_invalid_arguments(kwargs) -> None:
    with pytest.raises(ValueError):
        RetryBudget(**kwargs)


# ------------------------------------------------------------------ FakeClock
def test_fake_clock_advances_instead_of_sleeping_and_records_sleeps() -> None:
    clock = FakeClock(100.0)
    clock.sleep(2.5)
    asyncio.run(clock.async_sleep(1.5))
    assert clock() == clock.time() == 104.0
    assert clock.sleeps == [2.5, 1.5]
    assert clock.advance(1.0) == 105.0
    with pytest.raises(ValueError):
        clock.advance(-1.0)
    with pytest.raises(ValueError):
        clock.set(10.0)


def test_breaker_settings_apply_to_new_breakers_and_explicit_config_wins() -> None:
    registry = ResilienceRegistry(breaker_settings=BreakerSettings(failure_threshold=2, open_timeout=7.0))
    a = registry.breaker("a")
    b = registry.breaker("b", failure_threshold=9)
    assert (a.failure_threshold, a.open_timeout) == (2, 7.0)
    assert (b.failure_threshold, b.open_timeout) == (9, 7.0)
