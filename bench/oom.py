"""OOM kills on a real dockerd, each counted exactly once (issue 14): `python -m bench.oom`.

A private dockerd (vfs, no bridge), a DockerWatcher feeding a StateStore as `serve` does, and an
independent ledger of the engine's events on its own connection. Every workload below is
OOM-killed by construction (an 8 MiB limit and a process that grows without bound), so the truth
per container is known without asking the exporter: one OOM kill per run that ended in a `die`
(each such exit is 137 and the engine sent no `kill`), or exactly one for a child process
killed while the main process lives on. Shapes:

- `no`: restart policy no, one run;            - `rm`: `--rm`, the container is gone after;
- `on-failure`: on-failure:3, four runs;        - `always`: restarts until its policy is set to no;
- `fast`: `dd bs=64M`, killed within ~100 ms of its start, on-failure:2;
- `child`: a child is OOM-killed, the container stays Running (one OOM kill, no exit);
- `burst`: ten started at once (the engine then loses some `oom` events: inferred);
- `before`: OOM-killed before the exporter started (counted from the engine's State.OOMKilled).

Checked per container: oom_kills == truth; each exit counted once (failures by exit reason ==
dies), every OOM-killed exit classified OOMKilled; the child Running with no failure. The
ledger also reports how often the engine sent `die` before `oom`, and runs with no `oom` at all.
"""
from __future__ import annotations

import argparse
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from bench.common import Row
from bench.dockerd_kill import EngineLedger
from exporter.resilience import ResilienceRegistry
from exporter.sources.docker import DockerWatcher
from exporter.sources.docker.cgroup import OomKillCounter
from exporter.sources.docker.watcher import SETTLE_EVERY
from exporter.state import ContainerRecord, Phase, Reason, StateStore
from tests.harness import poll, wait_until
from tests.integration.dockerd import IMAGE, PrivateDockerd

LIMIT = ("-m", "8m", "--memory-swap", "8m")
HOG = ("sh", "-c", 'x=a; while true; do x="$x$x"; done')
FAST = ("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
CHILD = ("sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1; sleep 3600")
EXITS = (Reason.ERROR, Reason.OOM_KILLED, Reason.START_FAILURE, Reason.COMPLETED)


@dataclass(frozen=True)
class Shape:
    name: str
    args: tuple[str, ...]
    command: tuple[str, ...]
    child: bool = False   # the main process lives on: one OOM kill, no exit
    until_runs: int = 0   # restart always: set the policy to no after this many runs


SHAPES = {
    "no": Shape("no", (), HOG),
    "rm": Shape("rm", ("--rm",), HOG),
    "on-failure": Shape("on-failure", ("--restart", "on-failure:3"), HOG),
    "always": Shape("always", ("--restart", "always"), HOG, until_runs=4),
    "fast": Shape("fast", ("--restart", "on-failure:2"), FAST),
    "child": Shape("child", (), CHILD, child=True),
}


@dataclass
class Outcome:
    name: str
    shape: str
    truth: int           # OOM kills that happened
    dies: int
    oom_events: int
    die_before_oom: int  # runs whose `die` the engine sent before its `oom`
    oom_kills: int       # ours
    exits: int           # ours: failures by exit reason (Error, OOMKilled, StartFailure)
    oom_exits: int       # ours: exits classified OOMKilled
    running: bool        # ours: a child's OOM left it Running

    @property
    def ok(self) -> bool:
        if self.oom_kills != self.truth:
            return False
        if self.shape == "child":
            return self.running and self.exits == 0
        return self.exits == self.dies and self.oom_exits == self.dies


class Trial:
    """One private engine, the watcher, the ledger, and the containers' last records."""

    def __init__(self, engine: PrivateDockerd) -> None:
        self.engine = engine
        self.ledger = EngineLedger(engine.url)
        self.store = StateStore()
        self.watcher = DockerWatcher(self.store, ResilienceRegistry(), host="bench", base_url=engine.url,
                                     reconnect_max_backoff=1.0)
        self.last: dict[str, ContainerRecord] = {}  # by name, kept after the container is removed
        self._lock = threading.Lock()
        self.store.subscribe(self._seen)
        self.containers: list[tuple[str, str]] = []  # (name, shape)

    def _seen(self, key: str, record: ContainerRecord | None) -> None:
        if record is not None:
            with self._lock:
                self.last[record.container] = record

    def start_watching(self) -> None:
        self.ledger.start()
        self.watcher.start()
        wait_until(self.store.ready, timeout=60, interval=0.05, message="the docker source to sync")

    def close(self) -> None:
        self.watcher.stop()
        self.ledger.stop()

    # -- workloads ---------------------------------------------------------------------------
    def launch(self, shape: Shape, token: str) -> str:
        name = f"oom-{shape.name}-{token}"
        self.containers.append((name, shape.name))
        self.engine.run("--name", name, *LIMIT, *shape.args, IMAGE, *shape.command)
        return name

    def settle(self, name: str, shape: Shape, timeout: float = 120) -> None:
        """Wait until the workload has done all its OOM kills (and its policy stopped restarting)."""
        if shape.child:  # the kernel's count is the truth; the engine may never send its `oom`
            cid = self.engine.inspect(name)["Id"]
            wait_until(lambda: self.ledger.of(name, "oom") or kernel_oom_kills(cid),
                       timeout=timeout, interval=0.05, message=f"{name}: the child's OOM kill")
            return
        if shape.until_runs:
            wait_until(lambda: len(self.ledger.of(name, "die")) >= shape.until_runs,
                       timeout=timeout, interval=0.05, message=f"{name}: {shape.until_runs} dies")
            self.engine.stop_restarting(name)
        if "--rm" in shape.args:
            wait_until(lambda: self.ledger.of(name, "destroy"),
                       timeout=timeout, interval=0.05, message=f"{name}: removed")
            return
        wait_until(lambda: self._exited(name), timeout=timeout, interval=0.05, message=f"{name}: exited for good")

    def _exited(self, name: str) -> bool:
        state = self.engine.inspect(name)["State"]
        return state["Status"] == "exited"

    def outcome(self, name: str, shape: str) -> Outcome:
        dies = self.ledger.of(name, "die")
        ooms = self.ledger.of(name, "oom")
        kills = self.ledger.of(name, "kill")
        assert not kills or shape == "child", f"{name}: the engine sent a kill: {kills}"
        assert all(d["Actor"]["Attributes"].get("exitCode") == "137" for d in dies), f"{name}: {dies}"
        record = self.last.get(name)
        failures = record.failures if record else {}
        return Outcome(
            # a `before` container ran once, before the ledger attached: one run, one OOM kill
            name=name, shape=shape, truth=1 if shape in ("child", "before") else len(dies),
            dies=1 if shape == "before" else len(dies),
            oom_events=len(ooms), die_before_oom=_die_before_oom(dies, ooms, self.ledger.of(name, "start")),
            oom_kills=record.oom_kills if record else 0,
            exits=sum(failures.get(r, 0) for r in EXITS if r.is_failure),
            oom_exits=failures.get(Reason.OOM_KILLED, 0),
            running=record is not None and record.phase is Phase.RUNNING and record.reason is Reason.RUNNING)

    def wait_applied(self, timeout: float = 60) -> None:
        """Once the watcher and the ledger show a marker container, both have every earlier event
        (each reads the engine's stream in order; the ledger is the truth the outcome counts)."""
        name = f"marker-{uuid.uuid4().hex[:8]}"
        self.engine.cli("create", "--name", name, IMAGE, "true")
        wait_until(lambda: name in self.last and self.ledger.of(name, "create"),
                   timeout=timeout, interval=0.05, message="the marker container in the store and the ledger")
        self.engine.cli("rm", "-f", name)
        # A kill only the kernel counted is read on the watcher's settle tick: give it three.
        children = [n for n, shape in self.containers if shape == "child"]
        poll(lambda: all(self.last.get(n) and self.last[n].oom_kills for n in children), 3 * SETTLE_EVERY)


def _die_before_oom(dies: list[dict[str, Any]], ooms: list[dict[str, Any]], starts: list[dict[str, Any]]) -> int:
    """Runs whose `die` the engine sent before their `oom`: the last start or die before the oom is a die."""
    marks = sorted([(int(e["timeNano"]), "die") for e in dies] + [(int(e["timeNano"]), "start") for e in starts])
    count = 0
    for oom in ooms:
        t = int(oom["timeNano"])
        before = [kind for stamp, kind in marks if stamp < t]
        count += 1 if before and before[-1] == "die" else 0
    return count


_KERNEL = OomKillCounter("/sys/fs/cgroup")


def kernel_oom_kills(cid: str) -> int:
    """The container cgroup's own count of OOM kills (the kernel's, not the engine's)."""
    found = _KERNEL.read(cid)
    return found[0] if found else 0


def run(counts: dict[str, int], *, bursts: int = 2, before: int = 10, workers: int = 4,
        log: Callable[[str], None] = print) -> list[Outcome]:
    """Run `counts[shape]` containers of each shape, `bursts` bursts of 10 and `before` early kills."""
    engine = PrivateDockerd()
    engine.start()
    trial = Trial(engine)
    try:
        engine.build_testbox()
        early = [trial.launch(SHAPES["no"], f"before{i}") for i in range(before)]
        for name in early:  # OOM-killed before the exporter starts: only the engine's state tells
            wait_until(lambda: trial._exited(name), timeout=120, interval=0.05, message=f"{name}: exited")
        trial.containers = [(n, "before") for n in early]
        trial.start_watching()
        token = uuid.uuid4().hex[:6]
        jobs = [(SHAPES[s], f"{token}{i}") for s, n in counts.items() for i in range(n)]

        def one(job: tuple[Shape, str]) -> None:
            shape, tag = job
            trial.settle(trial.launch(shape, tag), shape)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, jobs))
        for b in range(bursts):
            names = []
            with ThreadPoolExecutor(10) as pool:
                names = list(pool.map(lambda i: trial.launch(SHAPES["no"], f"burst{b}x{i}"), range(10)))
            trial.containers[-10:] = [(n, "burst") for n in names]
            for name in names:
                trial.settle(name, SHAPES["no"])
        trial.wait_applied()
        outcomes = [trial.outcome(name, shape) for name, shape in trial.containers]
        for o in outcomes:
            if not o.ok:
                log(f"MISCOUNT {o}")
        return outcomes
    finally:
        trial.close()
        engine.close()


def summary(outcomes: list[Outcome]) -> str:
    by_shape: dict[str, list[Outcome]] = {}
    for o in outcomes:
        by_shape.setdefault(o.shape, []).append(o)
    lines = [f"{'shape':<11} {'containers':>10} {'OOM kills':>9} {'ours':>6} {'exits':>6} {'no oom event':>12} "
             f"{'die first':>9} {'ok':>5}"]
    for shape, items in by_shape.items():
        lines.append(f"{shape:<11} {len(items):>10} {sum(o.truth for o in items):>9} "
                     f"{sum(o.oom_kills for o in items):>6} {sum(o.exits for o in items):>6} "
                     f"{sum(max(o.dies - o.oom_events, 0) for o in items):>12} "
                     f"{sum(o.die_before_oom for o in items):>9} {sum(o.ok for o in items):>2}/{len(items)}")
    total = sum(o.truth for o in outcomes)
    lines.append(f"total: {total} OOM kills, {sum(o.oom_kills for o in outcomes)} counted, "
                 f"{sum(not o.ok for o in outcomes)} containers miscounted")
    return "\n".join(lines)


DEFAULT = {"no": 10, "rm": 10, "on-failure": 5, "always": 3, "fast": 5, "child": 10}


def rows() -> list[Row]:
    outcomes = run(DEFAULT)
    print(summary(outcomes))
    total = sum(o.truth for o in outcomes)
    counted_once = sum(o.truth for o in outcomes if o.ok)
    return [Row("OOM kills counted exactly once (real dockerd)", counted_once, total, "kills",
                peer_name="OOM kills", goal=">= 100, all", met=total >= 100 and counted_once == total)]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.oom", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1, help="multiply the default container counts")
    args = parser.parse_args()
    started = time.monotonic()
    outcomes = run({k: v * args.scale for k, v in DEFAULT.items()}, bursts=2 * args.scale)
    print(summary(outcomes))
    print(f"took {time.monotonic() - started:.0f} s")
    return 0 if all(o.ok for o in outcomes) and sum(o.truth for o in outcomes) >= 100 else 1


if __name__ == "__main__":
    raise SystemExit(main())
