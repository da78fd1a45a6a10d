"""Kubelet-style reasons for plain Docker containers, from inspect results and events.

Pure logic (no I/O): the watcher feeds it engine data and writes the records it returns.
Rules (also in README):
- OOMKilled: an `oom` event, or State.OOMKilled on inspect; counts an OOM kill.
- StartFailure: exit code 126/127, or a container left `created` with State.Error set (the
  runtime could not exec the entrypoint).
- Error / Completed: exit with non-zero / zero code.
- CrashLoopBackOff: the second crash (non-zero exit or OOM) of a container whose restart policy
  restarts it, less than 10 minutes after the previous crash. Docker restarts within 100 ms-1 min,
  far less than a scrape interval, so unlike the kubelet (which shows Running between back-offs)
  the reason stays CrashLoopBackOff until the container has run 10 minutes without crashing.
  The next expected restart follows the engine's own schedule: 100 ms doubling to 1 min, reset
  after a run of 10 s or more.
- Unhealthy: `health_status: unhealthy` while running; healthy/starting are tracked too.
- restarts: exactly the engine's RestartCount: one per restart the restart policy schedules at
  a `die` (always; unless-stopped; on-failure with a non-zero exit under its maximum), none after
  a stop (a `kill` with the stop signal); back to 0 on a manual start, and whatever the engine
  says at (re)list (it zeroes the count when dockerd itself restarts). Like kube-state-metrics'
  restarts of a recreated pod, Prometheus reads such a drop as a counter reset.

Counted once across reconnects: an event already reflected in the last inspect (a `start` at
StartedAt, a `die` at FinishedAt: the engine stamps both within milliseconds, and it never
restarts a container sooner than 100 ms) changes nothing; an older `die`/`oom` the inspect does
not show is still counted, without touching the current state. An inspect of a running container
does not tell its last exit (the engine zeroes ExitCode at each start): that exit's `die` does.
An OOM kill is one failure whether its `oom` comes before or after its `die`, and whether the
inspect or the `oom` event saw it first (an `oom` anywhere in the inspected run is that run's).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from exporter.resilience import Exponential
from exporter.sources.docker.events import DockerEvent, parse_timestamp
from exporter.state import ContainerRecord, Health, Phase, Reason, Source

CRASH_LOOP_RESET = 600.0   # kubelet: back-off resets after 10 minutes without a crash
ENGINE_RESTART_DELAY = Exponential(base=0.1, factor=2.0, cap=60.0)  # dockerd restartmanager
ENGINE_DELAY_RESET = 10.0  # dockerd resets its restart delay after a run of 10 s
SAME_CYCLE = 0.1            # events this close to an inspected timestamp are that same start/exit
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"


@dataclass
class Life:
    """What the engine's current state does not say but reasons need: crash history, policy."""

    policy: str = "no"
    max_retries: int = 0       # on-failure:N
    stop_signal: int = 15
    exit_on_next: bool = False  # a stop is under way: the next exit is not restarted
    restart_scheduled: bool = False
    has_healthcheck: bool = False
    started: bool = False
    streak: int = 0            # consecutive crashes less than CRASH_LOOP_RESET apart
    quick_exits: int = 0       # consecutive runs shorter than ENGINE_DELAY_RESET
    last_crash_at: float | None = None
    pending_oom: bool = False  # an `oom` event of the current run was counted; its `die` is to come
    oom_counted_at: float | None = None      # time of the last `oom` event counted
    inspected_started: float | None = None   # State.StartedAt at the last inspect
    inspected_finished: float | None = None  # State.FinishedAt at the last inspect
    inspected_told: bool = False  # the last inspect showed its exit's ExitCode (the engine zeroes it at a start)
    inspected_oom: bool = False

    @property
    def inspected_at(self) -> float:
        """The engine time up to which the last inspect already tells the state."""
        return max(self.inspected_started or 0.0, self.inspected_finished or 0.0)
    labels: Mapping[str, str] = field(default_factory=dict)


def termination_reason(exit_code: int, oom: bool) -> Reason:
    if oom:
        return Reason.OOM_KILLED
    if exit_code in (126, 127):
        return Reason.START_FAILURE
    return Reason.ERROR if exit_code else Reason.COMPLETED


_SIGNALS = {"SIGTERM": 15, "SIGINT": 2, "SIGQUIT": 3, "SIGKILL": 9, "SIGHUP": 1, "SIGUSR1": 10, "SIGUSR2": 12}


def _signal_number(text: str | None) -> int:
    if not text:
        return 15
    if text.isdigit():
        return int(text)
    name = text.upper()
    return _SIGNALS.get(name if name.startswith("SIG") else "SIG" + name, 15)


def _counted(record: ContainerRecord, reason: Reason, n: int = 1) -> ContainerRecord:
    return record.with_failure(reason, n) if reason.is_failure else record


class DockerLifecycle:
    """Turns inspect dicts and events into ContainerRecords for one engine (one `host`)."""

    def __init__(self, host: str, *, label_allowlist: tuple[str, ...] = ()) -> None:
        self.host = host
        self.label_allowlist = label_allowlist
        self.lives: dict[str, Life] = {}

    # -- inspect ---------------------------------------------------------------------------
    def from_inspect(self, data: Mapping[str, Any], old: ContainerRecord | None) -> ContainerRecord:
        """A record for an inspected container; `old` keeps durable counters across relists."""
        cid = data["Id"]
        state = data.get("State") or {}
        config = data.get("Config") or {}
        host_config = data.get("HostConfig") or {}
        labels = config.get("Labels") or {}
        life = self.lives.setdefault(cid, Life())
        policy = host_config.get("RestartPolicy") or {}
        life.policy = policy.get("Name") or "no"
        life.max_retries = int(policy.get("MaximumRetryCount") or 0)
        life.stop_signal = _signal_number(config.get("StopSignal"))
        life.restart_scheduled = state.get("Status") == "restarting"
        life.has_healthcheck = bool((config.get("Healthcheck") or {}).get("Test"))
        life.labels = {k: labels[k] for k in self.label_allowlist if k in labels}
        started_at = parse_timestamp(state.get("StartedAt"))
        finished_at = parse_timestamp(state.get("FinishedAt"))
        life.started = started_at is not None
        life.inspected_started, life.inspected_finished = started_at, finished_at
        life.inspected_oom = bool(state.get("OOMKilled"))
        status = state.get("Status", "")
        exit_code = int(state.get("ExitCode") or 0)
        engine_restarts = int(data.get("RestartCount") or 0)
        oom = bool(state.get("OOMKilled"))
        # Running again, the engine has zeroed ExitCode: FinishedAt's exit is not told here, its `die` tells it.
        told = life.inspected_told = finished_at is not None and status not in ("running", "paused")
        # An `oom` event comes ~0.1 s (or more) before its exit: one counted during the inspected run
        # [StartedAt, FinishedAt] was this OOM kill (its `oom` replayed before a relist, its `die` after).
        oom_counted = (told and oom and life.oom_counted_at is not None and started_at is not None
                       and finished_at is not None
                       and started_at - SAME_CYCLE < life.oom_counted_at < finished_at + SAME_CYCLE)
        health = Health((state.get("Health") or {}).get("Status") or "none") \
            if (state.get("Health") or {}).get("Status") in ("starting", "healthy", "unhealthy") else Health.NONE

        record = old or ContainerRecord(key=cid, source=Source.DOCKER, container="")
        record = record.evolve(
            container=(data.get("Name") or "").lstrip("/"), host=self.host,
            namespace=labels.get(COMPOSE_PROJECT, ""), pod=labels.get(COMPOSE_SERVICE, ""),
            image=config.get("Image") or data.get("Image", ""), container_id=cid,
            restarts=engine_restarts, health=health,
            created_at=parse_timestamp(data.get("Created")), started_at=started_at,
            labels=MappingProxyType(dict(life.labels)))

        newer_exit = finished_at is not None and (record.last_terminated_at is None
                                                  or finished_at > record.last_terminated_at + SAME_CYCLE)
        if told or (status == "created" and state.get("Error")):
            reason = termination_reason(exit_code, oom)
            if status == "created" and state.get("Error"):
                reason = Reason.START_FAILURE
            record = record.evolve(last_exit_code=exit_code, last_terminated_reason=reason,
                                   last_terminated_at=finished_at)
            failed_start = status == "created" and (old is None or old.reason is not Reason.START_FAILURE)
            if (newer_exit or failed_start) and not oom_counted:
                record = _counted(record, reason)
                if oom:
                    record = record.evolve(oom_kills=record.oom_kills + 1)

        if status == "running":
            if state.get("Paused"):
                return record.evolve(phase=Phase.RUNNING, reason=Reason.PAUSED, message="")
            sticky = record.reason is Reason.CRASH_LOOP_BACK_OFF and life.streak >= 2
            reason = Reason.CRASH_LOOP_BACK_OFF if sticky else (
                Reason.UNHEALTHY if health is Health.UNHEALTHY else Reason.RUNNING)
            return record.evolve(phase=Phase.RUNNING, reason=reason, next_retry_at=None, message="")
        if status == "paused":
            return record.evolve(phase=Phase.RUNNING, reason=Reason.PAUSED)
        if status == "restarting":
            life.streak = max(life.streak, 2 if engine_restarts >= 1 else 1)
            life.last_crash_at = finished_at
            reason = Reason.CRASH_LOOP_BACK_OFF if life.streak >= 2 else termination_reason(exit_code, oom)
            if reason is Reason.CRASH_LOOP_BACK_OFF and record.reason is not reason:
                record = record.with_failure(reason)
            return record.evolve(phase=Phase.WAITING, reason=reason)
        if status == "created":
            if state.get("Error"):
                return record.evolve(phase=Phase.WAITING, reason=Reason.START_FAILURE,
                                     message=str(state.get("Error"))[:500])
            return record.evolve(phase=Phase.WAITING, reason=Reason.CREATED)
        # exited, dead, removing
        reason = record.last_terminated_reason or Reason.ERROR
        if status == "dead":
            reason = Reason.ERROR
        return record.evolve(phase=Phase.TERMINATED, reason=reason, next_retry_at=None,
                             message=str(state.get("Error") or "")[:500])

    # -- events ----------------------------------------------------------------------------
    def apply(self, event: DockerEvent, record: ContainerRecord) -> ContainerRecord | None:
        """The record after `event`; None means the container is gone (destroy)."""
        action = event.action
        life = self.lives.get(event.container_id)
        if life is None:
            life = self.lives[event.container_id] = Life()
        if action == "destroy":
            self.lives.pop(event.container_id, None)
            return None
        if action == "start":
            return self._start(event, record, life)
        if action == "die":
            return self._die(event, record, life)
        if action == "oom":
            return self._oom(event, record, life)
        if action == "kill":
            if event.signal == life.stop_signal:
                life.exit_on_next = True  # the engine's ExitOnNext: a stop, no restart follows
            return record
        if event.time < life.inspected_at:
            return record  # older than what the last inspect already shows
        if action == "health_status":
            return self._health(event, record)
        if action == "pause":
            return record.evolve(reason=Reason.PAUSED)
        if action == "unpause":
            return record.evolve(reason=self._running_reason(record.reason, record.health, life))
        if action == "rename" and event.name:
            return record.evolve(container=event.name.lstrip("/"))
        return record  # kill, stop, restart, create: state follows from the other events

    def _oom(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        finished, began = life.inspected_finished, life.inspected_started
        if (life.inspected_told and life.inspected_oom and finished is not None and began is not None
                and began - SAME_CYCLE < event.time < finished + SAME_CYCLE):
            return record  # an OOM kill of the inspected run: the inspect's OOMKilled counted it
        life.oom_counted_at = event.time
        ended, started = record.last_terminated_at, record.started_at
        if ended is not None and started is not None and ended >= started and event.time > started - SAME_CYCLE:
            # The engine sent this run's `oom` after its `die` (both come from containerd, either
            # first): the exit is counted already, so count the OOM kill, not a second failure.
            return record.evolve(oom_kills=record.oom_kills + 1, last_terminated_reason=Reason.OOM_KILLED,
                                 reason=Reason.OOM_KILLED if record.reason is Reason.ERROR else record.reason)
        life.pending_oom = True  # the `die` that follows is an OOM kill
        return record.evolve(oom_kills=record.oom_kills + 1).with_failure(Reason.OOM_KILLED)

    def _start(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        life.pending_oom = False  # a new run: an OOM kill whose die never came belonged to the last one
        if life.inspected_started is not None and event.time < life.inspected_started + SAME_CYCLE:
            return record  # already in the inspected RestartCount and state
        restarts = record.restarts
        if life.restart_scheduled:
            life.restart_scheduled = False  # counted when the restart was scheduled
        elif life.started:
            restarts = 0                    # a manual start: the engine zeroes its RestartCount
        life.started, life.exit_on_next = True, False
        health = Health.STARTING if life.has_healthcheck else Health.NONE
        return record.evolve(phase=Phase.RUNNING, restarts=restarts, started_at=event.time, next_retry_at=None,
                             health=health, message="", reason=self._running_reason(record.reason, health, life))

    @staticmethod
    def _running_reason(current: Reason, health: Health, life: Life) -> Reason:
        if life.streak >= 2 and current is Reason.CRASH_LOOP_BACK_OFF:
            return Reason.CRASH_LOOP_BACK_OFF
        return Reason.UNHEALTHY if health is Health.UNHEALTHY else Reason.RUNNING

    def _die(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        exit_code = event.exit_code if event.exit_code is not None else -1
        oom, life.pending_oom = life.pending_oom, False
        reason = termination_reason(exit_code, oom)
        finished = life.inspected_finished
        if finished is not None and event.time < finished + SAME_CYCLE:
            if event.time > finished - SAME_CYCLE:
                if life.inspected_told:
                    return record  # the inspected exit itself, counted at inspect
                # the inspected exit, of a container running again: the inspect could not tell its code
                record = record.evolve(last_exit_code=exit_code, last_terminated_reason=reason,
                                       last_terminated_at=event.time)
            return record if oom else _counted(record, reason)  # an older exit: count it, state is newer
        failures = [] if oom or not reason.is_failure else [reason]  # the oom event counted OOMKilled
        ran_for = event.time - record.started_at if record.started_at else 0.0
        life.quick_exits = life.quick_exits + 1 if ran_for < ENGINE_DELAY_RESET else 1
        changes: dict[str, object] = {"last_exit_code": exit_code, "last_terminated_reason": reason,
                                      "last_terminated_at": event.time}
        crashed = exit_code != 0 or oom
        restarts_again = not life.exit_on_next and (
            life.policy in ("always", "unless-stopped")
            or (life.policy == "on-failure" and exit_code != 0
                and (life.max_retries == 0 or record.restarts < life.max_retries)))
        life.exit_on_next = False
        life.restart_scheduled = restarts_again
        if crashed:
            recent = life.last_crash_at is not None and event.time - life.last_crash_at < CRASH_LOOP_RESET
            life.streak = life.streak + 1 if recent else 1
            life.last_crash_at = event.time
        if not restarts_again:
            changes.update(phase=Phase.TERMINATED, reason=reason, next_retry_at=None)
        else:
            changes.update(restarts=record.restarts + 1, phase=Phase.WAITING, reason=reason,
                           next_retry_at=event.time + ENGINE_RESTART_DELAY.delay(life.quick_exits))
            if crashed and life.streak >= 2:
                if record.reason is not Reason.CRASH_LOOP_BACK_OFF:
                    failures.append(Reason.CRASH_LOOP_BACK_OFF)
                changes.update(reason=Reason.CRASH_LOOP_BACK_OFF,
                               message=f"back-off restarting failed container (exit {exit_code})")
        if failures:
            counts = dict(record.failures)
            for failure in failures:
                counts[failure] = counts.get(failure, 0) + 1
            changes["failures"] = MappingProxyType(counts)
        return record.evolve(**changes)

    def _health(self, event: DockerEvent, record: ContainerRecord) -> ContainerRecord:
        try:
            health = Health(event.health)
        except ValueError:
            return record
        record = record.evolve(health=health)
        if record.phase is not Phase.RUNNING or record.reason in (Reason.CRASH_LOOP_BACK_OFF, Reason.PAUSED):
            return record
        if health is Health.UNHEALTHY:
            if record.reason is not Reason.UNHEALTHY:
                record = record.with_failure(Reason.UNHEALTHY)
            return record.evolve(reason=Reason.UNHEALTHY)
        return record.evolve(reason=Reason.RUNNING)

    # -- time ------------------------------------------------------------------------------
    def settle(self, record: ContainerRecord, now: float) -> ContainerRecord:
        """End a crash loop once the container has run CRASH_LOOP_RESET without crashing."""
        life = self.lives.get(record.key)
        if (life is None or record.reason is not Reason.CRASH_LOOP_BACK_OFF or record.phase is not Phase.RUNNING
                or life.last_crash_at is None or now - life.last_crash_at < CRASH_LOOP_RESET):
            return record
        life.streak = 0
        return record.evolve(reason=Reason.UNHEALTHY if record.health is Health.UNHEALTHY else Reason.RUNNING)
