"""What the agent runner and the probes found, kept for collectors and health.json to read.

Runners write here and nothing else; `exporter.metrics.device` reads snapshots. Each store is
a small lock-guarded object so a scrape never waits for a run or a probe.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from enum import Enum


class RunResult(str, Enum):
    """How one scheduled agent run ended; the value is the `result` label (bounded)."""

    SUCCESS = "success"
    FAILURE = "failure"
    SKIPPED = "skipped"    # still running when the next run was due
    REJECTED = "rejected"  # not started: the agent's circuit breaker is open


@dataclass(frozen=True)
class AgentRun:
    """One finished run of the agent command (all attempts of one scheduled run)."""

    started_at: float           # unix seconds
    ended_at: float             # unix seconds
    duration: float             # seconds, monotonic
    exit_code: int              # shell convention: 124 timeout, 128+n killed by signal n
    failure_type: str | None    # None on success
    attempts: int = 1
    stderr_tail: tuple[str, ...] = ()

    @property
    def success(self) -> bool:
        return self.failure_type is None


@dataclass(frozen=True)
class AgentSnapshot:
    """A consistent view of one agent for a scrape or for health.json."""

    name: str
    host: str
    last_run: AgentRun | None
    runs: dict[str, int]
    consecutive_failures: int
    last_failure_type: str | None
    running: bool
    next_run_at: float | None
    rejected_reason: str | None
    interval: float | None = None  # longest expected time between scheduled runs; None if not scheduled


class AgentStatus:
    """Results of one agent's runs, written by the runner, read by collectors."""

    def __init__(self, name: str, host: str) -> None:
        self._lock = threading.Lock()
        self._snap = AgentSnapshot(name=name, host=host, last_run=None, runs={r.value: 0 for r in RunResult},
                                   consecutive_failures=0, last_failure_type=None,
                                   running=False, next_run_at=None, rejected_reason=None)

    def snapshot(self) -> AgentSnapshot:
        with self._lock:
            return replace(self._snap, runs=dict(self._snap.runs))

    def _update(self, result: RunResult | None = None, **changes: object) -> AgentSnapshot:
        with self._lock:
            runs = dict(changes.pop("runs", self._snap.runs))  # type: ignore[call-overload]
            if result is not None:
                runs[result.value] += 1
            self._snap = replace(self._snap, runs=runs, **changes)  # type: ignore[arg-type]
            return self._snap

    def started(self) -> None:
        self._update(running=True)

    def record_run(self, run: AgentRun) -> AgentSnapshot:
        """A run finished: success resets the failure streak, a failure extends it."""
        with self._lock:
            snap = self._snap
            runs = dict(snap.runs)
            if run.success:
                runs[RunResult.SUCCESS.value] += 1
                self._snap = replace(snap, runs=runs, last_run=run, running=False, consecutive_failures=0,
                                     rejected_reason=None)
            else:
                runs[RunResult.FAILURE.value] += 1
                self._snap = replace(snap, runs=runs, last_run=run, running=False,
                                     consecutive_failures=snap.consecutive_failures + 1,
                                     last_failure_type=run.failure_type,
                                     rejected_reason=None)
            return self._snap

    def record_skipped(self) -> AgentSnapshot:
        return self._update(RunResult.SKIPPED)

    def record_rejected(self, reason: str) -> AgentSnapshot:
        return self._update(RunResult.REJECTED, running=False, rejected_reason=reason)

    def set_next_run(self, at: float | None) -> None:
        self._update(next_run_at=at)

    def set_interval(self, seconds: float) -> None:
        """The schedule's interval, exported so alerts need not assume one."""
        self._update(interval=seconds)

    def restore(self, runs: dict[str, int], consecutive_failures: int, last_failure_type: str | None,
                interval: float | None = None) -> None:
        """Carry counters across `agent run-once` invocations (read back from health.json), and the
        interval of a scheduled agent, so a run by hand beside it does not drop its alert threshold."""
        known = {r.value: int(runs.get(r.value, 0)) for r in RunResult}
        self._update(runs=known, consecutive_failures=consecutive_failures,
                     last_failure_type=last_failure_type, interval=interval)


@dataclass(frozen=True)
class ProbeResult:
    """The last check of one HTTP target."""

    success: bool
    duration: float                 # seconds, all attempts
    at: float                       # unix seconds
    status_code: int | None = None
    error: str = ""                 # for logs and the status view, never a label


@dataclass
class ProbeSnapshot:
    target: str
    last: ProbeResult | None
    checks: dict[str, int] = field(default_factory=dict)


PROBE_RESULTS = ("success", "failure", "rejected")


class ProbeStatus:
    """Last result and check counts per probe target, written by the prober."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._targets: dict[str, ProbeSnapshot] = {}

    def add_target(self, target: str) -> None:
        """Make a target visible (checks at zero) before its first probe."""
        with self._lock:
            self._targets.setdefault(target, ProbeSnapshot(target, None, {r: 0 for r in PROBE_RESULTS}))

    def record(self, target: str, result: ProbeResult, outcome: str) -> None:
        if outcome not in PROBE_RESULTS:
            raise ValueError(f"probe outcome must be one of {PROBE_RESULTS}, got {outcome!r}")
        self.add_target(target)
        with self._lock:
            snap = self._targets[target]
            checks = dict(snap.checks)
            checks[outcome] += 1
            self._targets[target] = ProbeSnapshot(target, result, checks)

    def snapshots(self) -> list[ProbeSnapshot]:
        with self._lock:
            return sorted(self._targets.values(), key=lambda s: s.target)

    def get(self, target: str) -> ProbeSnapshot | None:
        with self._lock:
            return self._targets.get(target)
