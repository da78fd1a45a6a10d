"""Per-call overhead of our breaker and retry policy against pybreaker and tenacity.

Overhead = seconds per wrapped call minus seconds per bare no-op call (called through the same
lambda shape), measured in one run.
Run: ``python -m bench.resilience``.
"""
from __future__ import annotations

import pybreaker
import tenacity

from bench.common import Row, format_table, per_call_seconds
from exporter.resilience import CircuitBreaker, ResilienceRegistry, RetryBudget, RetryPolicy

BREAKER_GOAL_SECONDS = 1e-6
RATIO_GOAL = 0.5


def noop() -> None:
    return None


def _overhead(fn, bare: float, calls: int) -> float:
    return max(0.0, per_call_seconds(fn, calls=calls) - bare)


def rows() -> list[Row]:
    """Measure breaker and retry fast paths (success on the first attempt, CLOSED breaker)."""
    calls = 200_000
    # Baseline has the same shape as the measured lambdas, so only the wrapper's cost remains.
    bare = per_call_seconds(lambda: noop(), calls=calls)

    ours_cb = CircuitBreaker("bench")
    peer_cb = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    ours_cb_call, peer_cb_call = ours_cb.call, peer_cb.call
    cb_ours = _overhead(lambda: ours_cb_call(noop), bare, calls)
    cb_peer = _overhead(lambda: peer_cb_call(noop), bare, calls)

    policy = RetryPolicy(name="bench", max_attempts=3, registry=ResilienceRegistry(),
                         budget=RetryBudget())
    retry_call = policy.retry
    ours_retry = _overhead(lambda: retry_call(noop), bare, calls)

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3))
    decorated = tenacity.retry(stop=tenacity.stop_after_attempt(3))(noop)
    tenacity_calls = calls // 10  # ~10x slower; fewer calls keep the run short
    peer_object = _overhead(lambda: retrying(noop), bare, tenacity_calls)
    peer_decorator = _overhead(decorated, bare, tenacity_calls)
    peer_retry, peer_retry_name = min(
        (peer_object, "tenacity.Retrying(...)(fn)"), (peer_decorator, "@tenacity.retry"))

    cb_ratio = cb_ours / cb_peer if cb_peer else None
    retry_ratio = ours_retry / peer_retry if peer_retry else None
    return [
        Row("breaker overhead per call (closed, success)", cb_ours, cb_peer, "s",
            peer_name="pybreaker.CircuitBreaker.call",
            goal=f"<= {BREAKER_GOAL_SECONDS:g} s and <= {RATIO_GOAL}x",
            met=cb_ours <= BREAKER_GOAL_SECONDS and cb_ratio is not None and cb_ratio <= RATIO_GOAL),
        Row("retry overhead per call (first attempt succeeds)", ours_retry, peer_retry, "s",
            peer_name=peer_retry_name, goal=f"<= {RATIO_GOAL}x",
            met=retry_ratio is not None and retry_ratio <= RATIO_GOAL),
    ]


if __name__ == "__main__":
    print(format_table(rows()))
