"""CircuitBreaker state machine: every edge, the failure window, exclusions, listeners, snapshots."""
from __future__ import annotations

import asyncio

import pytest

from exporter.resilience import (
    TRANSITIONS,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    ErrorCode,
    FakeClock,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
FORCED_OPEN, DISABLED = CircuitState.FORCED_OPEN, CircuitState.DISABLED


class Boom(Exception):
    pass


def ok() -> str:
    return "ok"


def fail() -> None:
    raise Boom("down")


def make(clock: FakeClock, **kw) -> tuple[CircuitBreaker, list[tuple[CircuitState, CircuitState]]]:
    config = dict(failure_threshold=3, window=60.0, open_timeout=30.0, success_threshold=2)
    config.update(kw)
    breaker = CircuitBreaker("dep", clock=clock, **config)
    seen: list[tuple[CircuitState, CircuitState]] = []
    breaker.add_listener(lambda b, frm, to: seen.append((frm, to)))
    return breaker, seen


def trip(breaker: CircuitBreaker, n: int = 3) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            breaker.call(fail)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def test_state_labels_and_metric_values_are_stable() -> None:
    assert [(s.label, s.metric_value) for s in CircuitState] == [
        ("closed", 0), ("open", 1), ("half_open", 2), ("forced_open", 3), ("disabled", 4)]


def test_transition_table_has_no_self_loops_and_covers_the_automatic_cycle() -> None:
    assert all(a is not b for a, b in TRANSITIONS)
    assert {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED), (HALF_OPEN, OPEN)} <= TRANSITIONS


def test_closed_breaker_passes_calls_and_returns_results(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    assert breaker.call(lambda a, b=0: a + b, 1, b=2) == 3
    assert breaker.state is CLOSED and seen == []


def test_threshold_failures_inside_window_open_the_circuit(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    trip(breaker, 2)
    assert breaker.state is CLOSED
    trip(breaker, 1)
    assert breaker.state is OPEN
    assert seen == [(CLOSED, OPEN)]


def test_open_circuit_rejects_without_calling_and_reports_retry_after(clock: FakeClock) -> None:
    breaker, _ = make(clock)
    trip(breaker)
    clock.advance(10)
    calls = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(calls.append, 1)
    assert calls == []
    assert info.value.name == "dep" and info.value.code is ErrorCode.CIRCUIT_OPEN
    assert info.value.retry_after == pytest.approx(20.0)
    assert "dep" in str(info.value)


def test_failures_older_than_the_window_do_not_count(clock: FakeClock) -> None:
    breaker, _ = make(clock)
    trip(breaker, 2)
    clock.advance(61)
    trip(breaker, 2)
    assert breaker.state is CLOSED
    assert breaker.snapshot().failures_in_window == 2
    trip(breaker, 1)
    assert breaker.state is OPEN


def test_open_moves_to_half_open_lazily_on_state_read_after_timeout(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    trip(breaker)
    clock.advance(29.9)
    assert breaker.state is OPEN
    clock.advance(0.1)
    assert seen == [(CLOSED, OPEN)]  # nothing happens until someone looks
    assert breaker.state is HALF_OPEN
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]


def test_open_moves_to_half_open_on_next_call_and_that_call_is_the_probe(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    trip(breaker)
    clock.advance(30)
    assert breaker.call(ok) == "ok"
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN)]
    assert breaker.state is HALF_OPEN  # one success of success_threshold=2


def test_half_open_closes_after_consecutive_probe_successes(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    trip(breaker)
    clock.advance(30)
    breaker.call(ok)
    breaker.call(ok)
    assert breaker.state is CLOSED
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert breaker.snapshot().failures_in_window == 0


def test_half_open_probe_failure_reopens_and_restarts_the_timeout(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    trip(breaker)
    clock.advance(30)
    breaker.call(ok)
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state is OPEN
    assert seen[-1] == (HALF_OPEN, OPEN)
    snap = breaker.snapshot()
    assert snap.opened_at == clock() and snap.retry_after == pytest.approx(30.0)


def test_half_open_rejects_callers_beyond_the_probe_limit(clock: FakeClock) -> None:
    breaker, _ = make(clock, half_open_max_calls=1)
    trip(breaker)
    clock.advance(30)
    permit = breaker.acquire_permission()  # the probe is in flight
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(ok)
    assert info.value.retry_after is None
    breaker.on_success(permit)
    assert breaker.call(ok) == "ok"  # the slot is free again
    assert breaker.state is CLOSED


def test_force_open_rejects_everything_until_reset(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    breaker.force_open()
    breaker.force_open()  # idempotent: no second transition
    clock.advance(10_000)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    assert breaker.state is FORCED_OPEN
    breaker.reset()
    assert breaker.state is CLOSED and breaker.call(ok) == "ok"
    assert seen == [(CLOSED, FORCED_OPEN), (FORCED_OPEN, CLOSED)]


def test_disabled_breaker_lets_every_call_through_and_never_trips(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    breaker.disable()
    trip(breaker, 10)
    assert breaker.state is DISABLED and breaker.call(ok) == "ok"
    breaker.force_open()
    breaker.disable()
    breaker.reset()
    assert seen == [(CLOSED, DISABLED), (DISABLED, FORCED_OPEN), (FORCED_OPEN, DISABLED), (DISABLED, CLOSED)]


@pytest.mark.parametrize("start", ["open", "half_open"])
def test_manual_operations_work_from_open_and_half_open(clock: FakeClock, start: str) -> None:
    breaker, seen = make(clock)
    trip(breaker)
    if start == "half_open":
        clock.advance(30)
        assert breaker.state is HALF_OPEN
    origin = breaker.state
    breaker.force_open()
    breaker.reset()
    trip(breaker)
    if start == "half_open":
        clock.advance(30)
        breaker.state
    breaker.disable()
    breaker.reset()
    assert (origin, FORCED_OPEN) in seen and (origin, DISABLED) in seen
    if origin is OPEN:
        trip(breaker)
        breaker.reset()
        assert seen[-1] == (OPEN, CLOSED)


def test_reset_when_closed_clears_the_window_without_a_transition(clock: FakeClock) -> None:
    breaker, seen = make(clock)
    trip(breaker, 2)
    breaker.reset()
    trip(breaker, 2)
    assert breaker.state is CLOSED and seen == []


def test_excluded_error_types_are_ignored_and_reraised(clock: FakeClock) -> None:
    breaker, _ = make(clock, excluded=(KeyError,))
    for _ in range(10):
        with pytest.raises(KeyError):
            breaker.call({}.__getitem__, "missing")
    snap = breaker.snapshot()
    assert snap.state is CLOSED
    assert snap.calls == {"success": 0, "failure": 0, "rejected": 0, "ignored": 10}


def test_excluded_predicate_is_ignored_and_frees_a_half_open_probe_slot(clock: FakeClock) -> None:
    breaker, _ = make(clock, excluded=lambda exc: "ignore me" in str(exc))
    trip(breaker)
    clock.advance(30)
    with pytest.raises(Boom):
        breaker.call(lambda: (_ for _ in ()).throw(Boom("ignore me")))
    assert breaker.state is HALF_OPEN
    assert breaker.call(ok) == "ok"  # the ignored probe released its slot


def test_listener_is_called_once_per_transition_and_failures_are_contained(
        clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    breaker, seen = make(clock)
    calls = []

    def broken(b, frm, to):
        calls.append((b.name, frm, to))
        raise RuntimeError("listener bug")

    breaker.add_listener(broken)
    trip(breaker, 3)
    for _ in range(2):
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
    assert calls == [("dep", CLOSED, OPEN)]
    assert seen == [(CLOSED, OPEN)]
    assert "listener" in caplog.text


def test_listener_may_read_the_breaker_without_deadlocking(clock: FakeClock) -> None:
    breaker = CircuitBreaker("dep", failure_threshold=1, clock=clock)
    observed = []
    breaker.add_listener(lambda b, frm, to: observed.append(b.snapshot().state))
    trip(breaker, 1)
    assert observed == [OPEN]


def test_snapshot_counts_outcomes_and_transitions(clock: FakeClock) -> None:
    breaker, _ = make(clock)
    breaker.call(ok)
    trip(breaker)
    for _ in range(2):
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
    clock.advance(30)
    breaker.call(ok)
    breaker.call(ok)
    snap = breaker.snapshot()
    assert snap.name == "dep" and snap.state is CLOSED
    assert snap.calls == {"success": 3, "failure": 3, "rejected": 2, "ignored": 0}
    assert snap.transitions == {("closed", "open"): 1, ("open", "half_open"): 1, ("half_open", "closed"): 1}
    assert snap.opened_at is None and snap.retry_after is None


def test_late_result_from_an_earlier_phase_does_not_move_the_state(clock: FakeClock) -> None:
    breaker, _ = make(clock)
    stale = breaker.acquire_permission()  # taken while CLOSED
    trip(breaker)
    clock.advance(30)
    probe = breaker.acquire_permission()
    breaker.on_error(Boom("late"), stale)  # a slow call from before the trip
    assert breaker.state is HALF_OPEN
    breaker.on_success(probe)
    assert breaker.state is HALF_OPEN


def test_base_exceptions_like_cancellation_are_ignored(clock: FakeClock) -> None:
    breaker, _ = make(clock, failure_threshold=1)

    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        breaker.call(interrupted)
    assert breaker.state is CLOSED and breaker.snapshot().calls["ignored"] == 1


def test_decorator_wraps_sync_and_async_functions(clock: FakeClock) -> None:
    breaker, _ = make(clock, failure_threshold=1)

    @breaker
    def add(a: int, b: int) -> int:
        return a + b

    @breaker
    async def add_async(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    @breaker
    async def broken() -> None:
        raise Boom("x")

    assert add(1, 2) == 3 and add.__name__ == "add"
    assert asyncio.run(add_async(2, 3)) == 5
    with pytest.raises(Boom):
        asyncio.run(broken())
    with pytest.raises(CircuitOpenError):
        asyncio.run(add_async(1, 1))
    with pytest.raises(CircuitOpenError):
        add(1, 1)


def test_call_async_runs_the_same_state_machine(clock: FakeClock) -> None:
    breaker, seen = make(clock, failure_threshold=1, success_threshold=1)

    async def scenario() -> None:
        async def fails():
            raise Boom("x")

        async def works():
            return 7

        with pytest.raises(Boom):
            await breaker.call_async(fails)
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(works)
        clock.advance(30)
        assert await breaker.call_async(works) == 7

    asyncio.run(scenario())
    assert seen == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]


@pytest.mark.parametrize("kwargs, message", [
    (dict(failure_threshold=0), "failure_threshold"),
    (dict(window=0), "window"),
    (dict(open_timeout=-1), "open_timeout"),
    (dict(half_open_max_calls=0), "half_open_max_calls"),
    (dict(excluded="nope"), "excluded"),
])
def test_invalid_configuration_is_rejected_with_a_clear_message(kwargs, message) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        CircuitBreaker("bad", **kwargs)
