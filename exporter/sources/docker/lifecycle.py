"""Kubelet-style reasons for plain Docker containers, from inspect results and events.

A pure reducer (no I/O, no state of its own): each call takes a record, whose `engine` field
carries the container's `Life` (life.py), and returns the next record with a new Life; the
input is never changed. The watcher applies it inside `StateStore.update`, so a container's
state changes in one place, under one lock, whichever thread drives it (events, relists, the
settle loop). `from_inspect` is three steps (inspected.py): identity, last termination, current
state; the crash-loop states and their transitions are one table (life.LOOP).
Rules (also in README):
- OOMKilled: a run whose main process the kernel killed for memory: an `oom` event of the run
  followed by exit 137, State.OOMKilled with exit 137 on inspect, or, inferred, exit 137 of a
  container with a memory limit when the engine sent no `kill` during that run (the engine
  loses `oom` events under load and then reports OOMKilled=false; Podman never sends one).
  One OOM kill per run at most: an `oom` of a child process counts the run's one OOM kill and
  leaves the container Running; its later exit is classified by its own code.
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

Counted once: every exit (`die`) and every OOM kill is booked against its run, the span from
one start to the next (`Run`). The engine stamps an event after it saved the state an inspect
reads, so an event stamped before an inspect was sent is already in that inspect: its state is
not applied again. The inspected run's own `start` (within SAME_CYCLE of StartedAt) and `die`
(stamped at or after FinishedAt, before any newer start) are recognised as such, however late
they arrive; an older run's `die`/`oom`, which no inspect shows, is still counted without
touching the current state. A new container adopted at its `create` takes only its config from
the inspect: every event from `create` on follows, and the events alone tell its runs.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from exporter.resilience import Exponential
from exporter.sources.docker import inspected
from exporter.sources.docker.events import DockerEvent
from exporter.sources.docker.life import (CRASH_LOOP_RESET, EXIT_STAMP, NO_RUN, OOM_EXIT, SAME_CYCLE, Crash, Life,
                                          Loop, Run, counted, life_of, run_from, termination_reason)
from exporter.state import ContainerRecord, Health, Phase, Reason, Source

__all__ = ["CRASH_LOOP_RESET", "DockerLifecycle", "INFERRED_OOM", "RESTART_OVERDUE"]

ENGINE_RESTART_DELAY = Exponential(base=0.1, factor=2.0, cap=60.0)  # dockerd restartmanager
ENGINE_DELAY_RESET = 10.0  # dockerd resets its restart delay after a run of 10 s
RESTART_OVERDUE = 10.0      # a scheduled restart not started this long after its expected delay: ask the engine
CGROUP_LEAD = 0.05          # a run's cgroup is made (runc create) before its StartedAt; a newer run's >= 0.1 s after
DIE_LAG = 10.0              # the engine stamps a `die` after its exit's cleanup: up to seconds after FinishedAt
# dockerd's delay before the n-th quick restart in a row, n = 1..32 (capped long before the end)
_RESTART_DELAYS = tuple(ENGINE_RESTART_DELAY.delay(n) for n in range(1, 33))
_HEALTH = {h.value: h for h in Health}


def _restart_delay(quick_exits: int) -> float:
    return _RESTART_DELAYS[min(max(quick_exits, 1), len(_RESTART_DELAYS)) - 1]


INFERRED_OOM = "OOMKilled (inferred: exit 137 under a memory limit, and the engine sent no kill)"


class DockerLifecycle:
    """Turns inspect dicts and events into ContainerRecords for one engine (one `host`)."""

    def __init__(self, host: str, *, label_allowlist: tuple[str, ...] = ()) -> None:
        self.host = host
        self.label_allowlist = label_allowlist
        self._steps = self._steps_by_action()

    # -- inspect ---------------------------------------------------------------------------
    def from_inspect(self, data: Mapping[str, Any], old: ContainerRecord | None, *,
                     at: float | None = None, state: bool = True) -> ContainerRecord:
        """A record for an inspected container; `old` keeps durable counters and its Life across relists.

        `at`: the engine time the inspect was sent (events stamped before it are in it; default:
        the latest time the inspect itself shows). `state=False` takes identity and config only,
        for a container adopted at its `create`, whose events from then on all follow.
        """
        life = life_of(old)
        record = old or ContainerRecord(key=data["Id"], source=Source.DOCKER, container="")
        record = inspected.identity(data, record, life, host=self.host, label_allowlist=self.label_allowlist)
        if state:
            record = inspected.last_termination(data, record, old, life, at)
            record = inspected.current(data, record, life)
        return record.evolve(engine=life)

    def from_event(self, event: DockerEvent) -> ContainerRecord:
        """A record from a `create` event alone, for a container already gone when inspected."""
        return ContainerRecord(key=event.container_id, source=Source.DOCKER, container=event.name.lstrip("/"),
                               host=self.host, container_id=event.container_id, created_at=event.time,
                               engine=Life())

    # -- events ----------------------------------------------------------------------------
    def apply(self, event: DockerEvent, record: ContainerRecord) -> ContainerRecord | None:
        """The record after `event`; None means the container is gone (destroy).

        Copy on write: a step that changes the Life takes a copy first and hands it on in the
        record it returns; `start` and `die` always change it (the step gets the copy), the
        others copy it only when they change it. A step that changes nothing returns `record`."""
        action = event.action
        if action == "destroy":
            return None
        life = record.engine
        if life is None:
            life = Life()
            record = record.evolve(engine=life)
        step = self._steps.get(action)
        if step is None:
            return record  # create, restart: the inspect and the other events tell
        reduce, always_changes_life = step
        if not always_changes_life:
            return reduce(event, record, life)
        life = life.copied()
        new = reduce(event, record, life)
        return new if new.engine is life else new.evolve(engine=life)

    def _steps_by_action(self) -> dict[str, tuple[Callable[[DockerEvent, ContainerRecord, Life], ContainerRecord], bool]]:
        """Per action: its handler, and whether it always changes the Life (looked up once per event)."""
        return {"start": (self._start, True), "die": (self._die, True), "oom": (self._oom, False),
                "kill": (self._kill, False), "health_status": (self._health, False), "pause": (self._pause, False),
                "unpause": (self._unpause, False), "rename": (self._rename, False), "stop": (self._stop, False),
                "cleanup": (self._cleanup, False)}

    @staticmethod
    def _kill(event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        stop = event.signal == life.stop_signal  # the engine's ExitOnNext: a stop, no restart follows
        run = life.run_of(event.time)
        if run.killed and (life.exit_on_next or not stop):
            return record
        life = life.copied()  # holds the same runs: `run` is booked in its slot of the copy
        life.book(run, killed=True)
        life.exit_on_next = life.exit_on_next or stop
        return record.evolve(engine=life)

    # The steps below change only the current state: an event older than what the last inspect
    # already shows is in it.
    @staticmethod
    def _pause(event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at or record.reason is Reason.PAUSED:
            return record
        return record.evolve(reason=Reason.PAUSED)

    def _unpause(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at:
            return record
        reason = self._running_reason(record.reason, record.health, life)
        return record if reason is record.reason else record.evolve(reason=reason)

    @staticmethod
    def _rename(event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at or not event.name:
            return record
        return record.evolve(container=event.name.lstrip("/"))

    @staticmethod
    def _stop(event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at or not (record.phase is Phase.WAITING and life.restart_scheduled):
            return record  # a stop's state follows from its kill and die
        life = life.copied()
        life.restart_scheduled = False  # stopped while waiting for its restart: it stays down
        return record.evolve(engine=life, phase=Phase.TERMINATED,
                             reason=record.last_terminated_reason or Reason.ERROR, next_retry_at=None)

    @staticmethod
    def _cleanup(event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at or life.started or record.reason is not Reason.CREATED:
            return record
        # Podman: a container cleaned up without ever starting: its runtime failed to exec it
        # (Docker says so in State.Error, Podman's inspect does not).
        return record.with_failure(Reason.START_FAILURE).evolve(
            phase=Phase.WAITING, reason=Reason.START_FAILURE, last_terminated_reason=Reason.START_FAILURE,
            message="the runtime could not start the container (cleaned up without a start)")

    def _oom(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        run = life.run_of(event.time)
        if run.oom:
            return record  # its run's one OOM kill is counted (by the inspect, an inference or an earlier oom)
        life = life.copied()
        run = life.book(run, oom=True)
        if run is life.run and run.exit_counted and record.last_exit_code == OOM_EXIT:
            # The engine sent this run's `oom` after its `die` (both come from containerd, either
            # first) and nothing let the exit be inferred: its one failure is counted, as an exit.
            return record.evolve(engine=life, oom_kills=record.oom_kills + 1, last_terminated_reason=Reason.OOM_KILLED,
                                 reason=Reason.OOM_KILLED if record.reason is Reason.ERROR else record.reason)
        # the `die` that follows classifies the exit (a child's OOM leaves it running)
        return record.evolve(engine=life, oom_kills=record.oom_kills + 1)

    def _start(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        t = event.time
        run = life.run
        if t < life.inspected_at:
            if run.started is not None and t < run.started - SAME_CYCLE:
                life.older = run_from(t)  # an older run, replayed after the inspect
            else:
                life.book(run, start_seen=True)
            return record  # already in the inspected RestartCount and state
        if not run.start_seen and run.started is not None and t - run.started < SAME_CYCLE:
            life.book(run, start_seen=True)
            return record  # the inspected run's own start, stamped late
        record = inspected.close_run(record, life, run)
        life.run, life.older = run_from(t), NO_RUN
        restarts = record.restarts
        if life.restart_scheduled:
            life.restart_scheduled = False  # counted when the restart was scheduled
        elif life.started:
            restarts = 0                    # a manual start: the engine zeroes its RestartCount
        life.started, life.exit_on_next = True, False
        health = Health.STARTING if life.has_healthcheck else Health.NONE
        return record.evolve(engine=life, phase=Phase.RUNNING, restarts=restarts, started_at=t, next_retry_at=None,
                             health=health, message="", reason=self._running_reason(record.reason, health, life))

    @staticmethod
    def _running_reason(current: Reason, health: Health, life: Life) -> Reason:
        if life.looping and current is Reason.CRASH_LOOP_BACK_OFF:
            return Reason.CRASH_LOOP_BACK_OFF
        return Reason.UNHEALTHY if health is Health.UNHEALTHY else Reason.RUNNING

    @staticmethod
    def _exit_reason(exit_code: int, run: Run, life: Life) -> tuple[Reason, bool]:
        """(reason, inferred): OOMKilled for exit 137 after the run's `oom`, or inferred from
        the first exit 137 of a run under a memory limit with no `kill` from the engine in it."""
        if exit_code != OOM_EXIT:
            return termination_reason(exit_code, False), False
        if run.oom:
            return Reason.OOM_KILLED, False
        if life.memory_limited and not run.killed and not run.exit_counted:
            return Reason.OOM_KILLED, True  # a run's first exit only: a second is a stale task killed by hand
        return Reason.ERROR, False

    def _older_die(self, event: DockerEvent, record: ContainerRecord, life: Life, exit_code: int,
                   run: Run) -> ContainerRecord:
        """An exit the inspected state is newer than (an older run's, or a second `die` of a run,
        from a stale task after an engine crash): counted, the state left as inspected."""
        reason, inferred = self._exit_reason(exit_code, run, life)
        closed = run.exit_counted and run.oom  # its OOM kill was booked as its exit when a newer run showed
        if inferred:
            run = life.book(run, oom=True)
            record = record.evolve(oom_kills=record.oom_kills + 1)
        life.book(run, exit_counted=True)
        finished = life.running_finished
        if finished is not None and event.time >= finished - EXIT_STAMP:
            # the exit an inspect of the running container could not tell the code of
            record = record.evolve(last_exit_code=exit_code, last_terminated_reason=reason,
                                   last_terminated_at=event.time)
        return record if closed and reason is Reason.OOM_KILLED else counted(record, reason)

    def _die(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        t = event.time
        exit_code = event.exit_code if event.exit_code is not None else -1
        run = life.run
        if run.started is not None and t < run.started - EXIT_STAMP:
            return self._older_die(event, record, life, exit_code, life.older)
        if (run.finished is not None and run.finished - EXIT_STAMP <= t < run.finished + DIE_LAG
                and exit_code == record.last_exit_code):
            life.book(run, finished=None)
            return record  # the inspected exit itself, counted at inspect
        if t < life.inspected_at:
            return self._older_die(event, record, life, exit_code, run)
        reason, inferred = self._exit_reason(exit_code, run, life)
        life.book(run, exit_counted=True, exit_at=t, oom=run.oom or inferred)
        ran_for = t - record.started_at if record.started_at else 0.0
        life.quick_exits = life.quick_exits + 1 if ran_for < ENGINE_DELAY_RESET else 1
        crashed = exit_code != 0
        restarts_again = not life.exit_on_next and (
            life.policy in ("always", "unless-stopped")
            or (life.policy == "on-failure" and exit_code != 0
                and (life.max_retries == 0 or record.restarts < life.max_retries)))
        life.exit_on_next = False
        life.restart_scheduled = restarts_again
        if crashed:
            recent = life.last_crash_at is not None and t - life.last_crash_at < CRASH_LOOP_RESET
            life.crashed(Crash.CRASH if recent else Crash.LATE_CRASH)
            life.last_crash_at = t
        failures = [reason] if reason.is_failure else []
        shown, message = reason, INFERRED_OOM if inferred else ""
        if restarts_again:
            phase, restarts, next_retry_at = Phase.WAITING, record.restarts + 1, t + _restart_delay(life.quick_exits)
            if crashed and life.looping:
                if record.reason is not Reason.CRASH_LOOP_BACK_OFF:
                    failures.append(Reason.CRASH_LOOP_BACK_OFF)
                shown, message = Reason.CRASH_LOOP_BACK_OFF, f"back-off restarting failed container (exit {exit_code})"
        else:
            phase, restarts, next_retry_at = Phase.TERMINATED, record.restarts, None
        counts = record.failures
        if failures:
            counts = dict(counts)
            for failure in failures:
                counts[failure] = counts.get(failure, 0) + 1
            counts = MappingProxyType(counts)
        return record.evolve(engine=life, last_exit_code=exit_code, last_terminated_reason=reason, last_terminated_at=t,
                             oom_kills=record.oom_kills + 1 if inferred else record.oom_kills, message=message,
                             phase=phase, reason=shown, restarts=restarts, next_retry_at=next_retry_at, failures=counts)

    @staticmethod
    def _health(event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at:
            return record
        health = _HEALTH.get(event.health)
        if health is None:
            return record
        if record.phase is not Phase.RUNNING or record.reason in (Reason.CRASH_LOOP_BACK_OFF, Reason.PAUSED):
            return record if record.health is health else record.evolve(health=health)
        reason = Reason.UNHEALTHY if health is Health.UNHEALTHY else Reason.RUNNING
        if record.reason is reason:
            return record if record.health is health else record.evolve(health=health)
        if reason is Reason.UNHEALTHY:
            return record.with_failure(reason, health=health, reason=reason)
        return record.evolve(health=health, reason=reason)

    # -- time ------------------------------------------------------------------------------
    @staticmethod
    def restart_overdue(record: ContainerRecord, now: float) -> bool:
        """A restart the policy in HostConfig promises that has not come: the engine decided
        otherwise, and no event says so. dockerd's `update` switches the restart monitor's
        policy before it fails on a container that exits meanwhile, then restores HostConfig
        alone: the container stays down under a policy that still reads `always`."""
        life = record.engine
        return (isinstance(life, Life) and life.restart_scheduled and record.phase is Phase.WAITING
                and record.next_retry_at is not None and now > record.next_retry_at + RESTART_OVERDUE)

    @staticmethod
    def kernel_oom(record: ContainerRecord, cgroup_created: float) -> ContainerRecord:
        """The kernel counted an OOM kill in the cgroup the runtime made at `cgroup_created` (engine
        clock; see cgroup.py): the current run's one OOM kill, if the engine has not reported it.
        Nothing else changes: a child's kill leaves the container Running, and a main process's
        exit is classified OOMKilled by the `die` that follows (as after an `oom` event)."""
        life = record.engine
        if not isinstance(life, Life) or record.phase is not Phase.RUNNING:
            return record
        run = life.run
        if run.oom or run.started is None or cgroup_created > run.started + CGROUP_LEAD:
            return record  # counted, never started, or the cgroup of a newer run whose start is still on its way
        life = life.copied()
        life.book(life.run, oom=True)
        return record.evolve(engine=life, oom_kills=record.oom_kills + 1)

    @staticmethod
    def settle(record: ContainerRecord, now: float) -> ContainerRecord:
        """End a crash loop once the container has run CRASH_LOOP_RESET without crashing."""
        life = record.engine
        if (not isinstance(life, Life) or record.reason is not Reason.CRASH_LOOP_BACK_OFF
                or record.phase is not Phase.RUNNING or life.last_crash_at is None
                or now - life.last_crash_at < CRASH_LOOP_RESET):
            return record
        life = life.copied()
        life.crashed(Crash.QUIET)
        return record.evolve(engine=life,
                             reason=Reason.UNHEALTHY if record.health is Health.UNHEALTHY else Reason.RUNNING)
