"""RetryPolicy: what is retried, how long it waits, when it stops, and what it records."""
from __future__ import annotations

import asyncio
import random
import pytest

from exporter.resilience import (
    CircuitBreaker,
    CircuitOpenError,
    Constant,
    ErrorCode,
    Exponential,
    FakeClock,
    FullJitter,
    ResilienceError,
    ResilienceRegistry,
    RetryBudget,
    RetryPolicy,
)


class Flaky:
    """Fails with the queued exceptions, then returns ``value``; counts calls."""

    def __init__(self, *errors: BaseException, value: str = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self, *args, **kwargs) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value

    async def run_async(self, *args, **kwargs) -> str:
        await asyncio.sleep(0)
        return self(*args, **kwargs)


def policy(clock: FakeClock, registry: ResilienceRegistry, **kw) -> RetryPolicy:
    config: dict = dict(name="dep", max_attempts=3, backoff=Exponential(1.0, 2.0, 30.0),
                        budget=RetryBudget.unlimited(), registry=registry,
                        clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep)
    config.update(kw)
    return RetryPolicy(**config)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def registry() -> ResilienceRegistry:
    return ResilienceRegistry(budget=RetryBudget.unlimited())


def kinds(registry: ResilienceRegistry, name: str = "dep") -> dict[str, int]:
    return {s.name: s.kinds for s in registry.retry_snapshots()}[name]


def nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in counts.items() if v}


def test_success_on_first_attempt_does_not_sleep_and_counts_without_retry(clock, registry) -> None:
    fn = Flaky()
    assert policy(clock, registry).retry(fn, 1, key="x") == "ok"
    assert fn.calls == 1 and clock.sleeps == []
    assert kinds(registry) == {"successful_without_retry": 1, "successful_with_retry": 0,
                               "failed_without_retry": 0, "failed_with_retry": 0}


def test_retryable_errors_are_retried_with_the_backoff_delays(clock, registry) -> None:
    fn = Flaky(ConnectionRefusedError(), TimeoutError())
    assert policy(clock, registry).retry(fn) == "ok"
    assert fn.calls == 3
    assert clock.sleeps == [1.0, 2.0]
    assert nonzero(kinds(registry)) == {"successful_with_retry": 1}
    assert registry.error_counts() == {("dep", "NETWORK_ERROR"): 1, ("dep", "TIMEOUT"): 1}


def test_gives_up_after_max_attempts_and_raises_the_last_original_exception(clock, registry) -> None:
    errors = [ConnectionResetError("first"), ConnectionResetError("second"), ConnectionResetError("third")]
    fn = Flaky(*errors, ConnectionResetError("never reached"))
    with pytest.raises(ConnectionResetError) as info:
        policy(clock, registry).retry(fn)
    assert info.value is errors[2]
    assert fn.calls == 3 and clock.sleeps == [1.0, 2.0]
    assert nonzero(kinds(registry)) == {"failed_with_retry": 1}
    assert registry.error_counts() == {("dep", "NETWORK_ERROR"): 3}


@pytest.mark.parametrize("exc", [
    PermissionError("denied"),
    CircuitOpenError("docker", 5.0),
    ResilienceError("bad payload", ErrorCode.INVALID_RESPONSE),
    ResilienceError("agent error", ErrorCode.AGENT_ERROR),
], ids=lambda e: type(e).__name__ + ":" + str(getattr(e, "code", "")))
def test_non_retryable_codes_are_never_retried(clock, registry, exc) -> None:
    fn = Flaky(exc)
    with pytest.raises(type(exc)) as info:
        policy(clock, registry, max_attempts=10).retry(fn)
    assert info.value is exc
    assert fn.calls == 1 and clock.sleeps == []
    assert nonzero(kinds(registry)) == {"failed_without_retry": 1}


def test_unknown_errors_are_retried_only_once_per_call(clock, registry) -> None:
    fn = Flaky(ValueError("a"), ValueError("b"), ValueError("c"))
    with pytest.raises(ValueError, match="b"):
        policy(clock, registry, max_attempts=10).retry(fn)
    assert fn.calls == 2
    again = Flaky(ValueError("a"), ConnectionError(), ConnectionError(), value="fine")
    assert policy(clock, registry, max_attempts=10).retry(again) == "fine"  # caution is per error kind


def test_max_elapsed_stops_instead_of_sleeping_past_the_deadline(clock, registry) -> None:
    fn = Flaky(*[TimeoutError() for _ in range(10)])
    p = policy(clock, registry, max_attempts=None, max_elapsed=10.0)  # delays 1, 2, 4, 8 ...
    with pytest.raises(TimeoutError):
        p.retry(fn)
    assert clock.sleeps == [1.0, 2.0, 4.0]  # 7 s spent; the next 8 s would end at 15 > 10
    assert clock() <= 10.0 and fn.calls == 4


def test_max_elapsed_counts_time_spent_inside_the_attempts(clock, registry) -> None:
    def slow_failure() -> None:
        clock.advance(9.5)
        raise TimeoutError

    with pytest.raises(TimeoutError):
        policy(clock, registry, max_attempts=None, max_elapsed=10.0).retry(slow_failure)
    assert clock.sleeps == []


def test_custom_predicate_decides_what_is_retried(clock, registry) -> None:
    fn = Flaky(KeyError("a"), KeyError("b"), KeyError("c"))
    p = policy(clock, registry, max_attempts=4, retry_on=lambda exc: isinstance(exc, KeyError))
    assert p.retry(fn) == "ok" and fn.calls == 4
    assert registry.error_counts() == {("dep", "UNKNOWN_ERROR"): 3}


def test_retry_on_code_set_limits_retries_to_those_codes(clock, registry) -> None:
    p = policy(clock, registry, retry_on={ErrorCode.TIMEOUT})
    with pytest.raises(ConnectionRefusedError):
        p.retry(Flaky(ConnectionRefusedError()))
    assert p.retry(Flaky(TimeoutError())) == "ok"


def test_before_sleep_hook_sees_attempt_delay_and_error(clock, registry) -> None:
    seen: list[tuple[int, float, str]] = []
    err1, err2 = TimeoutError("one"), TimeoutError("two")
    p = policy(clock, registry, before_sleep=lambda a, d, e: seen.append((a, d, str(e))))
    p.retry(Flaky(err1, err2))
    assert seen == [(1, 1.0, "one"), (2, 2.0, "two")]


def test_jittered_delays_come_from_the_injected_rng(clock, registry) -> None:
    p = policy(clock, registry, max_attempts=4, backoff=FullJitter(1.0, 30.0), rng=random.Random(7))
    p.retry(Flaky(TimeoutError(), TimeoutError(), TimeoutError()))
    rng = random.Random(7)
    assert clock.sleeps == [rng.uniform(0, 1.0), rng.uniform(0, 2.0), rng.uniform(0, 4.0)]


def test_budget_allows_about_one_retry_per_ten_calls_and_counts_refusals(clock, registry) -> None:
    budget = RetryBudget(ratio=0.1, min_retries_per_second=0.0, clock=clock)
    p = policy(clock, registry, max_attempts=2, budget=budget, backoff=Constant(0.0))
    for _ in range(100):
        p.retry(Flaky())
    failing = [Flaky(TimeoutError(), value="recovered") for _ in range(30)]
    outcomes = []
    for fn in failing:
        try:
            outcomes.append(p.retry(fn))
        except TimeoutError:
            outcomes.append("gave up")
    # 130 calls deposit 13 retries' worth, so only ~13 of the 30 failing calls get their retry.
    assert budget.spent_total == outcomes.count("recovered")
    assert budget.spent_total == 13
    assert budget.exhausted_total == 30 - budget.spent_total
    assert sum(fn.calls for fn in failing) == 30 + budget.spent_total


def test_registry_budget_is_used_when_none_is_given_and_the_policy_budget_wins(clock) -> None:
    registry = ResilienceRegistry(budget=RetryBudget(ratio=0.0, min_retries_per_second=0.0, clock=clock))
    p = RetryPolicy(name="dep", registry=registry, clock=clock, sleep=clock.sleep)
    with pytest.raises(TimeoutError):
        p.retry(Flaky(TimeoutError()))
    assert registry.budget.exhausted_total == 1
    own = RetryPolicy(name="own", registry=registry, budget=RetryBudget.unlimited(), clock=clock, sleep=clock.sleep)
    assert own.retry(Flaky(TimeoutError())) == "ok"
    assert registry.budget.exhausted_total == 1


def test_async_retry_retries_and_records_like_the_sync_one(clock, registry) -> None:
    fn = Flaky(ConnectionRefusedError(), TimeoutError())
    p = policy(clock, registry)
    assert asyncio.run(p.retry_async(fn.run_async, 1)) == "ok"
    assert fn.calls == 3 and clock.sleeps == [1.0, 2.0]
    last = PermissionError("no")
    with pytest.raises(PermissionError) as info:
        asyncio.run(p.retry_async(Flaky(last).run_async))
    assert info.value is last
    assert nonzero(kinds(registry)) == {"successful_with_retry": 1, "failed_without_retry": 1}
    assert asyncio.run(p.retry_async(Flaky().run_async)) == "ok"
    assert kinds(registry)["successful_without_retry"] == 1


def test_async_retry_gives_up_after_max_attempts(clock, registry) -> None:
    fn = Flaky(*[TimeoutError(str(i)) for i in range(5)])
    with pytest.raises(TimeoutError, match="2"):
        asyncio.run(policy(clock, registry).retry_async(fn.run_async))
    assert fn.calls == 3 and nonzero(kinds(registry)) == {"failed_with_retry": 1}


def test_decorator_works_on_sync_and_async_functions(clock, registry) -> None:
    p = policy(clock, registry)
    sync_fn, async_fn = Flaky(TimeoutError()), Flaky(TimeoutError())

    @p
    def fetch(x: int) -> str:
        return f"{sync_fn()}-{x}"

    @p
    async def fetch_async(x: int) -> str:
        return f"{await async_fn.run_async()}-{x}"

    assert fetch(1) == "ok-1" and fetch.__name__ == "fetch"
    assert asyncio.run(fetch_async(2)) == "ok-2" and asyncio.iscoroutinefunction(fetch_async)
    assert sync_fn.calls == async_fn.calls == 2


def test_breaker_inside_retry_stops_retrying_once_open(clock, registry) -> None:
    breaker = CircuitBreaker("dep", failure_threshold=2, clock=clock)
    fn = Flaky(*[ConnectionRefusedError() for _ in range(10)])
    with pytest.raises(CircuitOpenError):
        policy(clock, registry, max_attempts=10).retry(breaker.call, fn)
    assert fn.calls == 2
    assert registry.error_counts() == {("dep", "NETWORK_ERROR"): 2, ("dep", "CIRCUIT_OPEN"): 1}


def test_keyboard_interrupt_is_not_retried(clock, registry) -> None:
    fn = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        policy(clock, registry).retry(fn)
    assert fn.calls == 1


def test_repr_reads_like_the_configuration(registry) -> None:
    text = repr(RetryPolicy(name="pull", max_attempts=5, backoff=Exponential(), registry=registry))
    assert text.startswith("RetryPolicy(name='pull', max_attempts=5, max_elapsed=None, "
                           "backoff=Exponential(base=1.0, factor=2.0, cap=30.0)")
    assert "registry" not in text and "clock" not in text


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_attempts=0), "max_attempts"),
    (dict(max_elapsed=-1.0), "max_elapsed"),
])
def test_invalid_configuration_is_rejected(registry, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(registry=registry, **kwargs)


def test_policies_are_immutable(registry) -> None:
    p = RetryPolicy(registry=registry)
    with pytest.raises(AttributeError):
        p.max_attempts = 9  # type: ignore[misc]

