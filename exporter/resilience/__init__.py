"""Retry, back-off and circuit breaking for sync and asyncio code; no exporter dependencies.

Usage::

    from exporter.resilience import FullJitter, RetryPolicy, RetryTracker, get_breaker
    breaker = get_breaker("docker", failure_threshold=5, open_timeout=30.0)
    policy = RetryPolicy(name="docker", max_attempts=4, backoff=FullJitter(0.5, 10.0))
    info = policy.retry(breaker.call, client.info)  # CircuitOpenError is never retried
    tracker = RetryTracker(); tracker.should_retry("nginx:1.27")  # kubelet-style per key
    devices = REGISTRY.keyed("devices", BreakerSettings(failure_threshold=3), label="deviceId")
    devices.call("d1", read_device, "d1")                        # one breaker per device id

Opt-in modules (they import their library): ``.prometheus`` (ResilienceCollector for
prometheus_client), ``.transport`` (ResilientAdapter for requests). See docs/library.md.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .backoff import (
    BackoffStrategy,
    Constant,
    DecorrelatedJitter,
    EqualJitter,
    Exponential,
    FullJitter,
    KubeletBackoff,
)
from .breaker import TRANSITIONS, BreakerSnapshot, CircuitBreaker, CircuitState
from .budget import RetryBudget
from .errors import TRANSIENT_STATUS, CircuitOpenError, ErrorCode, ResilienceError, classify
from .keyed import BreakerSettings, KeyedBreakers, KeyedSnapshot
from .registry import REGISTRY, ResilienceRegistry, RetryCounter, RetryOutcome, RetrySnapshot, get_breaker

if TYPE_CHECKING:
    from .clock import FakeClock
    from .patterns import guard, resilient
    from .retry import DEFAULT_RETRY_ON, RetryPolicy
    from .tracker import RetryState, RetryTracker
    from .unavailable import CircuitOpenMiddleware, Unavailable, circuit_open_response

# Imported on first use (PEP 562): a process that never retries in-process, tracks retries per
# key, decorates or serves a WSGI app (an exporter watching Docker) does not load them.
_LAZY = {"FakeClock": "clock", "guard": "patterns", "resilient": "patterns", "DEFAULT_RETRY_ON": "retry",
         "RetryPolicy": "retry", "RetryState": "tracker", "RetryTracker": "tracker",
         "CircuitOpenMiddleware": "unavailable", "Unavailable": "unavailable", "circuit_open_response": "unavailable"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Every public name, loaded or not: help(), IDEs and IPython completion list by dir()."""
    return sorted({*globals(), *_LAZY})


__all__ = [
    "BackoffStrategy", "Constant", "DecorrelatedJitter", "EqualJitter", "Exponential", "FullJitter",
    "KubeletBackoff", "TRANSITIONS", "BreakerSnapshot", "CircuitBreaker", "CircuitState", "RetryBudget",
    "FakeClock", "CircuitOpenError", "ErrorCode", "ResilienceError", "TRANSIENT_STATUS", "classify", "REGISTRY",
    "ResilienceRegistry", "RetryCounter", "RetryOutcome", "RetrySnapshot", "get_breaker", "DEFAULT_RETRY_ON",
    "RetryPolicy", "RetryState", "RetryTracker", "BreakerSettings", "KeyedBreakers", "KeyedSnapshot",
    "guard", "resilient", "CircuitOpenMiddleware", "Unavailable", "circuit_open_response",
]
