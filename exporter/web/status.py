"""The status document behind /api/state, the page and `resilience-exporter status`.

One read-only view of everything an operator asks first: containers with their reason, restarts
and remedy, circuit breakers, agent runs, probes and source health. The CLI, the page and the
JSON API all render this same document, so they always agree.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from exporter.resilience import ResilienceRegistry
from exporter.state import ContainerRecord, StateStore

StatusSource = Callable[[], dict[str, Any]]


def container_doc(r: ContainerRecord) -> dict[str, Any]:
    name = r.container or r.image
    if r.pod and r.source.value == "kubernetes":
        name = f"{r.pod}/{r.container}"
    return {
        "name": name, "key": r.key, "kind": r.kind, "source": r.source.value, "host": r.host,
        "namespace": r.namespace, "pod": r.pod, "container": r.container, "image": r.image,
        "status": r.display_reason, "reason": r.reason.value, "classification": r.reason.classification.value,
        "phase": r.phase.value, "terminal": r.terminal, "health": r.health.value,
        "restarts": r.restarts, "last_exit_code": r.last_exit_code,
        "last_terminated_reason": r.last_terminated_reason.value if r.last_terminated_reason else None,
        "last_terminated_at": r.last_terminated_at, "created_at": r.created_at, "started_at": r.started_at,
        "retries": r.retry_count, "next_retry_at": r.next_retry_at,
        "oom_kills": r.oom_kills, "failures": {k.value: v for k, v in r.failures.items()},
        "message": r.message, "remedy": r.remedy,
    }


def state_document(store: StateStore, registry: ResilienceRegistry, *, host: str,
                   agents: Callable[[], list[dict[str, Any]]] = list,
                   probes: Callable[[], list[dict[str, Any]]] = list,
                   clock: Callable[[], float] = time.time) -> dict[str, Any]:
    now = clock()
    records = sorted(store.records(), key=lambda r: (r.namespace, r.pod, r.container, r.image))
    breakers = []
    for s in sorted(registry.breaker_snapshots(), key=lambda s: s.name):
        breakers.append({"name": s.name, "state": s.state.label, "value": s.state.metric_value,
                         "failures_in_window": s.failures_in_window, "calls": dict(s.calls),
                         "retry_after": s.retry_after})
    return {
        "host": host, "generated_at": now,
        "sources": [{"name": s.name, "up": s.up, "synced": s.synced, "events": dict(s.events),
                     "dropped": s.dropped} for s in store.sources()],
        "containers": [container_doc(r) for r in records],
        "breakers": breakers, "agents": agents(), "probes": probes(),
    }


def events_document(store: StateStore, *, container: str | None = None, reason: str | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
    """Recent transitions, newest first, filtered by container name and/or reason."""
    return [t.as_dict() for t in store.transitions(container=container or None, reason=reason or None,
                                                   limit=max(1, min(limit, 1000)))]


def device_docs(device: Any) -> tuple[Callable[[], list[dict[str, Any]]], Callable[[], list[dict[str, Any]]]]:
    """Agent and probe views of an `exporter.device.components.DeviceSide` (either may be empty)."""

    def agents() -> list[dict[str, Any]]:
        status = getattr(device, "agent_status", None)
        if status is None:
            return []
        s = status.snapshot()
        run = s.last_run
        return [{
            "name": s.name, "host": s.host, "running": s.running, "next_run_at": s.next_run_at,
            "consecutive_failures": s.consecutive_failures, "last_failure_type": s.last_failure_type,
            "rejected_reason": s.rejected_reason, "runs": dict(s.runs),
            "last_run": None if run is None else {
                "success": run.success, "started_at": run.started_at, "ended_at": run.ended_at,
                "duration": run.duration, "exit_code": run.exit_code, "failure_type": run.failure_type,
                "attempts": run.attempts, "stderr_tail": list(run.stderr_tail)},
        }]

    def probes() -> list[dict[str, Any]]:
        out = []
        for p in device.probe_status.snapshots():
            last = p.last
            out.append({"target": p.target, "checks": dict(p.checks),
                        "last": None if last is None else {
                            "success": last.success, "duration": last.duration, "at": last.at,
                            "status_code": last.status_code, "error": last.error}})
        return out

    return agents, probes
