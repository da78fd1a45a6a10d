"""The library as a service uses it: decorator and keyed-breaker overhead, keyed-breaker memory.

Peers in the same run: pybreaker (one breaker per key kept in a dict by hand, as users do
today), tenacity (its decorator over pybreaker's, for breaker + retry in one line) and
aiobreaker (asyncio).
Overhead = seconds per wrapped call minus a bare call of the same shape; all calls succeed.
Run: ``python -m bench.library``.
"""
from __future__ import annotations

import asyncio
import gc
import itertools
import time
import tracemalloc
from typing import Callable

import aiobreaker
import pybreaker
import tenacity

from bench.common import Row, format_table, per_call_seconds
from exporter.resilience import (CircuitBreaker, KeyedBreakers, ResilienceRegistry, RetryBudget, RetryPolicy,
                                 resilient)

KEYS = 10_000
CALLS = 200_000
RATIO_GOAL = 0.5
FLAT_GOAL = 1.5  # per-call cost with 10,000 keys against 10 keys


def noop() -> None:
    return None


def noop_key(key: str) -> None:
    return None


def _policy() -> RetryPolicy:
    return RetryPolicy(name="bench", max_attempts=3, registry=ResilienceRegistry(), budget=RetryBudget())


def _overhead(fn: Callable[[], object], bare: float, calls: int = CALLS) -> float:
    return max(0.0, per_call_seconds(fn, calls=calls) - bare)


class PybreakerPerKey:
    """What a pybreaker user writes for one breaker per device: a dict filled on first use."""

    def __init__(self) -> None:
        self.breakers: dict[str, pybreaker.CircuitBreaker] = {}

    def get(self, key: str) -> pybreaker.CircuitBreaker:
        breaker = self.breakers.get(key)
        if breaker is None:
            breaker = self.breakers[key] = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
        return breaker

    def call(self, key: str, fn: Callable[[], object]) -> object:
        return self.get(key).call(fn)


def _decorator_rows() -> list[Row]:
    bare = per_call_seconds(lambda: noop(), calls=CALLS)
    ours_breaker = resilient(CircuitBreaker("bench"))(noop)
    peer_breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)(noop)
    ours_both = resilient(CircuitBreaker("bench"), _policy())(noop)
    peer_both = tenacity.retry(stop=tenacity.stop_after_attempt(3))(
        pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)(noop))
    b_ours, b_peer = _overhead(ours_breaker, bare), _overhead(peer_breaker, bare)
    r_ours, r_peer = _overhead(ours_both, bare), _overhead(peer_both, bare, CALLS // 10)
    return [
        Row("decorator overhead, breaker (closed, success)", b_ours, b_peer, "s",
            peer_name="@pybreaker.CircuitBreaker(...)", goal=f"<= {RATIO_GOAL}x",
            met=b_peer > 0 and b_ours / b_peer <= RATIO_GOAL),
        Row("decorator overhead, breaker + retry (success)", r_ours, r_peer, "s",
            peer_name="@tenacity.retry over @pybreaker", goal=f"<= {RATIO_GOAL}x",
            met=r_peer > 0 and r_ours / r_peer <= RATIO_GOAL),
    ]


async def _anoop() -> None:
    return None


def _async_per_call(make_call: Callable[[], Callable[[], object]], calls: int = CALLS // 4, repeats: int = 5) -> float:
    """Best-of-``repeats`` seconds per awaited call inside one running event loop."""
    async def run() -> float:
        call = make_call()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                await call()  # type: ignore[misc]
            best = min(best, (time.perf_counter() - start) / calls)
        return best
    return asyncio.run(run())


def _async_rows() -> list[Row]:
    bare = _async_per_call(lambda: lambda: _anoop())
    ours_cb = CircuitBreaker("bench-async")
    peer_cb = aiobreaker.CircuitBreaker(fail_max=5)
    ours = max(0.0, _async_per_call(lambda: lambda: ours_cb.call_async(_anoop)) - bare)
    peer = max(0.0, _async_per_call(lambda: lambda: peer_cb.call_async(_anoop)) - bare)
    return [Row("asyncio breaker overhead per call (closed, success)", ours, peer, "s",
                peer_name="aiobreaker.CircuitBreaker.call_async", goal=f"<= {RATIO_GOAL}x",
                met=peer > 0 and ours / peer <= RATIO_GOAL)]


def _keyed_call_seconds(n_keys: int) -> tuple[float, float, float]:
    """(bare, ours, peer) seconds per call cycling over n_keys already-created keys."""
    names = [f"device-{i:05d}" for i in range(n_keys)]
    ours = KeyedBreakers("bench", max_keys=max(n_keys, 1))
    peer = PybreakerPerKey()
    for name in names:
        ours.get(name)
        peer.get(name)
    cycle = itertools.cycle(names).__next__
    ours_call, peer_call = ours.call, peer.call
    bare = per_call_seconds(lambda: noop_key(cycle()), calls=CALLS)
    return (bare, per_call_seconds(lambda: ours_call(cycle(), noop), calls=CALLS),
            per_call_seconds(lambda: peer_call(cycle(), noop), calls=CALLS))


def _keyed_rows() -> list[Row]:
    # alternated, best of three each: on a shared 2-core machine one pass can be 2x off
    small, large = [], []
    for _ in range(3):
        small.append(_keyed_call_seconds(10))
        large.append(_keyed_call_seconds(KEYS))
    bare10, ours10, peer10 = (min(s[i] for s in small) for i in range(3))
    bare, ours, peer = (min(s[i] for s in large) for i in range(3))
    ours_overhead, peer_overhead = max(0.0, ours - bare), max(0.0, peer - bare)
    flat = ours_overhead / max(ours10 - bare10, 1e-12)
    peer_flat = peer_overhead / max(peer10 - bare10, 1e-12)

    names = [f"device-{i:05d}" for i in range(KEYS)]
    keyed = KeyedBreakers("bench-retry", max_keys=KEYS)
    devices = PybreakerPerKey()
    for name in names:
        keyed.get(name)
        devices.get(name)
    ours_read = resilient(keyed, _policy(), key=noop_key_identity)(noop_key)
    peer_read = tenacity.retry(stop=tenacity.stop_after_attempt(3))(lambda key: devices.call(key, noop))
    cycle = itertools.cycle(names).__next__
    retry_ours = _overhead(lambda: ours_read(cycle()), bare)
    retry_peer = _overhead(lambda: peer_read(cycle()), bare, CALLS // 10)
    return [
        Row(f"keyed breaker overhead per call, {KEYS:,} keys", ours_overhead, peer_overhead, "s",
            peer_name="dict of pybreaker breakers", goal=f"<= {RATIO_GOAL}x",
            met=peer_overhead > 0 and ours_overhead / peer_overhead <= RATIO_GOAL),
        Row(f"keyed breaker per-call cost, {KEYS:,} keys / 10 keys", flat, peer_flat, "x",
            peer_name="dict of pybreaker breakers", goal=f"<= {FLAT_GOAL}x (flat)", met=flat <= FLAT_GOAL),
        Row(f"keyed breaker + retry decorator, {KEYS:,} keys", retry_ours, retry_peer, "s",
            peer_name="@tenacity.retry over dict of pybreaker", goal=f"<= {RATIO_GOAL}x",
            met=retry_peer > 0 and retry_ours / retry_peer <= RATIO_GOAL),
    ]


def noop_key_identity(key: str) -> str:
    return key


def _traced_bytes(build: Callable[[], object]) -> tuple[int, object]:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    built = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return after - before, built


def _memory_rows() -> list[Row]:
    names = [f"device-{i:05d}" for i in range(KEYS)]

    def ours() -> KeyedBreakers:
        keyed = KeyedBreakers("bench-memory", max_keys=KEYS)
        for name in names:
            keyed.get(name)
        return keyed

    def peer() -> PybreakerPerKey:
        devices = PybreakerPerKey()
        for name in names:
            devices.get(name)
        return devices

    ours_bytes, kept_ours = _traced_bytes(ours)
    peer_bytes, kept_peer = _traced_bytes(peer)
    del kept_ours, kept_peer
    growth = _churn_growth()
    mib = 1024 * 1024
    return [
        Row(f"keyed breaker memory, {KEYS:,} keys", ours_bytes / mib, peer_bytes / mib, "MiB",
            peer_name="dict of pybreaker breakers", goal="<= peer", met=ours_bytes <= peer_bytes),
        Row(f"keyed memory after {10 * KEYS:,} distinct keys through a {KEYS:,} cap / after {KEYS:,}",
            growth, None, "x", goal="<= 1.1x (flat)", met=growth <= 1.1),
    ]


def _churn_growth() -> float:
    """Traced memory after 10 x KEYS distinct keys through a KEYS cap, over that after the first KEYS."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    churn = _fill(KeyedBreakers("bench-cap", max_keys=KEYS), 0, KEYS)
    gc.collect()
    first = tracemalloc.get_traced_memory()[0] - base
    _fill(churn, KEYS, 10 * KEYS)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return after / first


def _fill(keyed: KeyedBreakers, start: int, stop: int) -> KeyedBreakers:
    for i in range(start, stop):
        keyed.get(f"device-{i:06d}")
    return keyed


def rows() -> list[Row]:
    return [*_decorator_rows(), *_async_rows(), *_keyed_rows(), *_memory_rows()]


if __name__ == "__main__":
    print(format_table(rows()))
