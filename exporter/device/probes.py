"""HTTP probes: each target checked on its own interval, with retries and its own breaker.

Attempts go through the target's breaker (`probe:<name>`) inside the retry policy, the
library's usual composition: an open breaker raises CircuitOpenError, which is never retried,
so while it is open no request is sent and the check counts as rejected.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

import requests

from exporter.config import ProbeConfig
from exporter.device.status import ProbeResult, ProbeStatus
from exporter.resilience import (CircuitBreaker, CircuitOpenError, ErrorCode, FullJitter, ResilienceError,
                                 ResilienceRegistry, RetryPolicy, TRANSIENT_STATUS, classify)

log = logging.getLogger(__name__)


class UnexpectedStatus(ResilienceError):
    """The target answered, but not with the expected status; 5xx/429/408 are worth a retry."""

    def __init__(self, status: int, expected: int) -> None:
        code = ErrorCode.NETWORK_ERROR if status in TRANSIENT_STATUS else ErrorCode.INVALID_RESPONSE
        super().__init__(f"got HTTP {status}, expected {expected}", code)
        self.status = status


class ProbeTarget:
    """One target: `check()` runs one probe (all attempts) and records the result."""

    def __init__(self, config: ProbeConfig, status: ProbeStatus, registry: ResilienceRegistry, *,
                 session: requests.Session | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self.status = status
        self.session = session or requests.Session()
        self.wall = wall
        self.breaker: CircuitBreaker = registry.breaker(f"probe:{config.name}", clock=clock)
        self.policy = RetryPolicy(name=f"probe:{config.name}", max_attempts=config.attempts,
                                  backoff=FullJitter(0.2, max(0.2, float(config.timeout))),
                                  registry=registry, clock=clock, sleep=sleep)
        self._last_outcome: str | None = None
        self._sent = 0
        status.add_target(config.name)

    def __repr__(self) -> str:
        return f"ProbeTarget({self.config.name!r}, {self.config.url!r})"

    def _request(self) -> int:
        self._sent += 1
        response = self.session.get(self.config.url, timeout=float(self.config.timeout), allow_redirects=False)
        response.close()
        if response.status_code != self.config.expected_status:
            raise UnexpectedStatus(response.status_code, self.config.expected_status)
        return response.status_code

    def check(self) -> ProbeResult:
        """Probe once (with retries); never raises for the target's own failures."""
        start, at = time.monotonic(), self.wall()
        status_code: int | None = None
        error = ""
        self._sent = 0
        try:
            status_code = self.policy.retry(self.breaker.call, self._request)
            outcome = "success"
        except CircuitOpenError as exc:
            # Rejected only if nothing was sent; a failed attempt that opened the breaker is a failure.
            outcome, error = ("failure" if self._sent else "rejected"), str(exc)
        except Exception as exc:  # any failure of the target is a failed probe
            outcome = "failure"
            status_code = getattr(exc, "status", None)
            error = f"{classify(exc).value}: {exc}"
        result = ProbeResult(success=outcome == "success", duration=time.monotonic() - start, at=at,
                             status_code=status_code, error=error)
        self.status.record(self.config.name, result, outcome)
        if outcome != self._last_outcome:  # one line per change, not per probe
            level = logging.INFO if outcome == "success" else logging.WARNING
            log.log(level, f"probe {outcome}", extra={"fields": {
                "target": self.config.name, "url": self.config.url, "err": error,
                "breaker": self.breaker.state.label}})
            self._last_outcome = outcome
        return result


class Prober:
    """Runs every target's `check()` on its own daemon thread until `stop()`."""

    def __init__(self, configs: Sequence[ProbeConfig], status: ProbeStatus, registry: ResilienceRegistry) -> None:
        self._stop = threading.Event()
        self.targets = [ProbeTarget(c, status, registry, sleep=self._wait) for c in configs]
        self._threads = [threading.Thread(target=self._loop, args=(t,), name=f"probe:{t.config.name}", daemon=True)
                         for t in self.targets]

    def _wait(self, seconds: float) -> None:
        """Retry back-off that ends early on shutdown."""
        self._stop.wait(seconds)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _loop(self, target: ProbeTarget) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            target.check()
            self._stop.wait(max(0.0, float(target.config.interval) - (time.monotonic() - began)))

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)
