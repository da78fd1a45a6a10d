"""dockerd kill -9 + restart during a crash storm (issue 8): afterwards our counters equal the engine's.

Setup: a private dockerd (vfs, no bridge), a DockerWatcher feeding a StateStore as `serve` does
(reconnect back-off capped at 1 s; breaker at its defaults but open 2 s, not 30 s), and four
`--restart always` containers that append a line to a bind-mounted file at the start of every
run: three exit 3 after 0.3 s, 0.8 s and 2 s, one is OOM-killed under `-m 8m`. Beside the
watcher an independent ledger follows the same engine's events on its own connection,
re-attached after every restart with `since` = the last event it saw.

Each trial: wait until every container has run since dockerd last started; wait a seeded
0-0.6 s (it only varies where in the storm the kill lands); SIGKILL dockerd itself (its managed
containerd dies with it, by its parent-death signal; the shims and their containers live on);
even trials start dockerd again at once (the restore stops what still runs: `kill`, `die`,
then `start`), odd trials first wait until every container the dead engine left running has
exited (exits no `die` will ever report). Then wait until the watcher has reconnected and
relisted and each record's restarts equal the engine's RestartCount (zeroed by each restore).
What the engine itself gets wrong after a kill -9 is repaired as an operator would (see
`clear_stale_task`): a start the kill interrupted leaves a stale containerd task, so the
restore either fails that container's start ("task ... already exists": exited, ExitCode 255)
or cannot stop it and leaves it `restarting` for ever. At the end: restart policy `no`, every
container exited, then a marker container: once the ledger and the store show it, both have
applied every earlier event.

The truth after a kill -9, per container: every failure the engine reports, counted once.
- a `die` event with a non-zero exit code, from any dockerd instance;
- an `oom` event whose run has no `die` (dockerd died between the two: it reported the OOM kill,
  never the exit); an `oom` after its own `die` is still that one exit;
- a termination only the state tells: a start the restore failed, whose FinishedAt is later
  than the last `die` (the restore set it stopped at an exit no `die` reported, or at its own
  start time); no event is ever sent for it. The `die` its stale task sends when cleaned up
  is that same termination, not another.
An exit while dockerd is dead has no `die`, and the restore restarts the container before its
API answers, with ExitCode already 0 again: no API caller can learn that exit's code, so it is
not an engine-reported failure. Those `silent` exits = runs (lines written) - runs with a `die`;
nothing restarts a container while dockerd is dead, so 0 <= silent <= kills (one per trial).
Asserted: failures[Error] + [OOMKilled] + [StartFailure] == those failures; oom_kills == runs
with an `oom` event or ending 137 under no `kill` of the engine (only the OOM hog has a memory
limit; a kill -9 between the kernel's kill and the event loses the event); restarts == the final RestartCount; last_exit_code == the final State.ExitCode; no
process, mount or shim socket left once the trial's dockerd is closed.

`python -m bench.dockerd_kill [--trials 20] [--seed 8] [-v]` (root; ~5 s per trial, 20 s more
for each container the engine leaves stuck).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import docker

from bench.common import Row
from exporter.resilience import BreakerSettings, ResilienceRegistry
from exporter.sources.docker import DockerWatcher
from exporter.state import ContainerRecord, Reason, StateStore
from tests.harness import poll, wait_until
from tests.integration.dockerd import AFTER_STOP_RESTARTING, IMAGE, PrivateDockerd

EXIT_REASONS = (Reason.ERROR, Reason.OOM_KILLED, Reason.START_FAILURE)
SHIM_SOCKETS = Path("/run/containerd/s")  # containerd 1.6 puts every shim's socket here
# The engine breaker at its defaults (5 failures in 60 s open it) but open 2 s instead of 30 s:
# each kill costs 3-5 failed connects, so it opens, rejects and half-opens in every trial as in
# production, without making each trial 30 s long.
BREAKER = {"open_timeout": 2.0}


@dataclass(frozen=True)
class Spec:
    name: str
    body: str                  # the run after its line is written
    exit_code: int             # what each run exits with
    args: tuple[str, ...] = ()


SPECS = (
    Spec("crash-fast", "sleep 0.3; exit 3", 3),
    Spec("crash-mid", "sleep 0.8; exit 3", 3),
    Spec("crash-slow", "sleep 2; exit 3", 3),   # often still running when dockerd dies
    Spec("oom", 'x=a; while true; do x="$x$x"; done', 137, ("-m", "8m", "--memory-swap", "8m")),
)






# -- the engine's side ---------------------------------------------------------------------------
class EngineLedger:
    """Every container event any instance of the engine emitted, on a connection of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.events: list[dict[str, Any]] = []
        self.attaches = 0
        self._seen: set[tuple[int, str, str]] = set()
        self._last_nano = time.time_ns() - 1_000_000_000  # of its own connection: `since` on re-attach
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name="engine-ledger", daemon=True)

    def start(self) -> None:
        self._thread.start()
        wait_until(lambda: self.attaches >= 1,
                   timeout=30, interval=0.05, message="the ledger to attach to the event stream")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client = docker.APIClient(base_url=self.url, version="auto", timeout=10)
                since = f"{self._last_nano // 10**9}.{self._last_nano % 10**9:09d}"
                self._stream = client.events(since=since, filters={"type": ["container"]}, decode=True)
                self.attaches += 1
                for event in self._stream:
                    self._last_nano = max(self._last_nano, int(event.get("timeNano") or 0))
                    self._add(event)
            except Exception:  # the engine went away (killed): attach again once it answers
                pass
            self._stop.wait(0.05)

    def add_line(self, line: bytes | str) -> None:
        """An event line someone else read from the same engine (the watcher's stream)."""
        try:
            event = json.loads(line)
        except ValueError:
            return
        if isinstance(event, dict) and event.get("Type") == "container":
            self._add(event)

    def _add(self, event: dict[str, Any]) -> None:
        key = (int(event.get("timeNano") or 0), event.get("id") or "", event.get("Action") or "")
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            self.events.append(event)

    def of(self, name: str, action: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("Action") == action
                    and (e.get("Actor") or {}).get("Attributes", {}).get("name") == name]

    def failed_runs(self, name: str, failed_starts_seen: tuple[int, ...] = ()) -> Failed:
        """What the engine reported of one container's runs (see `Failed`).

        A run is the events from one `start` to the next. dockerd killed between a run's `oom`
        and its `die` reported the OOM kill but never the exit; an `oom` after its `die`
        (containerd delivers either first) is still that one exit. A `die` after a start the
        restore failed (seen at `failed_starts_seen`) and before the next `start` is that failed
        start's stale task being cleaned up: the same termination the state already told.
        """
        with self._lock:
            mine = [e for e in self.events if (e.get("Actor") or {}).get("Attributes", {}).get("name") == name]
        events = sorted(mine, key=lambda e: int(e.get("timeNano") or 0))
        found = Failed()
        run_dies, run_oom, run_kill, run_137, cleaning = 0, False, False, False, False
        pending = sorted(failed_starts_seen)
        for event in [*events, {"Action": "start", "timeNano": 2**62}]:
            action, at = event.get("Action"), int(event.get("timeNano") or 0)
            while pending and pending[0] <= at:
                pending.pop(0)
                cleaning = True
            if action == "start":
                found.ooms_alone += 1 if run_oom and not run_dies else 0
                found.runs_with_die += 1 if run_dies else 0
                found.oom_kills += 1 if run_oom or (run_137 and not run_kill) else 0
                run_dies, run_oom, run_kill, run_137, cleaning = 0, False, False, False, False
            elif action == "kill":
                run_kill = True
            elif action == "die" and cleaning:
                found.stale_dies += 1
            elif action == "die":
                run_dies += 1
                code = event["Actor"]["Attributes"].get("exitCode", "0")
                found.dies += 1 if code != "0" else 0
                run_137 = run_137 or code == "137"
            elif action == "oom":
                run_oom = True
        return found

    def stop(self) -> None:
        self._stop.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:
                pass
        self._thread.join(timeout=10)


@dataclass
class Failed:
    """One container's failures as the engine's events report them."""
    dies: int = 0           # die events with a non-zero exit, stale-task cleanups excepted
    ooms_alone: int = 0     # oom events whose run has no die
    runs_with_die: int = 0
    oom_kills: int = 0      # runs with an oom event, or ending 137 with no kill from the engine
    stale_dies: int = 0     # dies of a failed start's stale task, cleaned up


def processes(*needles: str, cgroups: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """Live (not zombie) processes whose command line contains a needle or whose cgroup path
    contains one of `cgroups` (a container id: its processes, `runc init` included)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            state = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[0]
            cgroup = Path(entry.path, "cgroup").read_text() if cgroups else ""
        except OSError:
            continue
        if state != "Z" and (any(n in cmdline for n in needles) or any(c in cgroup for c in cgroups)):
            found.append((int(entry.name), cmdline))
    return found


def shim_socket(engine: PrivateDockerd, cid: str) -> Path:
    """containerd 1.6: sha256 of <containerd address>/<namespace>/<id> under /run/containerd/s."""
    address = engine.root / "exec" / "containerd" / "containerd.sock"
    return SHIM_SOCKETS / hashlib.sha256(f"{address}/moby/{cid}".encode()).hexdigest()


def _alive(pid: int) -> bool:
    """Running or a zombie not yet reaped: what dockerd 20.10's kill(pid, 0) check sees as alive."""
    return Path(f"/proc/{pid}").exists()


def kill9(engine: PrivateDockerd) -> None:
    """SIGKILL dockerd itself (never its containerd or the shims), as `kill -9 $(pidof dockerd)`."""
    proc = engine.proc
    if proc is None or proc.poll() is not None:
        raise RuntimeError("dockerd is not running")
    comm = Path(f"/proc/{proc.pid}/comm").read_text().strip()
    if comm != "dockerd":  # the Popen runs unshare, which execs sh, which execs dockerd: one pid
        raise RuntimeError(f"pid {proc.pid} is {comm!r}, not dockerd")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    engine.proc = None


def start_after_kill(engine: PrivateDockerd) -> None:
    """Start dockerd again once its old managed containerd is gone, zombie included.

    The containerd dockerd starts dies with it (parent-death signal). On restart dockerd 20.10
    reads containerd.pid and, if kill(pid, 0) succeeds, waits for that containerd to answer,
    which a zombie never does: it gives up after ~15 s and exits 1. An init that reaps at once
    (systemd) leaves no zombie; this VM's init reaps within ~2 s, so wait for it.
    """
    pidfile = engine.root / "exec" / "containerd" / "containerd.pid"
    pid = int(pidfile.read_text().strip() or 0) if pidfile.exists() else 0
    if pid:
        wait_until(lambda: not _alive(pid),
                   timeout=30, interval=0.05, message=f"the killed dockerd's containerd (pid {pid}) to be reaped")
    engine.start()


def clear_stale_task(engine: PrivateDockerd, cid: str) -> list[str]:
    """Remove what a dockerd killed while creating a container's task leaves behind.

    Killed between containerd's task create and start, dockerd 20.10 + containerd 1.6 leave a
    shim (and sometimes a `runc init`) that the restarted containerd does not manage, and its
    bundle; every start of that container then fails with "task <id>: already exists" (the
    restore leaves it exited, ExitCode 255; moby/moby#36145, docker/for-linux#211 are this
    family). What an operator does: force-delete the runc container, kill that shim (by its
    `-id`), drop the bundle and the shim's socket. No-op for a container without such leftovers.
    """
    exec_root = engine.root / "exec"
    done = []
    runc = subprocess.run(["runc", "--root", str(exec_root / "runtime-runc" / "moby"), "delete", "--force", cid],
                          capture_output=True, text=True, timeout=30)
    if runc.returncode == 0:
        done.append("runc delete --force")
    stale = processes(f"-id {cid} -address {exec_root}")
    stale += [(pid, cmd) for pid, cmd in processes(cgroups=(cid,)) if cmd.startswith("runc init")]
    for pid, cmd in stale:
        os.kill(pid, signal.SIGKILL)
        done.append(f"killed {cmd.split()[0].rsplit('/', 1)[-1]} {pid}")
    wait_until(lambda: not any(_alive(pid) and _state(pid) != "Z" for pid, _ in stale),
               timeout=10, interval=0.05, message=f"{cid[:12]}: stale processes to die")
    if processes(f"-id {cid} -address {exec_root}"):
        return done  # a shim the engine manages: the container is not stale
    bundle = exec_root / "containerd" / "daemon" / "io.containerd.runtime.v2.task" / "moby" / cid
    # containerd drops the bundle once the shim it knew is gone; one it never knew stays
    if bundle.exists() and not poll(lambda: not bundle.exists(), 5 if stale else 0):
        if not any(str(bundle) in line for line in Path("/proc/self/mountinfo").read_text().splitlines()):
            shutil.rmtree(bundle, ignore_errors=True)
            done.append("removed bundle")
    socket = shim_socket(engine, cid)
    if socket.exists():
        socket.unlink(missing_ok=True)
        done.append("removed shim socket")
    return done


def _nanos(timestamp: str) -> int:
    """Docker's RFC 3339 time with nanoseconds, as Unix nanoseconds (0 for Go's zero time)."""
    if timestamp.startswith("0001-"):
        return 0
    seconds, _, fraction = timestamp.rstrip("Z").partition(".")
    whole = int(datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    return whole * 10**9 + int((fraction or "0").ljust(9, "0")[:9])


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


# -- result --------------------------------------------------------------------------------------
@dataclass
class Counts:
    name: str
    runs: int = 0
    runs_with_die: int = 0       # runs whose exit a die event reported
    engine_dies: int = 0         # die events with a non-zero exit code, any dockerd instance
    engine_ooms_alone: int = 0   # oom events whose run has no die (dockerd died in between)
    engine_failed_starts: int = 0  # failed restore starts whose state tells an exit no event did
    engine_stale_dies: int = 0     # dies of those starts' stale tasks, cleaned up: not counted again
    engine_ooms: int = 0         # runs with an oom event, or ending 137 with no kill (the event lost in the kill -9)
    engine_restarts: int = 0     # final RestartCount
    engine_exit_code: int = -1   # final State.ExitCode
    ours_exits: int = 0          # failures[Error] + [OOMKilled] + [StartFailure]
    ours_ooms: int = 0           # oom_kills
    ours_restarts: int = -1
    ours_exit_code: int | None = None
    ours_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def engine_exits(self) -> int:
        """Every failed run the engine reports: die events, lone oom events, failed starts."""
        return self.engine_dies + self.engine_ooms_alone + self.engine_failed_starts

    @property
    def silent(self) -> int:
        """Runs whose exit no die event reports: they ended while dockerd was dead."""
        return self.runs - self.runs_with_die

    @property
    def equal(self) -> bool:
        return (self.ours_exits == self.engine_exits and self.ours_ooms == self.engine_ooms
                and self.ours_restarts == self.engine_restarts and self.ours_exit_code == self.engine_exit_code)


@dataclass
class Result:
    trials_asked: int
    trials_done: int = 0
    seconds: float = 0.0
    containers: list[Counts] = field(default_factory=list)
    resync_s: list[float] = field(default_factory=list)   # dockerd start -> watcher relisted
    running_at_kill: int = 0       # container processes alive under their shims when dockerd died
    exited_while_dead: int = 0     # of those, exited before dockerd came back (odd trials)
    failed_starts: list[str] = field(default_factory=list)  # containers the restore could not restart
    stuck: list[str] = field(default_factory=list)  # containers the restore left `restarting` with no run
    kills: int = 0                 # SIGKILLs of dockerd (one per trial)
    graceful_restarts: int = 0     # restarts of dockerd to unstick a container (see Trial._unstick)
    restarts_mismatch: list[int] = field(default_factory=list)  # trials whose restarts never matched
    leftovers: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def met(self) -> bool:
        return (not self.error and self.trials_done == self.trials_asked and not self.leftovers
                and not self.restarts_mismatch
                and all(c.equal and 0 <= c.silent <= self.kills for c in self.containers))


# -- the trial -----------------------------------------------------------------------------------
class Trial:
    def __init__(self, engine: PrivateDockerd, trials: int, *, seed: int = 8, breaker: dict[str, Any] | None = BREAKER,
                 log: Callable[[str], None] = lambda line: None) -> None:
        self.engine = engine
        self.trials = trials
        self.seed = seed
        self.log = log
        self.token = f"re-dk-{uuid.uuid4().hex[:8]}"
        self.data = Path(tempfile.mkdtemp(prefix="re-dk-runs-", dir="/tmp"))
        self.names = {s.name: f"{s.name}-{self.token[6:]}" for s in SPECS}
        self.ids: dict[str, str] = {}
        self.store = StateStore()
        registry = ResilienceRegistry(breaker_settings=BreakerSettings(**(breaker or {})))
        self.watcher = DockerWatcher(self.store, registry, host="bench", base_url=engine.url,
                                     reconnect_max_backoff=1.0)
        self.ledger = EngineLedger(engine.url)
        # The ledger also takes every line the watcher reads: a SIGKILL can land between dockerd's
        # writes of one event to its two subscribers, so either connection may miss the last one.
        handle_line = self.watcher.handle_line

        def tee(line: bytes | str) -> None:
            self.ledger.add_line(line)
            handle_line(line)

        self.watcher.handle_line = tee  # type: ignore[method-assign]
        self.started_runs: dict[str, int] = {}  # runs when dockerd last (re)started
        self.failed_starts: list[tuple[str, int, int]] = []  # (container, FinishedAt ns, seen at ns)
        self.result = Result(trials)

    def runs(self, spec: Spec) -> int:
        path = self.data / spec.name
        return len(path.read_text().splitlines()) if path.exists() else 0

    def record(self, spec: Spec) -> ContainerRecord | None:
        return self.store.get(self.ids[spec.name])

    def running(self) -> list[tuple[int, str]]:
        """Container processes (each run's sh carries the token as its $0)."""
        return processes(self.token)

    def restarts_equal(self) -> bool:
        client = self.engine.client()
        for spec in SPECS:
            record = self.record(spec)
            if record is None or record.restarts != client.inspect_container(self.ids[spec.name])["RestartCount"]:
                return False
        return True

    # -- phases ------------------------------------------------------------------------------
    def run(self) -> Result:
        start = time.monotonic()
        try:
            self._setup()
            for trial in range(self.trials):
                self._trial(trial)
                self.result.trials_done += 1
            self._finish()
        except Exception as exc:
            self.result.error = f"{type(exc).__name__}: {exc}"
            self.log(f"error: {self.result.error}")
        finally:
            self._cleanup()
            self.result.seconds = time.monotonic() - start
        return self.result

    def _setup(self) -> None:
        self.ledger.start()
        self.watcher.start()
        wait_until(lambda: self.watcher.syncs >= 1, timeout=30, interval=0.05, message="the watcher's first sync")
        for spec in SPECS:
            script = f"echo run >> /data/{spec.name}; {spec.body}"
            self.ids[spec.name] = self.engine.run(
                "--name", self.names[spec.name], "--restart", "always", "-v", f"{self.data}:/data", *spec.args,
                IMAGE, "sh", "-c", script, f"{self.token}-{spec.name}")
        self.started_runs = {s.name: 0 for s in SPECS}

    def _trial(self, trial: int) -> None:
        rng = random.Random(self.seed * 1000 + trial)
        before = self.started_runs
        if not poll(lambda: all(self.runs(s) > before[s.name] for s in SPECS), 60):
            client = self.engine.client()
            for spec in SPECS:
                if self.runs(spec) <= before[spec.name]:
                    cid = self.ids[spec.name]
                    self.log(f"trial {trial}: {spec.name} ran no more: {client.inspect_container(cid)['State']}, "
                             f"processes {processes(f'-id {cid}', cgroups=(cid,))}")
            raise TimeoutError(f"trial {trial}: every container to start a run since dockerd (re)started")
        time.sleep(rng.uniform(0.0, 0.6))  # where in the storm the kill lands; correctness waits on conditions
        syncs = self.watcher.syncs
        kill9(self.engine)
        self.result.kills += 1
        alive = self.running()
        self.result.running_at_kill += len(alive)
        if trial % 2:  # let every container the dead engine left behind exit first
            wait_until(lambda: not self.running(),
                       timeout=30, interval=0.05, message=f"trial {trial}: containers left running to exit")
            self.result.exited_while_dead += len(alive)
        self._start_again(trial, syncs)
        self._unstick(trial)
        self.log(f"trial {trial}: {len(alive)} running at the kill "
                 f"({'waited for their exits' if trial % 2 else 'restarted at once'}), "
                 f"resync {self.result.resync_s[-1]:.2f} s, runs {[self.runs(s) for s in SPECS]}")

    def _start_again(self, trial: int, syncs: int) -> None:
        """Start the stopped dockerd; wait for the watcher's relist and equal restarts; repair."""
        self.started_runs = {s.name: self.runs(s) for s in SPECS}
        started = time.monotonic()
        start_after_kill(self.engine)
        wait_until(lambda: self.watcher.syncs > syncs and self.store.sources()[0].up,
                   timeout=90, interval=0.05, message=f"trial {trial}: the watcher to reconnect and relist")
        self.result.resync_s.append(time.monotonic() - started)
        if not poll(self.restarts_equal, 30):
            self.result.restarts_mismatch.append(trial)
        self._restart_what_the_restore_could_not(trial)

    def _restart_what_the_restore_could_not(self, trial: int) -> None:
        """A `--restart always` container the restore left stopped: count it, clean up, start it.

        The restore restarts every such container before the API answers, so one that is not
        running or restarting here is one whose start failed (State.Error, ExitCode 255). The
        watcher has relisted since, so it has seen that state; `docker start` is what an
        operator does next (the engine retries nothing by itself).
        """
        client = self.engine.client()
        for spec in SPECS:
            cid = self.ids[spec.name]
            state = client.inspect_container(cid)["State"]
            if state["Status"] in ("running", "restarting"):
                continue
            self.failed_starts.append((spec.name, _nanos(state["FinishedAt"]), time.time_ns()))
            done = clear_stale_task(self.engine, cid)
            note = (f"trial {trial}: {spec.name} left {state['Status']} by the restore, exit {state['ExitCode']}, "
                    f"{state['Error'][:90]!r}; {', '.join(done) or 'nothing stale'}")
            self.result.failed_starts.append(note)
            self.log(note)
            self.engine.cli("start", cid)

    def _unstick(self, trial: int) -> None:
        """A container the restore could not stop, left `restarting` with no run: unstick it.

        Killed while it created a task, dockerd leaves a shim and a `runc init` that never
        exec'd; the restore's shutdown of that "alive" task gets no exit event (SIGTERM, 10 s,
        SIGKILL, 10 s, gives up) and leaves the container `restarting` with nothing scheduled;
        `docker start` and `docker rm -f` fail alike until dockerd restarts. Every healthy
        container has run again since the restore (it starts them before its API answers), so
        one that has not within 10 s is stuck: remove its stale task and restart dockerd
        gracefully (`systemctl restart docker`), whose restore then starts it.
        """
        for attempt in range(3):
            if poll(lambda: all(self.runs(s) > self.started_runs[s.name] for s in SPECS), 10):
                return
            client = self.engine.client()
            for spec in SPECS:
                if self.runs(spec) <= self.started_runs[spec.name]:
                    cid = self.ids[spec.name]
                    state = client.inspect_container(cid)["State"]
                    done = clear_stale_task(self.engine, cid)
                    note = (f"trial {trial}: {spec.name} left {state['Status']} by the restore with no run; "
                            f"{', '.join(done) or 'nothing stale'}; dockerd restarted")
                    self.result.stuck.append(note)
                    self.log(note)
            syncs = self.watcher.syncs
            self.engine.stop()  # SIGTERM: dockerd stops its containers and its containerd
            self.result.graceful_restarts += 1
            self._start_again(trial, syncs)
        raise TimeoutError(f"trial {trial}: containers still without a run after 3 restarts of dockerd")

    def _finish(self) -> None:
        client = self.engine.client()
        for spec in SPECS:
            self.engine.stop_restarting(self.ids[spec.name])
        wait_until(lambda: all(client.inspect_container(self.ids[s.name])["State"]["Status"] == "exited" for s in SPECS),
                   timeout=120, interval=0.05, message="every container to exit once its policy is no")
        poll(self.restarts_equal, AFTER_STOP_RESTARTING)  # see AFTER_STOP_RESTARTING for why so long
        # Barrier: events arrive in order, so once both sides have the marker, both have the rest.
        marker = client.create_container(IMAGE, command=["true"], name=f"marker-{self.token}",
                                         host_config=client.create_host_config(network_mode="none"))["Id"]
        wait_until(lambda: self.ledger.of(f"marker-{self.token}", "create") and self.store.get(marker) is not None,
                   timeout=30, interval=0.05, message="the ledger and the watcher to see the marker")
        client.remove_container(marker)
        for spec in SPECS:
            state = client.inspect_container(self.ids[spec.name])
            record = self.record(spec)
            name = self.names[spec.name]
            assert record is not None
            seen_failed = tuple(seen for container, _, seen in self.failed_starts if container == spec.name)
            failed = self.ledger.failed_runs(name, seen_failed)
            # A failed start is a termination of its own when its FinishedAt is later than the last
            # die before it (the restore set it stopped at an exit no die reported, or at its own
            # start time); otherwise the state still shows the exit that die reported.
            told_by_state = sum(1 for container, finished, seen in self.failed_starts if container == spec.name
                                and finished > max((int(e["timeNano"]) for e in self.ledger.of(name, "die")
                                                    if int(e["timeNano"]) < seen), default=0))
            counts = Counts(spec.name, runs=self.runs(spec), runs_with_die=failed.runs_with_die,
                            engine_dies=failed.dies, engine_ooms_alone=failed.ooms_alone,
                            engine_failed_starts=told_by_state, engine_stale_dies=failed.stale_dies,
                            engine_ooms=failed.oom_kills,
                            engine_restarts=state["RestartCount"], engine_exit_code=state["State"]["ExitCode"],
                            ours_exits=sum(record.failures.get(r, 0) for r in EXIT_REASONS),
                            ours_ooms=record.oom_kills, ours_restarts=record.restarts,
                            ours_exit_code=record.last_exit_code,
                            ours_by_reason={r.value: n for r, n in record.failures.items()})
            self.result.containers.append(counts)
            self.log(f"{spec.name}: {counts}")

    def _cleanup(self) -> None:
        self.watcher.stop()
        self.ledger.stop()
        engine = self.engine
        ids = tuple(self.ids.values())
        try:
            if engine.proc is None:  # killed and not back (an error mid-trial): start it to clean up
                start_after_kill(engine)
            for cid in ids:
                removed = engine.cli("rm", "-f", cid, check=False).returncode == 0
                for action in clear_stale_task(engine, cid):  # a stale task outlives its container
                    self.log(f"cleanup {cid[:12]}: {action}")
                if not removed:  # "tried to kill container, but did not receive an exit event"
                    engine.cli("rm", "-f", cid, check=False)
            engine.stop()  # SIGTERM: dockerd stops its containerd; the removed containers' shims are gone
        except Exception as exc:
            self.result.leftovers.append(f"cleanup failed: {exc!r}")
        finally:
            if not poll(lambda: not processes(str(engine.root), self.token, cgroups=ids), 30):
                names = {cid: name for name, cid in self.ids.items()}
                for pid, cmd in processes(str(engine.root), self.token, cgroups=ids):
                    owner = next((n for cid, n in names.items() if cid in cmd), "?")
                    self.result.leftovers.append(f"process {pid} ({owner}): {cmd[:200]}")
            for cid in ids:
                if shim_socket(engine, cid).exists():
                    self.result.leftovers.append(f"shim socket {shim_socket(engine, cid)}")
            shutil.rmtree(self.data, ignore_errors=True)


def host_mounts(root: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line]


def run_trials(trials: int, *, seed: int = 8, log: Callable[[str], None] = lambda line: None) -> Result:
    """The whole trial on a dockerd of its own, closed afterwards; leftovers are in the result.

    vfs storage: after a kill -9 the old containers' shims keep their mount namespace (dockerd runs
    in one of its own), where overlay2 would hold their mounts over the restarted engine's."""
    engine = PrivateDockerd(storage="vfs")
    try:
        engine.start()
        engine.build_testbox()
        result = Trial(engine, trials, seed=seed, log=log).run()
        if result.error and engine.log.exists():  # keep dockerd's side of the story
            kept = Path(tempfile.mkstemp(prefix="dockerd-kill-", suffix=".log", dir="/tmp")[1])
            shutil.copyfile(engine.log, kept)
            result.error += f" (dockerd log: {kept})"
    finally:
        root = engine.root
        engine.close()
    result.leftovers += [f"mount {line}" for line in host_mounts(root)]
    result.leftovers += [f"process {pid}: {cmd[:160]}" for pid, cmd in processes(str(root))]
    return result


def rows(trials: int = 20, seed: int = 8, log: Callable[[str], None] = lambda line: None) -> list[Row]:
    watcher_log = logging.getLogger("exporter.sources.docker.watcher")
    level = watcher_log.level
    watcher_log.setLevel(logging.ERROR)  # "docker source down" once per kill is the point, not news
    try:
        r = run_trials(trials, seed=seed, log=log)
    finally:
        watcher_log.setLevel(level)
    out = [Row(f"dockerd kill -9 + restart in a crash storm of {len(SPECS)} containers: trials done", r.trials_done,
               r.trials_asked, "trials", "trials asked", "all", r.trials_done == r.trials_asked and not r.error)]
    for c in r.containers:
        out += [
            Row(f"{c.name}: failures counted by us vs reported by the engine", c.ours_exits, c.engine_exits, "exits",
                f"engine: {c.engine_dies} die + {c.engine_ooms_alone} lone oom + {c.engine_failed_starts} failed start",
                "equal", c.ours_exits == c.engine_exits),
            Row(f"{c.name}: restarts, ours vs RestartCount", c.ours_restarts, c.engine_restarts, "restarts",
                "engine RestartCount", "equal", c.ours_restarts == c.engine_restarts),
            Row(f"{c.name}: OOM kills, ours vs the engine's", c.ours_ooms, c.engine_ooms, "kills",
                "runs with an oom event or a 137 exit the engine did not kill",
                "equal", c.ours_ooms == c.engine_ooms),
            Row(f"{c.name}: last exit code, ours vs State.ExitCode",
                c.ours_exit_code if c.ours_exit_code is not None else -1, c.engine_exit_code, "",
                "engine State.ExitCode", "equal", c.ours_exit_code == c.engine_exit_code),
            Row(f"{c.name}: silent exits of its {c.runs} runs (no die: ended while dockerd was dead)", c.silent,
                None, "exits", "", f"0..{r.kills} (one per kill)", 0 <= c.silent <= r.kills),
        ]
    out += [
        Row("container processes running when dockerd died", r.running_at_kill, None, "", "", "(informative)"),
        Row("  of which exited while dockerd was dead (odd trials)", r.exited_while_dead, None, "", "",
            "(informative)"),
        Row("engine: restore failed a start (stale task; cleaned, docker start)", len(r.failed_starts), None,
            "containers", "", "(informative)"),
        Row("engine: restore left a container stuck (stale task; cleaned, dockerd restarted)", len(r.stuck), None,
            "containers", "", "(informative)"),
        Row("trials whose restarts never equalled RestartCount after the relist", len(r.restarts_mismatch), None,
            "trials", "", "0", not r.restarts_mismatch),
        Row("dockerd start -> watcher relisted, median", statistics.median(r.resync_s) if r.resync_s else -1, None,
            "s", "", "(informative)"),
        Row("dockerd start -> watcher relisted, max", max(r.resync_s, default=-1), None, "s", "", "(informative)"),
        Row("leftover processes, mounts, shim sockets after cleanup", len(r.leftovers), None, "", "", "0",
            not r.leftovers),
        Row("wall time", r.seconds, None, "s", "", "(informative)"),
    ]
    if r.error or r.leftovers:
        print("\n".join(filter(None, [r.error, *r.leftovers])))
    return out


if __name__ == "__main__":
    from bench.common import format_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=8, help="seeds where in the storm each kill lands")
    parser.add_argument("-v", "--verbose", action="store_true", help="print one line per trial")
    args = parser.parse_args()
    table = rows(args.trials, args.seed, log=print if args.verbose else lambda line: None)
    print(format_table(table))
    met = all(row.met is not False for row in table)
    print(f"goal (every counter equal to the engine's, nothing left behind): {'met' if met else 'NOT met'}")
    raise SystemExit(0 if met else 1)
