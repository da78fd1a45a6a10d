"""Views of the device side for the status document: the agent (with its last run) and each probe."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from exporter.device.status import AgentRun, AgentSnapshot, ProbeResult, ProbeSnapshot
from exporter.view import View


@dataclass(frozen=True)
class RunView(View):
    """One finished agent run, attempts summed."""

    success: bool
    started_at: float
    ended_at: float
    duration: float
    exit_code: int
    failure_type: str | None
    attempts: int
    stderr_tail: tuple[str, ...]

    @classmethod
    def of(cls, run: AgentRun) -> RunView:
        return cls(success=run.success, started_at=run.started_at, ended_at=run.ended_at, duration=run.duration,
                   exit_code=run.exit_code, failure_type=run.failure_type, attempts=run.attempts,
                   stderr_tail=tuple(run.stderr_tail))


@dataclass(frozen=True)
class AgentView(View):
    """The role agent: schedule, failure streak, runs by result and the last run."""

    name: str
    host: str
    running: bool
    next_run_at: float | None
    consecutive_failures: int
    last_failure_type: str | None
    rejected_reason: str | None
    runs: Mapping[str, int]
    last_run: RunView | None

    @classmethod
    def of(cls, s: AgentSnapshot) -> AgentView:
        return cls(name=s.name, host=s.host, running=s.running, next_run_at=s.next_run_at,
                   consecutive_failures=s.consecutive_failures, last_failure_type=s.last_failure_type,
                   rejected_reason=s.rejected_reason, runs=dict(s.runs),
                   last_run=None if s.last_run is None else RunView.of(s.last_run))


@dataclass(frozen=True)
class CheckView(View):
    """A probe's last check."""

    success: bool
    duration: float
    at: float
    status_code: int | None
    error: str

    @classmethod
    def of(cls, r: ProbeResult) -> CheckView:
        return cls(success=r.success, duration=r.duration, at=r.at, status_code=r.status_code, error=r.error)


@dataclass(frozen=True)
class ProbeView(View):
    """One HTTP probe target: checks by outcome and the last one."""

    target: str
    checks: Mapping[str, int]
    last: CheckView | None

    @classmethod
    def of(cls, p: ProbeSnapshot) -> ProbeView:
        return cls(target=p.target, checks=dict(p.checks), last=None if p.last is None else CheckView.of(p.last))
