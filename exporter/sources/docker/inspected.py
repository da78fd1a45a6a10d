"""A container's record from its inspect, in three steps: identity and configuration, the last
termination the state tells (counted once), and the current phase and reason.

Pure functions over a `Life` copy the caller owns (see life.py); DockerLifecycle.from_inspect
chains them. The engine stamps an event after it saved the state an inspect reads, so
`inspected_at` (when the inspect was sent) tells the reducer which later-arriving events this
inspect already shows.
"""
from __future__ import annotations

import sys
from types import MappingProxyType
from typing import Any, Mapping

from exporter.sources.timestamps import parse_timestamp
from exporter.sources.docker.life import (NO_RUN, OOM_EXIT, SAME_CYCLE, Crash, Life, Run, counted,
                                          signal_number, termination_reason)
from exporter.state import ContainerRecord, Health, Phase, Reason

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
_NO_LABELS: Mapping[str, str] = MappingProxyType({})  # shared by every record without allow-listed labels


def _shared(value: Any) -> Any:
    """One string object for a value many containers repeat (a compose project or service, an
    image): each inspect decodes its own copy, ~60 bytes a record kept for nothing."""
    return sys.intern(value) if type(value) is str else value


def identity(data: Mapping[str, Any], record: ContainerRecord, life: Life, *, host: str,
             label_allowlist: tuple[str, ...]) -> ContainerRecord:
    """Names, image, labels, and the configuration reasons need (restart policy, limits)."""
    config = data.get("Config") or {}
    host_config = data.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    policy = host_config.get("RestartPolicy") or {}
    life.policy = policy.get("Name") or "no"
    life.max_retries = int(policy.get("MaximumRetryCount") or 0)
    life.stop_signal = signal_number(config.get("StopSignal"))
    life.memory_limited = int(host_config.get("Memory") or 0) > 0
    life.has_healthcheck = bool((config.get("Healthcheck") or {}).get("Test"))
    kept = {k: labels[k] for k in label_allowlist if k in labels}
    cid = data["Id"]
    return record.evolve(
        container=(data.get("Name") or "").lstrip("/"), host=host,
        namespace=_shared(labels.get(COMPOSE_PROJECT, "")), pod=_shared(labels.get(COMPOSE_SERVICE, "")),
        image=_shared(config.get("Image") or data.get("Image", "")), container_id=cid,
        created_at=parse_timestamp(data.get("Created")), labels=MappingProxyType(kept) if kept else _NO_LABELS)


def status_of(state: Mapping[str, Any], life: Life) -> str:
    """Docker's status word; Podman's `stopped` is `exited`, or `restarting` if its policy says so."""
    status = str(state.get("Status", ""))
    if status != "stopped":
        return status
    restarts = life.policy in ("always", "unless-stopped") or (
        life.policy == "on-failure" and int(state.get("ExitCode") or 0) != 0)
    return "restarting" if restarts else "exited"


def close_run(record: ContainerRecord, life: Life, run: Run) -> ContainerRecord:
    """A run that ends without a `die` (the engine died between its `oom` and its exit):
    its OOM kill was its exit."""
    if run.oom and not run.exit_counted and run.started is not None:
        life.book(run, exit_counted=True)
        return record.with_failure(Reason.OOM_KILLED)
    return record


def _inspected_run(life: Life, started_at: float | None) -> tuple[Run, Run | None]:
    """The run an inspect shows (the one already known if it started at the same time), and
    the known run it replaces, if any."""
    known = life.run
    if started_at is not None and known.started is not None and abs(started_at - known.started) < SAME_CYCLE:
        return known, None
    if started_at is None and known.started is None:
        return known, None
    life.older = known if known.started is not None else NO_RUN  # its late events still book against it
    life.run = Run(started=started_at, start_seen=False)
    return life.run, (known if known.started is not None else None)


def last_termination(data: Mapping[str, Any], record: ContainerRecord, old: ContainerRecord | None,
                     life: Life, at: float | None) -> ContainerRecord:
    """Restarts, health, the run the state shows, and its termination (each counted once)."""
    state = data.get("State") or {}
    status = status_of(state, life)
    exit_code = int(state.get("ExitCode") or 0)
    started_at = parse_timestamp(state.get("StartedAt"))
    finished_at = parse_timestamp(state.get("FinishedAt"))
    life.restart_scheduled = status == "restarting"
    life.started = started_at is not None
    life.inspected_at = max(at or 0.0, started_at or 0.0, finished_at or 0.0)
    run, replaced = _inspected_run(life, started_at)
    if replaced is not None:
        record = close_run(record, life, replaced)
    # Running again, the engine has zeroed ExitCode: FinishedAt's exit is not told here, its `die` tells it.
    told = finished_at is not None and status not in ("running", "paused")
    life.running_finished = None if told else finished_at
    health_status = (state.get("Health") or {}).get("Status")
    health = Health(health_status) if health_status in ("starting", "healthy", "unhealthy") else Health.NONE
    record = record.evolve(restarts=int(data.get("RestartCount") or 0), health=health, started_at=started_at)
    if state.get("OOMKilled") and not run.oom and started_at is not None:
        run = life.book(run, oom=True)  # the run's OOM kill (of its main process if it exited 137, else of a child)
        record = record.evolve(oom_kills=record.oom_kills + 1)
    failed_start = status == "created" and bool(state.get("Error"))
    if not (told or failed_start):
        return record
    reason = Reason.START_FAILURE if failed_start else termination_reason(exit_code, run.oom and exit_code == OOM_EXIT)
    record = record.evolve(last_exit_code=exit_code, last_terminated_reason=reason, last_terminated_at=finished_at)
    if failed_start:
        if old is None or old.reason is not Reason.START_FAILURE:
            record = counted(record, reason)
    elif not run.exit_counted or (finished_at is not None and run.exit_at is not None
                                  and finished_at > run.exit_at + SAME_CYCLE):
        # a first exit, or a second end of the same run no `die` reported (a start the
        # engine's restore after its own crash failed: exited 255, no event is sent)
        record = counted(record, reason)
    life.book(run, exit_counted=True, finished=finished_at, exit_at=finished_at)
    return record


def current(data: Mapping[str, Any], record: ContainerRecord, life: Life) -> ContainerRecord:
    """Phase and reason from the inspected status."""
    state = data.get("State") or {}
    status = status_of(state, life)
    if status == "running":
        if state.get("Paused"):
            return record.evolve(phase=Phase.RUNNING, reason=Reason.PAUSED, message="")
        sticky = record.reason is Reason.CRASH_LOOP_BACK_OFF and life.looping
        reason = Reason.CRASH_LOOP_BACK_OFF if sticky else (
            Reason.UNHEALTHY if record.health is Health.UNHEALTHY else Reason.RUNNING)
        return record.evolve(phase=Phase.RUNNING, reason=reason, next_retry_at=None, message="")
    if status == "paused":
        return record.evolve(phase=Phase.RUNNING, reason=Reason.PAUSED)
    if status == "restarting":
        life.crashed(Crash.INSPECTED_AGAIN if int(data.get("RestartCount") or 0) >= 1 else Crash.INSPECTED_FIRST)
        life.last_crash_at = parse_timestamp(state.get("FinishedAt"))
        reason = Reason.CRASH_LOOP_BACK_OFF if life.looping else (
            record.last_terminated_reason or termination_reason(int(state.get("ExitCode") or 0), False))
        if reason is Reason.CRASH_LOOP_BACK_OFF and record.reason is not reason:
            record = record.with_failure(reason)
        return record.evolve(phase=Phase.WAITING, reason=reason)
    if status == "created":
        if state.get("Error"):
            return record.evolve(phase=Phase.WAITING, reason=Reason.START_FAILURE,
                                 message=str(state.get("Error"))[:500])
        return record.evolve(phase=Phase.WAITING, reason=Reason.CREATED)
    # exited, dead, removing
    reason = Reason.ERROR if status == "dead" else (record.last_terminated_reason or Reason.ERROR)
    return record.evolve(phase=Phase.TERMINATED, reason=reason, next_retry_at=None,
                         message=str(state.get("Error") or "")[:500])
