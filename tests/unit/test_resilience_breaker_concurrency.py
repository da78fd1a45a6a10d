"""Half-open probe limits under real contention: 50 threads and 50 asyncio tasks at once."""
from __future__ import annotations

import asyncio
import threading

import pytest

from exporter.resilience import CircuitBreaker, CircuitOpenError, CircuitState, FakeClock

CALLERS = 50
DEADLINE = 10.0


def half_open_breaker(max_calls: int) -> CircuitBreaker:
    clock = FakeClock()
    breaker = CircuitBreaker("contended", failure_threshold=1, open_timeout=5.0,
                             success_threshold=1, half_open_max_calls=max_calls, clock=clock)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    clock.advance(5.0)
    assert breaker.state is CircuitState.HALF_OPEN
    return breaker


@pytest.mark.parametrize("max_calls", [1, 3])
def test_half_open_admits_only_the_probe_limit_across_50_threads(max_calls: int) -> None:
    breaker = half_open_breaker(max_calls)
    start = threading.Barrier(CALLERS, timeout=DEADLINE)
    lock = threading.Lock()
    rejected: list[CircuitOpenError] = []
    all_rejected = threading.Event()
    ran: list[int] = []
    errors: list[BaseException] = []

    def probe(i: int) -> str:
        with lock:
            ran.append(i)
        # Hold the probe slot until every other caller has been turned away.
        assert all_rejected.wait(DEADLINE), "rejections never arrived"
        return "ok"

    def caller(i: int) -> None:
        try:
            start.wait()
            breaker.call(probe, i)
        except CircuitOpenError as exc:
            with lock:
                rejected.append(exc)
                if len(rejected) == CALLERS - max_calls:
                    all_rejected.set()
        except BaseException as exc:  # surfaced below; a thread must not swallow failures
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len(ran) == max_calls
    assert len(rejected) == CALLERS - max_calls
    assert breaker.state is CircuitState.CLOSED
    assert breaker.snapshot().calls["rejected"] == CALLERS - max_calls


@pytest.mark.parametrize("max_calls", [1, 3])
def test_half_open_admits_only_the_probe_limit_across_50_asyncio_tasks(max_calls: int) -> None:
    breaker = half_open_breaker(max_calls)

    async def scenario() -> tuple[int, int]:
        all_rejected = asyncio.Event()
        ran: list[int] = []
        rejected = 0

        async def probe(i: int) -> str:
            ran.append(i)
            await all_rejected.wait()
            return "ok"

        async def caller(i: int) -> None:
            nonlocal rejected
            try:
                await breaker.call_async(probe, i)
            except CircuitOpenError:
                rejected += 1
                if rejected == CALLERS - max_calls:
                    all_rejected.set()

        await asyncio.wait_for(asyncio.gather(*(caller(i) for i in range(CALLERS))), DEADLINE)
        return len(ran), rejected

    ran, rejected = asyncio.run(scenario())
    assert ran == max_calls
    assert rejected == CALLERS - max_calls
    assert breaker.state is CircuitState.CLOSED


def test_concurrent_closed_calls_count_every_success_and_failure() -> None:
    breaker = CircuitBreaker("busy", failure_threshold=10_000)
    per_thread, threads_n = 2_000, 8
    start = threading.Barrier(threads_n, timeout=DEADLINE)

    def work(fail: bool) -> None:
        start.wait()
        for _ in range(per_thread):
            try:
                breaker.call((lambda: 1 / 0) if fail else (lambda: None))
            except ZeroDivisionError:
                pass

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    calls = breaker.snapshot().calls
    assert calls["success"] == calls["failure"] == per_thread * threads_n // 2
