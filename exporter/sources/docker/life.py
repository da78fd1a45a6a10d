"""What a Docker container's record needs beyond the engine's current state: its runs, its
policy, its crash-loop story. Carried in `ContainerRecord.engine`, so it changes only where the
record does (inside `StateStore.update`), and copied before any change, so the reducer that
takes one never alters what another thread may hold.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

from exporter.state import ContainerRecord, Reason

_new = object.__new__
_set = object.__setattr__

CRASH_LOOP_RESET = 600.0   # kubelet: back-off resets after 10 minutes without a crash
OOM_EXIT = 137              # 128 + SIGKILL: how the kernel's OOM kill of the main process exits
SAME_CYCLE = 0.1            # a `start` this close to the inspected StartedAt is that same start
EXIT_STAMP = 0.01           # a `die` is stamped after FinishedAt (clock resolution margin)


class Loop(Enum):
    """Where a container is in the kubelet's crash-loop story."""

    STEADY = "steady"        # no crash in the last CRASH_LOOP_RESET
    CRASHED = "crashed"      # one crash: restarted, not (yet) a loop
    BACK_OFF = "back-off"    # crashed again within CRASH_LOOP_RESET: CrashLoopBackOff

    __hash__ = object.__hash__  # members are singletons: LOOP's keys hash in C, not by Enum's hash(name)


class Crash(Enum):
    """What moves a container through `Loop`."""

    CRASH = "a crash within CRASH_LOOP_RESET of the previous one"
    LATE_CRASH = "a crash after CRASH_LOOP_RESET without one"
    INSPECTED_FIRST = "an inspect finds it restarting, RestartCount 0"
    INSPECTED_AGAIN = "an inspect finds it restarting, RestartCount >= 1"
    QUIET = "ran CRASH_LOOP_RESET without crashing"

    __hash__ = object.__hash__


# Every transition, as the breaker's are (resilience/breaker.py): (state, what happened) -> state.
LOOP: Mapping[tuple[Loop, Crash], Loop] = {
    **{(state, Crash.LATE_CRASH): Loop.CRASHED for state in Loop},
    **{(state, Crash.INSPECTED_AGAIN): Loop.BACK_OFF for state in Loop},
    **{(state, Crash.QUIET): Loop.STEADY for state in Loop},
    (Loop.STEADY, Crash.CRASH): Loop.CRASHED,
    (Loop.CRASHED, Crash.CRASH): Loop.BACK_OFF,
    (Loop.BACK_OFF, Crash.CRASH): Loop.BACK_OFF,
    (Loop.STEADY, Crash.INSPECTED_FIRST): Loop.CRASHED,
    (Loop.CRASHED, Crash.INSPECTED_FIRST): Loop.CRASHED,
    (Loop.BACK_OFF, Crash.INSPECTED_FIRST): Loop.BACK_OFF,
}


@dataclass(frozen=True)
class Run:
    """One run of a container, from a start to the next: what of it is already counted.

    Frozen: a Life copy shares its runs with the original; `Life.book` replaces one."""

    started: float | None = None  # StartedAt / the start event's time; None: never started
    start_seen: bool = True        # False: known from an inspect, its own `start` may still arrive
    finished: float | None = None  # FinishedAt an inspect told with its exit code: that `die` is counted
    exit_counted: bool = False
    exit_at: float | None = None   # when the counted exit happened (die time or FinishedAt)
    oom: bool = False              # its one OOM kill is counted
    killed: bool = False           # the engine sent a kill during it: an exit 137 is no OOM kill

    def but(self, **changes: object) -> "Run":
        """A copy with `changes` (dataclasses.replace without its per-call introspection)."""
        state = self.__dict__.copy()
        state.update(changes)
        new = _new(Run)
        _set(new, "__dict__", state)  # frozen: past __setattr__, as dataclasses itself does
        return new


# No run: one instance for every Life's empty `older` slot (a Run is frozen; `Life.book` tells the
# slots apart by identity, so `run` never holds this one: runs are made with run_from).
NO_RUN = Run()


def run_from(started: float) -> Run:
    """A run begun at `started`: a copy of NO_RUN (half the cost of the frozen __init__, per start)."""
    return NO_RUN.but(started=started)


@dataclass
class Life:
    """Crash history, configuration and runs of one container.

    Two flags say what follows the current run, besides the crash-loop state: `exit_on_next`
    (the engine's ExitOnNext: a stop is under way, the run's exit is final) and
    `restart_scheduled` (the policy restarts it after the exit just seen; cleared by the start
    that follows, a stop, or an inspect that finds it down).
    """

    policy: str = "no"
    max_retries: int = 0       # on-failure:N
    stop_signal: int = 15
    memory_limited: bool = False
    exit_on_next: bool = False
    restart_scheduled: bool = False
    has_healthcheck: bool = False
    started: bool = False
    loop: Loop = Loop.STEADY
    quick_exits: int = 0       # consecutive runs shorter than the engine's delay reset
    last_crash_at: float | None = None
    inspected_at: float = 0.0  # engine time the last inspect was sent: older events are in it
    running_finished: float | None = None  # FinishedAt of an inspect that found it running again
    run: Run = field(default_factory=Run)
    older: Run = NO_RUN  # runs before the inspected one, replayed after it

    def copied(self) -> "Life":
        """A copy to change (runs are frozen: a shallow copy is one)."""
        new = _new(Life)
        new.__dict__ = self.__dict__.copy()  # one copy of the table, not a dict filled key by key
        return new

    def book(self, run: Run, **changes: object) -> Run:
        """`run` with `changes`, put back in the slot (current or older) that holds it."""
        new = run.but(**changes)
        if run is self.run:
            self.run = new
        elif run is self.older:
            self.older = new
        return new

    def crashed(self, what: Crash) -> None:
        self.loop = LOOP[(self.loop, what)]

    @property
    def looping(self) -> bool:
        return self.loop is Loop.BACK_OFF

    def run_of(self, t: float) -> Run:
        """The run an exit, kill or OOM stamped at `t` belongs to: the current one, or an older one."""
        started = self.run.started
        return self.older if started is not None and t < started - EXIT_STAMP else self.run


def life_of(record: ContainerRecord | None) -> Life:
    """A copy of the record's Life to change (a new one for a record without)."""
    life = record.engine if record is not None else None
    return life.copied() if isinstance(life, Life) else Life()


def termination_reason(exit_code: int, oom: bool) -> Reason:
    if oom:
        return Reason.OOM_KILLED
    if exit_code in (126, 127):
        return Reason.START_FAILURE
    return Reason.ERROR if exit_code else Reason.COMPLETED


_SIGNALS = {"SIGTERM": 15, "SIGINT": 2, "SIGQUIT": 3, "SIGKILL": 9, "SIGHUP": 1, "SIGUSR1": 10, "SIGUSR2": 12}


def signal_number(text: str | None) -> int:
    if not text:
        return 15
    if text.isdigit():
        return int(text)
    name = text.upper()
    return _SIGNALS.get(name if name.startswith("SIG") else "SIG" + name, 15)


def counted(record: ContainerRecord, reason: Reason, n: int = 1) -> ContainerRecord:
    """The record with one more entry into `reason`, if it is a failure."""
    return record.with_failure(reason, n) if reason.is_failure else record
