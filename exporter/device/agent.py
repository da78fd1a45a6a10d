"""The agent runner: one scheduled run = breaker -> retry policy -> the command's process group.

A run goes through the agent's circuit breaker (`agent:<name>`), so repeated failed runs stop
hammering the device until a trial run; inside one run, transient failure types are retried
with the library's RetryPolicy. Results land in `AgentStatus` and the after-run hooks
(health.json, textfile) run; metrics are rendered elsewhere from the status.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Callable, Sequence

from exporter.config import AgentConfig
from exporter.device.failures import FailureTypes
from exporter.device.process import ProcessOutcome, run_command
from exporter.device.status import AgentRun, AgentSnapshot, AgentStatus
from exporter.resilience import CircuitOpenError, ErrorCode, FullJitter, ResilienceError, ResilienceRegistry, RetryPolicy

log = logging.getLogger(__name__)


class AgentFailed(ResilienceError):
    """A run attempt ended with a failure type; `code` tells the retry policy what kind it was."""

    def __init__(self, failure_type: str, outcome: ProcessOutcome) -> None:
        code = ErrorCode.TIMEOUT if outcome.timed_out else ErrorCode.AGENT_ERROR
        super().__init__(f"agent failed: {failure_type} (exit code {outcome.exit_code})", code)
        self.failure_type = failure_type
        self.outcome = outcome


class AgentRunner:
    """Runs the configured command once per `run()`; never raises for the agent's own failures."""

    def __init__(self, config: AgentConfig, status: AgentStatus, registry: ResilienceRegistry, *,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] | None = None) -> None:
        if not config.command:
            raise ValueError("agent.command is empty: nothing to run")
        self.config = config
        self.command: tuple[str, ...] = tuple(config.command)
        self.status = status
        self.failures = FailureTypes(config.exit_codes)
        self.transient = frozenset(config.transient_failures)
        self.wall = wall
        self._cancel = threading.Event()
        self._cancel_signal = signal.SIGTERM
        self.breaker = registry.breaker(
            f"agent:{config.name}", failure_threshold=config.breaker_failure_threshold,
            window=float(config.breaker_window), open_timeout=float(config.breaker_open_timeout),
            success_threshold=1, clock=clock)
        base = max(float(config.retry_backoff), 0.001)
        self.policy = RetryPolicy(
            name=f"agent:{config.name}", max_attempts=config.max_attempts, backoff=FullJitter(base, base * 8),
            retry_on=self._is_transient, registry=registry, clock=clock,
            sleep=sleep or self._wait)
        self.after_run: list[Callable[[], object]] = []

    def __repr__(self) -> str:
        return f"AgentRunner({self.config.name!r}, command={list(self.command)!r})"

    def _wait(self, seconds: float) -> None:
        """Back-off sleep that ends early on shutdown."""
        self._cancel.wait(seconds)

    def _is_transient(self, exc: BaseException) -> bool:
        return (isinstance(exc, AgentFailed) and exc.failure_type in self.transient
                and not self._cancel.is_set())

    def run(self) -> AgentSnapshot:
        """One scheduled run: rejected while the breaker is open, else attempts until done."""
        attempts: list[ProcessOutcome] = []

        def attempt() -> ProcessOutcome:
            outcome = run_command(self.command, timeout=float(self.config.timeout),
                                  stderr_lines=self.config.stderr_lines, kill_grace=float(self.config.kill_grace),
                                  cancel=self._cancel, wall=self.wall, cancel_signal=lambda: self._cancel_signal)
            attempts.append(outcome)
            failure_type = "cancelled" if outcome.cancelled else self.failures.of(outcome.exit_code)
            if failure_type is not None:
                raise AgentFailed(failure_type, outcome)
            return outcome

        self.status.started()
        failure_type: str | None = None
        try:
            self.breaker.call(self.policy.retry, attempt)
        except CircuitOpenError as exc:
            snap = self.status.record_rejected(str(exc))
            log.warning("agent run not started: circuit breaker open", extra={"fields": {
                "agent": self.config.name, "breaker": exc.name, "retry_after_seconds": exc.retry_after}})
            self._after_run()
            return snap
        except AgentFailed as exc:
            failure_type = exc.failure_type
        snap = self.status.record_run(_summarise(attempts, failure_type))
        self._log(snap)
        self._after_run()
        return snap

    def _after_run(self) -> None:
        for hook in self.after_run:
            try:
                hook()
            except Exception:  # a broken hook must not stop the schedule
                log.exception("agent after-run hook failed", extra={"fields": {"hook": repr(hook)}})

    def _log(self, snap: AgentSnapshot) -> None:
        run = snap.last_run
        assert run is not None
        fields = {"agent": self.config.name, "exit_code": run.exit_code, "duration_seconds": round(run.duration, 3),
                  "attempts": run.attempts}
        if run.success:
            log.info("agent run succeeded", extra={"fields": fields})
            return
        fields.update(failure_type=run.failure_type, consecutive_failures=snap.consecutive_failures,
                      remedy=self.failures.remedy(run.failure_type or ""),
                      stderr=run.stderr_tail[-1] if run.stderr_tail else "")
        log.warning("agent run failed", extra={"fields": fields})

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Kill a run in progress (`sig` to its process group, SIGKILL after the grace) and stop
        retrying; used on shutdown and to forward a signal `run-once` received."""
        self._cancel_signal = sig
        self._cancel.set()


def _summarise(attempts: Sequence[ProcessOutcome], failure_type: str | None) -> AgentRun:
    first, last = attempts[0], attempts[-1]
    return AgentRun(started_at=first.started_at, ended_at=last.ended_at,
                    duration=sum(a.duration for a in attempts), exit_code=last.exit_code,
                    failure_type=failure_type, attempts=len(attempts), stderr_tail=last.stderr_tail)
