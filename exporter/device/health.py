"""health.json: the agent's last run, failure streak and breaker, for people and local tools.

Written atomically after every run. The shape is `health.schema.json` (shipped in this package
and documented in the README); `read_counters` lets `agent run-once` continue the counters of
the previous invocation.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from exporter.device.atomic import AtomicFile
from exporter.device.failures import FailureTypes
from exporter.device.status import AgentRun, AgentSnapshot
from exporter.resilience import CircuitBreaker, CircuitState
from exporter.view import View

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).with_name("health.schema.json")
SCHEMA_VERSION = 1


def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@dataclass(frozen=True)
class HealthView(View):
    """health.json, schema version 1: one agent's last run, failure streak and breaker."""

    schema_version: int
    name: str
    host: str
    command: tuple[str, ...]
    status: str
    reason: str | None
    updated_at: float
    last_run_start: float | None
    last_run_end: float | None
    duration_seconds: float | None
    exit_code: int | None
    failure_type: str | None
    attempts: int | None
    consecutive_failures: int
    last_failure_type: str | None
    breaker_state: str
    breaker_retry_at: float | None
    next_run: float | None
    interval_seconds: float | None
    stderr_tail: tuple[str, ...]
    runs: Mapping[str, int]

    @classmethod
    def of(cls, snap: AgentSnapshot, breaker: CircuitBreaker, command: Sequence[str], *,
           wall: Callable[[], float] = time.time) -> HealthView:
        """From the agent's status snapshot and its breaker, at `wall()`."""
        now = wall()
        breaker_snap = breaker.snapshot()
        retry_at = now + breaker_snap.retry_after if breaker_snap.retry_after is not None else None
        run = snap.last_run
        status, reason = _status(snap, run, breaker_snap.state, retry_at)
        return cls(
            schema_version=SCHEMA_VERSION, name=snap.name, host=snap.host, command=tuple(command),
            status=status, reason=reason, updated_at=now,
            last_run_start=run.started_at if run else None, last_run_end=run.ended_at if run else None,
            duration_seconds=run.duration if run else None, exit_code=run.exit_code if run else None,
            failure_type=run.failure_type if run else None, attempts=run.attempts if run else None,
            consecutive_failures=snap.consecutive_failures, last_failure_type=snap.last_failure_type,
            breaker_state=breaker_snap.state.label, breaker_retry_at=retry_at, next_run=snap.next_run_at,
            interval_seconds=snap.interval, stderr_tail=tuple(run.stderr_tail) if run else (), runs=dict(snap.runs))


def _status(snap: AgentSnapshot, run: AgentRun | None, state: CircuitState,
            retry_at: float | None) -> tuple[str, str | None]:
    """`status` and the sentence that explains it (None when there is nothing to explain)."""
    if state in (CircuitState.OPEN, CircuitState.FORCED_OPEN):
        when = f"; next trial run after {_iso(retry_at)}" if retry_at is not None else ""
        last = f" (last: {snap.last_failure_type})" if snap.last_failure_type else ""
        return "circuit_open", (f"circuit breaker agent:{snap.name} is {state.label} after "
                                f"{snap.consecutive_failures} consecutive failures{last}; runs are not started{when}")
    if run is None:
        return "pending", None
    if run.success:
        return "ok", None
    return "failing", f"{run.failure_type} (exit code {run.exit_code}): {FailureTypes.remedy(run.failure_type or '')}"


def health_document(snap: AgentSnapshot, breaker: CircuitBreaker, command: Sequence[str], *,
                    wall: Callable[[], float] = time.time) -> dict[str, Any]:
    """The health.json mapping: `HealthView.of(...).as_dict()`."""
    return HealthView.of(snap, breaker, command, wall=wall).as_dict()


def _iso(unix: float | None) -> str:
    if unix is None:
        return "unknown"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


class HealthFile(AtomicFile):
    """health.json, rewritten whole from `document()` so readers never see half of it."""

    def __init__(self, path: str | Path, document: Callable[[], dict[str, Any]]) -> None:
        super().__init__(path, lambda: (json.dumps(document(), indent=2) + "\n").encode(), kind="health.json")


MAX_HEALTH_BYTES = 1 << 20
MAX_COUNT = 2**53  # counters stay exact in JSON readers (JavaScript, jq)


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def read_counters(path: str | Path) -> dict[str, Any] | None:
    """The previous health.json's counters, or None when absent or unusable (then start at 0).

    A file we cannot trust (wrong types, negative or huge counters, not JSON, too big) is logged
    once and ignored; the run's own write then replaces it. It never stops the run.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_HEALTH_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return _ignore(path, f"cannot read: {exc.strerror or exc}")
    if len(raw) > MAX_HEALTH_BYTES:
        return _ignore(path, f"larger than {MAX_HEALTH_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deep
        return _ignore(path, f"not a JSON document ({type(exc).__name__})")
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        return _ignore(path, f"expected a mapping with schema_version {SCHEMA_VERSION}")
    runs = doc.get("runs")
    if not isinstance(runs, dict) or not all(isinstance(k, str) and _count(v) for k, v in runs.items()):
        return _ignore(path, "runs: expected a mapping of result to a count >= 0")
    failures = doc.get("consecutive_failures") or 0
    if not _count(failures):
        return _ignore(path, f"consecutive_failures: expected a count >= 0, got {str(failures)[:40]!r}")
    last = doc.get("last_failure_type")
    if last is not None and not (isinstance(last, str) and len(last) <= 64):
        return _ignore(path, "last_failure_type: expected a failure type name or null")
    # The interval of a scheduled agent only (its next_run is set): one that is now run by a
    # timer must not keep an old schedule's threshold for ever.
    interval = doc.get("interval_seconds") if doc.get("next_run") is not None else None
    usable = type(interval) in (int, float) and 0 < interval < float("inf")
    return {"runs": runs, "consecutive_failures": failures, "last_failure_type": last,
            "interval": float(interval) if usable else None}


def _ignore(path: str | Path, problem: str) -> None:
    log.warning("ignoring the previous health.json; counters start at 0 and the file is replaced after this run",
                extra={"fields": {"path": str(path), "problem": problem}})
    return None
