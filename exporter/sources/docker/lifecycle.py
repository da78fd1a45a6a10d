"""Kubelet-style reasons for plain Docker containers, from inspect results and events.

Pure logic (no I/O): the watcher feeds it engine data and writes the records it returns.
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

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from exporter.resilience import Exponential
from exporter.sources.docker.events import DockerEvent, parse_timestamp
from exporter.state import ContainerRecord, Health, Phase, Reason, Source

CRASH_LOOP_RESET = 600.0   # kubelet: back-off resets after 10 minutes without a crash
ENGINE_RESTART_DELAY = Exponential(base=0.1, factor=2.0, cap=60.0)  # dockerd restartmanager
ENGINE_DELAY_RESET = 10.0  # dockerd resets its restart delay after a run of 10 s
SAME_CYCLE = 0.1            # a `start` this close to the inspected StartedAt is that same start
EXIT_STAMP = 0.01           # a `die` is stamped after FinishedAt (clock resolution margin)
RESTART_OVERDUE = 10.0      # a scheduled restart not started this long after its expected delay: ask the engine
DIE_LAG = 10.0              # the engine stamps a `die` after its exit's cleanup: up to seconds after FinishedAt
OOM_EXIT = 137              # 128 + SIGKILL: how the kernel's OOM kill of the main process exits
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
INFERRED_OOM = "OOMKilled (inferred: exit 137 under a memory limit, and the engine sent no kill)"


@dataclass(slots=True)
class Run:
    """One run of a container, from a start to the next: what of it is already counted."""

    started: float | None = None  # StartedAt / the start event's time; None: never started
    start_seen: bool = True        # False: known from an inspect, its own `start` may still arrive
    finished: float | None = None  # FinishedAt an inspect told with its exit code: that `die` is counted
    exit_counted: bool = False
    exit_at: float | None = None   # when the counted exit happened (die time or FinishedAt)
    oom: bool = False              # its one OOM kill is counted
    killed: bool = False           # the engine sent a kill during it: an exit 137 is no OOM kill


@dataclass(slots=True)
class Life:
    """What the engine's current state does not say but reasons need: crash history, policy."""

    policy: str = "no"
    max_retries: int = 0       # on-failure:N
    stop_signal: int = 15
    memory_limited: bool = False
    exit_on_next: bool = False  # a stop is under way: the next exit is not restarted
    restart_scheduled: bool = False
    has_healthcheck: bool = False
    started: bool = False
    streak: int = 0            # consecutive crashes less than CRASH_LOOP_RESET apart
    quick_exits: int = 0       # consecutive runs shorter than ENGINE_DELAY_RESET
    last_crash_at: float | None = None
    inspected_at: float = 0.0  # engine time the last inspect was sent: older events are in it
    running_finished: float | None = None  # FinishedAt of an inspect that found it running again
    run: Run = field(default_factory=Run)
    older: Run = field(default_factory=Run)  # runs before the inspected one, replayed after it
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


_HEALTH = {h.value: h for h in Health}
# dockerd's delay before the n-th quick restart in a row, n = 1..32 (capped long before the end)
_RESTART_DELAYS = tuple(ENGINE_RESTART_DELAY.delay(n) for n in range(1, 33))


def _restart_delay(quick_exits: int) -> float:
    return _RESTART_DELAYS[min(max(quick_exits, 1), len(_RESTART_DELAYS)) - 1]


def _raised(failures: Mapping[Reason, int], reason: Reason) -> Mapping[Reason, int]:
    """`failures` with the count of `reason` raised by one (records share their counters read-only)."""
    counts = dict(failures)
    counts[reason] = counts.get(reason, 0) + 1
    return MappingProxyType(counts)


def _counted(record: ContainerRecord, reason: Reason, n: int = 1) -> ContainerRecord:
    return record.with_failure(reason, n) if reason.is_failure else record


class DockerLifecycle:
    """Turns inspect dicts and events into ContainerRecords for one engine (one `host`)."""

    def __init__(self, host: str, *, label_allowlist: tuple[str, ...] = ()) -> None:
        self.host = host
        self.label_allowlist = label_allowlist
        self.lives: dict[str, Life] = {}
        self._steps = self._steps_by_action()

    # -- inspect ---------------------------------------------------------------------------
    def _configure(self, life: Life, data: Mapping[str, Any]) -> Mapping[str, str]:
        """The container's configuration (restart policy, limits, labels); returns its labels."""
        config = data.get("Config") or {}
        host_config = data.get("HostConfig") or {}
        labels = config.get("Labels") or {}
        policy = host_config.get("RestartPolicy") or {}
        life.policy = policy.get("Name") or "no"
        life.max_retries = int(policy.get("MaximumRetryCount") or 0)
        life.stop_signal = _signal_number(config.get("StopSignal"))
        life.memory_limited = int(host_config.get("Memory") or 0) > 0
        life.has_healthcheck = bool((config.get("Healthcheck") or {}).get("Test"))
        life.labels = {k: labels[k] for k in self.label_allowlist if k in labels}
        return labels

    def from_inspect(self, data: Mapping[str, Any], old: ContainerRecord | None, *,
                     at: float | None = None, state: bool = True) -> ContainerRecord:
        """A record for an inspected container; `old` keeps durable counters across relists.

        `at`: the engine time the inspect was sent (events stamped before it are in it; default:
        the latest time the inspect itself shows). `state=False` takes identity and config only,
        for a container adopted at its `create`, whose events from then on all follow.
        """
        cid = data["Id"]
        config = data.get("Config") or {}
        life = self.lives.setdefault(cid, Life())
        labels = self._configure(life, data)
        record = old or ContainerRecord(key=cid, source=Source.DOCKER, container="")
        record = record.evolve(
            container=(data.get("Name") or "").lstrip("/"), host=self.host,
            namespace=labels.get(COMPOSE_PROJECT, ""), pod=labels.get(COMPOSE_SERVICE, ""),
            image=config.get("Image") or data.get("Image", ""), container_id=cid,
            created_at=parse_timestamp(data.get("Created")), labels=MappingProxyType(dict(life.labels)))
        if not state:
            return record
        return self._inspected_state(data, record, old, life, at)

    def from_event(self, event: DockerEvent) -> ContainerRecord:
        """A record from a `create` event alone, for a container already gone when inspected."""
        self.lives.setdefault(event.container_id, Life())
        return ContainerRecord(key=event.container_id, source=Source.DOCKER, container=event.name.lstrip("/"),
                               host=self.host, container_id=event.container_id, created_at=event.time)

    def _inspected_state(self, data: Mapping[str, Any], record: ContainerRecord, old: ContainerRecord | None,
                         life: Life, at: float | None) -> ContainerRecord:
        state = data.get("State") or {}
        status = state.get("Status", "")
        if status == "stopped":  # Podman: exited, and restarting next if its policy says so
            status = "restarting" if life.policy in ("always", "unless-stopped", "on-failure") and \
                (life.policy != "on-failure" or int(state.get("ExitCode") or 0) != 0) else "exited"
        exit_code = int(state.get("ExitCode") or 0)
        engine_restarts = int(data.get("RestartCount") or 0)
        started_at = parse_timestamp(state.get("StartedAt"))
        finished_at = parse_timestamp(state.get("FinishedAt"))
        oom_flag = bool(state.get("OOMKilled"))
        life.restart_scheduled = status == "restarting"
        life.started = started_at is not None
        life.inspected_at = max(at or 0.0, started_at or 0.0, finished_at or 0.0)
        run, replaced = self._inspected_run(life, started_at)
        if replaced is not None:
            record = self._close_run(record, replaced)
        # Running again, the engine has zeroed ExitCode: FinishedAt's exit is not told here, its `die` tells it.
        told = finished_at is not None and status not in ("running", "paused")
        life.running_finished = None if told else finished_at
        health_status = (state.get("Health") or {}).get("Status")
        health = Health(health_status) if health_status in ("starting", "healthy", "unhealthy") else Health.NONE
        record = record.evolve(restarts=engine_restarts, health=health, started_at=started_at)

        if oom_flag and not run.oom and started_at is not None:
            run.oom = True  # the run's OOM kill (of its main process if it exited 137, else of a child)
            record = record.evolve(oom_kills=record.oom_kills + 1)
        failed_start = status == "created" and bool(state.get("Error"))
        if told or failed_start:
            reason = Reason.START_FAILURE if failed_start else termination_reason(
                exit_code, run.oom and exit_code == OOM_EXIT)
            record = record.evolve(last_exit_code=exit_code, last_terminated_reason=reason,
                                   last_terminated_at=finished_at)
            if failed_start:
                if old is None or old.reason is not Reason.START_FAILURE:
                    record = _counted(record, reason)
            elif not run.exit_counted or (finished_at is not None and run.exit_at is not None
                                          and finished_at > run.exit_at + SAME_CYCLE):
                # a first exit, or a second end of the same run no `die` reported (a start the
                # engine's restore after its own crash failed: exited 255, no event is sent)
                record = _counted(record, reason)
            run.exit_counted, run.finished, run.exit_at = True, finished_at, finished_at
        return self._current(status, state, record, life, health, engine_restarts, exit_code, finished_at)

    @staticmethod
    def _inspected_run(life: Life, started_at: float | None) -> tuple[Run, Run | None]:
        """The run an inspect shows (the one already known if it started at the same time), and
        the known run it replaces, if any."""
        known = life.run
        if started_at is not None and known.started is not None and abs(started_at - known.started) < SAME_CYCLE:
            return known, None
        if started_at is None and known.started is None:
            return known, None
        life.older = known if known.started is not None else Run()  # its late events still book against it
        life.run = Run(started=started_at, start_seen=False)
        return life.run, (known if known.started is not None else None)

    def _current(self, status: str, state: Mapping[str, Any], record: ContainerRecord, life: Life,
                 health: Health, engine_restarts: int, exit_code: int, finished_at: float | None) -> ContainerRecord:
        """Phase and reason from the inspected status."""
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
            reason = Reason.CRASH_LOOP_BACK_OFF if life.streak >= 2 else (
                record.last_terminated_reason or termination_reason(exit_code, False))
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
        cid = event.container_id
        action = event.action
        if action == "destroy":
            self.lives.pop(cid, None)
            return None
        life = self.lives.get(cid)
        if life is None:
            life = self.lives[cid] = Life()
        step = self._steps.get(action)
        return record if step is None else step(event, record, life)  # create, restart: the others tell

    def _steps_by_action(self) -> dict[str, Callable[[DockerEvent, ContainerRecord, Life], ContainerRecord]]:
        """One handler per action, looked up once per event (built once per lifecycle)."""
        return {"start": self._start, "die": self._die, "oom": self._oom, "kill": self._kill,
                "health_status": self._health, "pause": self._pause, "unpause": self._unpause,
                "rename": self._rename, "stop": self._stop, "cleanup": self._cleanup}

    def _kill(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        self._run_of(life, event.time).killed = True
        if event.signal == life.stop_signal:
            life.exit_on_next = True  # the engine's ExitOnNext: a stop, no restart follows
        return record

    # The steps below change only the current state: an event older than what the last inspect
    # already shows is in it.
    def _pause(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at:
            return record
        return record.evolve(reason=Reason.PAUSED)

    def _unpause(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at:
            return record
        return record.evolve(reason=self._running_reason(record.reason, record.health, life))

    def _rename(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at or not event.name:
            return record
        return record.evolve(container=event.name.lstrip("/"))

    def _stop(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at or not (record.phase is Phase.WAITING and life.restart_scheduled):
            return record  # a stop's state follows from its kill and die
        life.restart_scheduled = False  # stopped while waiting for its restart: it stays down
        return record.evolve(phase=Phase.TERMINATED, reason=record.last_terminated_reason or Reason.ERROR,
                             next_retry_at=None)

    def _cleanup(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at or life.started or record.reason is not Reason.CREATED:
            return record
        # Podman: a container cleaned up without ever starting: its runtime failed to exec it
        # (Docker says so in State.Error, Podman's inspect does not).
        return record.with_failure(Reason.START_FAILURE).evolve(
            phase=Phase.WAITING, reason=Reason.START_FAILURE, last_terminated_reason=Reason.START_FAILURE,
            message="the runtime could not start the container (cleaned up without a start)")

    @staticmethod
    def _run_of(life: Life, t: float) -> Run:
        """The run an exit, kill or OOM stamped at `t` belongs to: the current one, or an older one."""
        started = life.run.started
        return life.older if started is not None and t < started - EXIT_STAMP else life.run

    def _oom(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        run = self._run_of(life, event.time)
        if run.oom:
            return record  # its run's one OOM kill is counted (by the inspect, an inference or an earlier oom)
        run.oom = True
        record = record.evolve(oom_kills=record.oom_kills + 1)
        if run is life.run and run.exit_counted and record.last_exit_code == OOM_EXIT:
            # The engine sent this run's `oom` after its `die` (both come from containerd, either
            # first) and nothing let the exit be inferred: its one failure is counted, as an exit.
            return record.evolve(last_terminated_reason=Reason.OOM_KILLED,
                                 reason=Reason.OOM_KILLED if record.reason is Reason.ERROR else record.reason)
        return record  # the `die` that follows classifies the exit (a child's OOM leaves it running)

    def _start(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        t = event.time
        run = life.run
        if t < life.inspected_at:
            if run.started is not None and t < run.started - SAME_CYCLE:
                life.older = Run(started=t)  # an older run, replayed after the inspect
            else:
                run.start_seen = True
            return record  # already in the inspected RestartCount and state
        if not run.start_seen and run.started is not None and t - run.started < SAME_CYCLE:
            run.start_seen = True
            return record  # the inspected run's own start, stamped late
        record = self._close_run(record, run)
        life.run, life.older = Run(started=t), Run()
        restarts = record.restarts
        if life.restart_scheduled:
            life.restart_scheduled = False  # counted when the restart was scheduled
        elif life.started:
            restarts = 0                    # a manual start: the engine zeroes its RestartCount
        life.started, life.exit_on_next = True, False
        health = Health.STARTING if life.has_healthcheck else Health.NONE
        return record.evolve(phase=Phase.RUNNING, restarts=restarts, started_at=t, next_retry_at=None,
                             health=health, message="", reason=self._running_reason(record.reason, health, life))

    @staticmethod
    def _close_run(record: ContainerRecord, run: Run) -> ContainerRecord:
        """A run that ends without a `die` (the engine died between its `oom` and its exit):
        its OOM kill was its exit."""
        if run.oom and not run.exit_counted and run.started is not None:
            run.exit_counted = True
            return record.with_failure(Reason.OOM_KILLED)
        return record

    @staticmethod
    def _running_reason(current: Reason, health: Health, life: Life) -> Reason:
        if life.streak >= 2 and current is Reason.CRASH_LOOP_BACK_OFF:
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
        t = event.time
        """An exit the inspected state is newer than (an older run's, or a second `die` of a run,
        from a stale task after an engine crash): counted, the state left as inspected."""
        reason, inferred = self._exit_reason(exit_code, run, life)
        closed = run.exit_counted and run.oom  # its OOM kill was booked as its exit when a newer run showed
        if inferred:
            run.oom = True
            record = record.evolve(oom_kills=record.oom_kills + 1)
        run.exit_counted = True
        finished = life.running_finished
        if finished is not None and t >= finished - EXIT_STAMP:
            # the exit an inspect of the running container could not tell the code of
            record = record.evolve(last_exit_code=exit_code, last_terminated_reason=reason,
                                   last_terminated_at=t)
        return record if closed and reason is Reason.OOM_KILLED else _counted(record, reason)

    def _die(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        t = event.time
        exit_code = event.exit_code if event.exit_code is not None else -1
        run = life.run
        if run.started is not None and t < run.started - EXIT_STAMP:
            return self._older_die(event, record, life, exit_code, life.older)
        if (run.finished is not None and run.finished - EXIT_STAMP <= t < run.finished + DIE_LAG
                and exit_code == record.last_exit_code):
            run.finished = None
            return record  # the inspected exit itself, counted at inspect
        if t < life.inspected_at:
            return self._older_die(event, record, life, exit_code, run)
        reason, inferred = self._exit_reason(exit_code, run, life)
        failures = [reason] if reason.is_failure else []
        oom_kills = record.oom_kills
        if inferred:
            run.oom, oom_kills = True, oom_kills + 1
        run.exit_counted, run.exit_at = True, t
        ran_for = t - record.started_at if record.started_at else 0.0
        life.quick_exits = life.quick_exits + 1 if ran_for < ENGINE_DELAY_RESET else 1
        changes: dict[str, object] = {"last_exit_code": exit_code, "last_terminated_reason": reason,
                                      "last_terminated_at": t, "oom_kills": oom_kills,
                                      "message": INFERRED_OOM if inferred else ""}
        crashed = exit_code != 0
        restarts_again = not life.exit_on_next and (
            life.policy in ("always", "unless-stopped")
            or (life.policy == "on-failure" and exit_code != 0
                and (life.max_retries == 0 or record.restarts < life.max_retries)))
        life.exit_on_next = False
        life.restart_scheduled = restarts_again
        if crashed:
            recent = life.last_crash_at is not None and t - life.last_crash_at < CRASH_LOOP_RESET
            life.streak = life.streak + 1 if recent else 1
            life.last_crash_at = t
        if not restarts_again:
            changes.update(phase=Phase.TERMINATED, reason=reason, next_retry_at=None)
        else:
            changes.update(restarts=record.restarts + 1, phase=Phase.WAITING, reason=reason,
                           next_retry_at=t + _restart_delay(life.quick_exits))
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

    def _health(self, event: DockerEvent, record: ContainerRecord, life: Life) -> ContainerRecord:
        if event.time < life.inspected_at:
            return record
        health = _HEALTH.get(event.health)
        if health is None:
            return record
        if record.phase is not Phase.RUNNING or record.reason in (Reason.CRASH_LOOP_BACK_OFF, Reason.PAUSED):
            return record.evolve(health=health)
        if health is Health.UNHEALTHY:
            if record.reason is not Reason.UNHEALTHY:
                return record.evolve(health=health, reason=Reason.UNHEALTHY,
                                     failures=_raised(record.failures, Reason.UNHEALTHY))
            return record.evolve(health=health, reason=Reason.UNHEALTHY)
        return record.evolve(health=health, reason=Reason.RUNNING)

    # -- time ------------------------------------------------------------------------------
    def restart_overdue(self, record: ContainerRecord, now: float) -> bool:
        """A restart the policy in HostConfig promises that has not come: the engine decided
        otherwise, and no event says so. dockerd's `update` switches the restart monitor's
        policy before it fails on a container that exits meanwhile, then restores HostConfig
        alone: the container stays down under a policy that still reads `always`."""
        life = self.lives.get(record.key)
        return (life is not None and life.restart_scheduled and record.phase is Phase.WAITING
                and record.next_retry_at is not None and now > record.next_retry_at + RESTART_OVERDUE)

    def settle(self, record: ContainerRecord, now: float) -> ContainerRecord:
        """End a crash loop once the container has run CRASH_LOOP_RESET without crashing."""
        life = self.lives.get(record.key)
        if (life is None or record.reason is not Reason.CRASH_LOOP_BACK_OFF or record.phase is not Phase.RUNNING
                or life.last_crash_at is None or now - life.last_crash_at < CRASH_LOOP_RESET):
            return record
        life.streak = 0
        return record.evolve(reason=Reason.UNHEALTHY if record.health is Health.UNHEALTHY else Reason.RUNNING)
