"""RetryTracker: kubelet-style per-key back-off for reconciliation loops, driven by a FakeClock."""
from __future__ import annotations

import threading

import pytest

from exporter.resilience import Constant, FakeClock, KubeletBackoff, RetryState, RetryTracker


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


def test_unknown_key_may_be_tried_immediately(clock) -> None:
    tracker = RetryTracker(clock=clock)
    assert tracker.should_retry("nginx:1.27")
    assert tracker.state("nginx:1.27") is None and tracker.keys() == []


def test_consecutive_failures_follow_the_kubelet_schedule(clock) -> None:
    tracker = RetryTracker(clock=clock)
    waits = []
    for _ in range(7):
        state = tracker.record_failure("img", RuntimeError("pull failed"))
        waits.append(state.next_retry - clock())
        clock.advance(state.next_retry - clock())  # the loop comes back exactly on time
    assert waits == [10, 20, 40, 80, 160, 300, 300]


def test_key_is_held_back_until_its_next_retry_time(clock) -> None:
    tracker = RetryTracker(clock=clock)
    tracker.record_failure("img")
    clock.advance(9.99)
    assert not tracker.should_retry("img")
    clock.advance(0.01)
    assert tracker.should_retry("img")


def test_failure_after_600_quiet_seconds_restarts_the_count(clock) -> None:
    tracker = RetryTracker(clock=clock)
    for _ in range(6):
        tracker.record_failure("img")
    assert tracker.state("img").count == 6
    clock.advance(600)  # exactly 2 x max: not yet "quiet for longer than"
    assert tracker.record_failure("img").count == 7
    clock.advance(600.5)
    state = tracker.record_failure("img")
    assert state.count == 1 and state.next_retry == clock() + 10


def test_state_records_the_last_error_and_timestamps(clock) -> None:
    tracker = RetryTracker(clock=clock)
    state = tracker.record_failure(("node-1", "img"), ConnectionError("registry unreachable"))
    assert state == RetryState(count=1, last_error="ConnectionError: registry unreachable",
                               last_failure=clock(), next_retry=clock() + 10, exhausted=False)
    assert tracker.record_failure(("node-1", "img"), "plain text").last_error == "plain text"
    assert tracker.record_failure(("node-1", "img")).last_error is None
    with pytest.raises(AttributeError):
        state.count = 5  # type: ignore[misc]


def test_success_forgets_the_key(clock) -> None:
    tracker = RetryTracker(clock=clock)
    tracker.record_failure("a")
    tracker.record_failure("b")
    tracker.record_success("a")
    assert tracker.keys() == ["b"] and tracker.should_retry("a")
    tracker.forget("b")
    tracker.forget("never-seen")
    assert tracker.keys() == []


def test_exhausted_after_max_attempts_until_quiet_for_reset_after(clock) -> None:
    tracker = RetryTracker(backoff=KubeletBackoff(1.0, 4.0), clock=clock, max_attempts=3)
    states = [tracker.record_failure("img") for _ in range(3)]
    assert [s.exhausted for s in states] == [False, False, True]
    clock.advance(8.0)
    assert not tracker.should_retry("img")  # next_retry passed, but the key is exhausted
    clock.advance(0.5)
    assert tracker.should_retry("img")  # quiet > 2 x max: a fresh start
    assert tracker.record_failure("img").count == 1


def test_strategies_without_reset_never_restart_the_count(clock) -> None:
    tracker = RetryTracker(backoff=Constant(5.0), clock=clock)
    tracker.record_failure("k")
    clock.advance(10**6)
    assert tracker.record_failure("k").count == 2


def test_gc_drops_keys_quiet_for_longer_than_reset_after(clock) -> None:
    tracker = RetryTracker(clock=clock)
    tracker.record_failure("old")
    clock.advance(601)
    tracker.record_failure("new")
    assert tracker.gc() == 1 and tracker.keys() == ["new"]


def test_concurrent_failures_on_one_key_are_all_counted(clock) -> None:
    tracker = RetryTracker(clock=clock)
    threads_n, per_thread = 8, 250
    start = threading.Barrier(threads_n, timeout=10)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            tracker.record_failure("img")

    threads = [threading.Thread(target=work) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert tracker.state("img").count == threads_n * per_thread


def test_invalid_max_attempts_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryTracker(max_attempts=0)
