"""resilient(), guard(), the 503 circuit_open answer, and Retry-After as a floor for retry delays."""
from __future__ import annotations

import asyncio
import json

import pytest

from exporter.resilience import (BreakerSettings, CircuitBreaker, CircuitOpenError, CircuitOpenMiddleware,
                                 CircuitState, Constant, FakeClock, KeyedBreakers, ResilienceRegistry,
                                 RetryBudget, RetryPolicy, circuit_open_response, guard, resilient)


def policy(clock: FakeClock, **kw: object) -> RetryPolicy:
    return RetryPolicy(name="t", max_attempts=3, backoff=Constant(1.0), registry=ResilienceRegistry(),
                       budget=RetryBudget.unlimited(), sleep=clock.sleep, async_sleep=clock.async_sleep,
                       **kw)  # type: ignore[arg-type]


class Flaky:
    """Fails ``failures`` times with ConnectionError, then returns "ok"; counts its calls."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def __call__(self, *args: object) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("flaky")
        return "ok"


def test_decorator_retries_through_the_breaker_in_one_line() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", failure_threshold=5, clock=clock)
    flaky = Flaky(2)
    fetch = resilient(breaker, policy(clock))(flaky)
    assert fetch() == "ok" and flaky.calls == 3
    assert breaker.snapshot().calls["failure"] == 2 and clock.sleeps == [1.0, 1.0]


def test_an_open_breaker_stops_the_retries_at_once() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", failure_threshold=1, clock=clock)
    flaky = Flaky(10)
    with pytest.raises(CircuitOpenError):
        resilient(breaker, policy(clock))(flaky)()
    assert flaky.calls == 1 and breaker.state is CircuitState.OPEN


def test_keyed_decorator_picks_the_breaker_from_the_arguments() -> None:
    clock = FakeClock()
    devices = KeyedBreakers("devices", BreakerSettings(failure_threshold=1), clock=clock)

    @resilient(devices, key=lambda device_id: device_id)
    def read(device_id: str) -> str:
        if device_id == "bad":
            raise TimeoutError
        return device_id

    with pytest.raises(TimeoutError):
        read("bad")
    with pytest.raises(CircuitOpenError):
        read("bad")
    assert read("good") == "good"
    with pytest.raises(TypeError, match="need key="):
        resilient(devices)


def test_async_decorator_and_async_guard() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("b", failure_threshold=3, clock=clock)  # 1 flaky attempt + 2 bad answers
    flaky = Flaky(1)

    @resilient(breaker, policy(clock))
    async def fetch() -> str:
        return flaky()

    async def scenario() -> None:
        assert await fetch() == "ok"
        for _ in range(2):
            with pytest.raises(ValueError):
                async with guard(breaker):
                    raise ValueError("bad answer")
        with pytest.raises(CircuitOpenError):
            async with guard(breaker):
                pytest.fail("the block must not run while open")

    asyncio.run(scenario())
    assert breaker.state is CircuitState.OPEN


def test_guard_records_success_and_failure_of_its_block() -> None:
    devices = KeyedBreakers("devices", BreakerSettings(failure_threshold=1))
    with guard(devices, "d1") as breaker:
        pass
    with pytest.raises(OSError):
        with guard(devices, "d1"):
            raise OSError("unreachable")
    assert breaker.snapshot().calls == {"success": 1, "failure": 1, "rejected": 0, "ignored": 0}
    assert breaker.state is CircuitState.OPEN


def test_circuit_open_becomes_503_with_retry_after_and_a_json_body() -> None:
    answer = circuit_open_response(CircuitOpenError("d7", retry_after=12.2), deviceId="d7")
    assert answer.status == 503 and answer.headers["Retry-After"] == "13"
    document = json.loads(answer.body)
    assert document["error"] == "circuit_open" and document["deviceId"] == "d7"
    assert document["retry_after_seconds"] == 13 and "'d7' is open" in document["message"]
    assert circuit_open_response(CircuitOpenError("forced")).headers["Retry-After"] == "60"


def test_wsgi_middleware_answers_503_when_the_app_raises_circuit_open() -> None:
    def app(environ: dict, start_response):  # type: ignore[no-untyped-def]
        raise CircuitOpenError("d1", retry_after=3.0)

    seen: list = []
    body = b"".join(CircuitOpenMiddleware(app)({}, lambda status, headers, exc_info=None: seen.append((status, headers))))
    assert seen[0][0] == "503 Service Unavailable" and ("Retry-After", "3") in seen[0][1]
    assert json.loads(body)["error"] == "circuit_open"


def test_retry_after_on_an_error_is_a_floor_for_the_next_delay() -> None:
    clock = FakeClock()

    class Throttled(Exception):
        retry_after = 7.0

    calls = []

    def throttled() -> str:
        calls.append(clock())
        if len(calls) == 1:
            raise Throttled
        return "ok"

    assert policy(clock, retry_on=lambda exc: True).retry(throttled) == "ok"
    assert clock.sleeps == [7.0]
