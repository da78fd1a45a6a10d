"""Reliability soak: container churn without leaks, an event burst without loss, bounded fuzzing.

- churn: 10,000 create/start/die/destroy cycles through `DockerWatcher.handle_line` (recorded
  event shapes, each new container adopted by inspect through `from_inspect`) beside 1,000
  long-lived containers, scraping every 100 cycles; the store size, the rendered series and the
  process memory must come back to where they were before the churn.
- burst: 100k events through `handle_line` with no event lost (events_total{result="ok"}) and a
  tracemalloc peak that does not grow with the number of events (10k vs 100k).
- fuzz: hypothesis against `parse_event`/`handle_line`, `exporter.config.load` (random YAML
  files and flag texts) and `/api/events?limit=&container=&reason=` of a running Exporter on
  loopback, for a bounded time; a crash is any exception but MalformedEvent / ConfigError, and
  any HTTP answer but 200 / 400.

`python -m bench.soak [--seconds 60]` (fuzz time in total, up to 600).
"""
from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import docker
import requests
import yaml
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st

from bench.common import Row
from bench.docker_events import BASE, N_CONTAINERS, container_id, event_lines, inspect
from exporter.app import Exporter
from exporter.config import ConfigError, leaves, load
from exporter.metrics import ContainerCollector, Exposition
from exporter.resilience import ResilienceRegistry
from exporter.sources.docker.events import CONTAINER_ACTIONS, MalformedEvent, parse_event
from exporter.sources.docker.watcher import DockerWatcher
from exporter.state import ContainerRecord, Phase as RecordPhase, Reason, Source, StateStore

CHURN_OFFSET = 10**9  # ids of churned containers, apart from the 1,000 long-lived ones


class MemoryEngine:
    """The one engine call the watcher makes on the event path (inspect a new container)."""

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}

    def inspect_container(self, cid: str) -> dict[str, Any]:
        try:
            return self.containers[cid]
        except KeyError:
            raise docker.errors.NotFound(f"no such container: {cid}") from None


def tracked(n: int = N_CONTAINERS) -> tuple[StateStore, Exposition, DockerWatcher, MemoryEngine]:
    """A store with `n` running containers, its exposition, and a watcher fed by hand."""
    store = StateStore()
    exposition = Exposition([ContainerCollector(store)])
    engine = MemoryEngine()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="soak", base_url="unix:///nonexistent",
                            max_containers=n + 100)
    watcher._client = engine  # what a connected session sets; no engine is dialled here
    for i in range(n):
        engine.containers[container_id(i)] = inspect(i)
        store.put(watcher.lifecycle.from_inspect(inspect(i), None))
    exposition.render()
    return store, exposition, watcher, engine


def _line(cid: str, action: str, nano: int, **attrs: str) -> bytes:
    attributes = {"image": "registry.local/churn:1", "name": f"churn-{cid[-6:]}", **attrs}
    return json.dumps({"status": action, "id": cid, "from": attributes["image"], "Type": "container",
                       "Action": action, "Actor": {"ID": cid, "Attributes": attributes}, "scope": "local",
                       "time": nano // 1_000_000_000, "timeNano": nano}).encode()


def series(body: bytes) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))


def rss_mib() -> float:
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@dataclass(frozen=True)
class Churn:
    cycles: int
    records: tuple[int, int]          # (before, after)
    series: tuple[int, int]
    lives: tuple[int, int]            # the lifecycle's per-container memory
    rss_mib: tuple[float, float]
    blocks: tuple[int, int]           # sys.getallocatedblocks(): Python objects still alive
    ok_events: int
    seconds: float

    @property
    def leak_free(self) -> bool:
        return (self.records[0] == self.records[1] and self.series[0] == self.series[1]
                and self.lives[0] == self.lives[1] and self.rss_mib[1] - self.rss_mib[0] <= 2.0
                and self.blocks[1] - self.blocks[0] <= 2_000 and self.ok_events == 4 * self.cycles)


def churn(cycles: int = 10_000, *, scrape_every: int = 100, deadline_s: float = 300.0) -> Churn:
    """`cycles` containers created, started, exited and destroyed, one after the other."""
    store, exposition, watcher, engine = tracked()
    nano = BASE * 1_000_000_000

    def run(first: int, count: int) -> None:
        nonlocal nano
        stop_at = time.monotonic() + deadline_s
        for k in range(first, first + count):
            cid = container_id(CHURN_OFFSET + k)
            engine.containers[cid] = {**inspect(CHURN_OFFSET + k), "Id": cid, "Name": f"/churn-{k}"}
            for action, attrs in (("create", {}), ("start", {}), ("die", {"exitCode": "0"}), ("destroy", {})):
                nano += 1_000_000
                watcher.handle_line(_line(cid, action, nano, **attrs))
            del engine.containers[cid]  # the engine forgets it too
            if k % scrape_every == 0:
                exposition.render()
            if time.monotonic() > stop_at:
                raise TimeoutError(f"churn: {k - first} of {count} cycles in {deadline_s}s")

    run(0, min(1_000, cycles))  # warm-up: allocator arenas, caches, interned strings
    gc.collect()
    before = (len(store), series(exposition.render()), len(watcher.lifecycle.lives), rss_mib(),
              sys.getallocatedblocks(), store.sources()[0].events.get("ok", 0))
    start = time.perf_counter()
    run(min(1_000, cycles), cycles)
    seconds = time.perf_counter() - start
    gc.collect()
    after = (len(store), series(exposition.render()), len(watcher.lifecycle.lives), rss_mib(),
             sys.getallocatedblocks(), store.sources()[0].events.get("ok", 0))
    return Churn(cycles, (before[0], after[0]), (before[1], after[1]), (before[2], after[2]),
                 (before[3], after[3]), (before[4], after[4]), after[5] - before[5], seconds)


@dataclass(frozen=True)
class Burst:
    events: int
    ok: int
    other: dict[str, int]
    peak_mib: float
    seconds: float


def burst(n_events: int = 100_000) -> Burst:
    """`n_events` recorded-shape events over 1,000 containers, traced by tracemalloc."""
    lines = event_lines(n_events)
    store, exposition, watcher, _ = tracked()
    gc.collect()
    tracemalloc.start()
    try:
        start = time.perf_counter()
        for line in lines:
            watcher.handle_line(line)
        exposition.render()
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    events = dict(store.sources()[0].events)
    ok = events.pop("ok", 0)
    return Burst(n_events, ok, events, peak / 2**20, seconds)


# -- fuzzing ---------------------------------------------------------------------------------
@dataclass
class Fuzzed:
    target: str
    examples: int = 0
    crashes: list[str] = field(default_factory=list)


def fuzz_for(target: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None], seconds: float,
             *, batch: int = 200, max_batches: int = 100_000) -> Fuzzed:
    """Run `check` on generated values for `seconds`; every exception it lets out is a crash."""
    result = Fuzzed(target)

    @settings(max_examples=batch, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(strategy)
    def one(value: Any) -> None:
        if time.monotonic() >= stop_at:
            return  # out of time: finish the batch without running the target
        result.examples += 1
        check(value)

    stop_at = time.monotonic() + seconds
    for _ in range(max_batches):
        if time.monotonic() >= stop_at:
            break
        try:
            one()
        except Exception as exc:  # hypothesis re-raises the shrunk failure
            result.crashes.append(f"{type(exc).__name__}: {exc}"[:300])
    return result


_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _TEXT)
_JSON = st.recursive(_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(_TEXT, inner, max_size=4)), max_leaves=12)
_IDS = st.sampled_from([container_id(i) for i in range(5)] + [container_id(CHURN_OFFSET), ""])
_ACTIONS = st.sampled_from([*CONTAINER_ACTIONS, "health_status: healthy", "health_status: unhealthy",
                            "exec_start: sh -c true", "disconnect", "health_status:"])
_ATTRS = st.dictionaries(st.one_of(st.sampled_from(["exitCode", "signal", "name", "image", "container"]), _TEXT),
                         st.one_of(_TEXT, st.integers().map(str), _JSON), max_size=5)
_EVENTS = st.fixed_dictionaries(
    {"Type": st.one_of(st.sampled_from(["container", "network", "image"]), _JSON),
     "Action": st.one_of(_ACTIONS, _JSON),
     "Actor": st.one_of(st.fixed_dictionaries({}, optional={"ID": st.one_of(_IDS, _JSON), "Attributes": st.one_of(
         _ATTRS, _JSON)}), _JSON)},
    optional={"time": st.one_of(st.integers(min_value=-2**70, max_value=2**70), _JSON),
              "timeNano": st.one_of(st.integers(min_value=-2**70, max_value=2**70), _JSON)})


def _event_bytes(event: dict[str, Any], cut: int | None) -> bytes:
    text = json.dumps(event).encode()
    return text if cut is None else text[:cut]


def fuzz_events(seconds: float) -> list[Fuzzed]:
    def check_parse(raw: Any) -> None:
        try:
            parse_event(raw)
        except MalformedEvent:
            pass

    _, _, watcher, engine = tracked(5)
    engine.containers[container_id(CHURN_OFFSET)] = {**inspect(7), "Id": container_id(CHURN_OFFSET)}
    lines = st.one_of(st.binary(max_size=200), st.builds(_event_bytes, _EVENTS, st.one_of(
        st.none(), st.integers(0, 300))))
    return [fuzz_for("parse_event", st.one_of(_EVENTS, _JSON), check_parse, seconds / 2),
            fuzz_for("DockerWatcher.handle_line", lines, watcher.handle_line, seconds / 2)]


def _nest(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in pairs:
        node = tree
        *parents, last = path.split(".")
        for part in parents:
            child = node.get(part)
            node = node[part] = child if isinstance(child, dict) else {}
        node[last] = value
    return tree


_PATHS = [path for path, _, _ in leaves()]
_CONFIG_VALUES = st.one_of(_JSON, st.sampled_from(["5s", "1m", "0s", "-1s", "127.0.0.1:0", ":9", "/m", "true",
                                                   "auto", "debug", "json", "*/5 * * * *", "1e309", "0x10"]))
_CONFIGS = st.one_of(
    st.lists(st.tuples(st.one_of(st.sampled_from(_PATHS), _TEXT.filter(bool)), _CONFIG_VALUES), max_size=6).map(_nest),
    st.dictionaries(_TEXT, _JSON, max_size=4))


def fuzz_config(seconds: float) -> list[Fuzzed]:
    workdir = Path(tempfile.mkdtemp(prefix="re-soak-config-"))
    config_file = workdir / "config.yaml"

    def check_file(data: Any) -> None:
        try:
            text = data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True)
        except yaml.YAMLError:
            reject()
        config_file.write_text(text, encoding="utf-8", errors="surrogateescape")
        try:
            load(file=config_file)
        except ConfigError:
            pass

    def check_flags(flags: dict[str, str]) -> None:
        try:
            load(flags=flags)
        except ConfigError:
            pass

    try:
        return [fuzz_for("config.load(file=random YAML)", st.one_of(_CONFIGS, _TEXT), check_file, seconds / 2),
                fuzz_for("config.load(flags=random text)", st.dictionaries(st.sampled_from(_PATHS), _TEXT, max_size=4),
                         check_flags, seconds / 2)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def fuzz_web(seconds: float) -> Fuzzed:
    app = Exporter(load(flags={"web.listen_address": "127.0.0.1:0", "docker.enabled": "false"}),
                   registry=ResilienceRegistry())
    for i in range(50):  # transitions to filter
        app.store.put(ContainerRecord(key=f"id{i}", source=Source.DOCKER, container=f"c{i % 7}", host="h",
                                      image="img:1", phase=RecordPhase.TERMINATED, reason=Reason.ERROR))
    app.start()
    # A new connection per request: on a kept-alive one every answer waits ~40 ms (Nagle's
    # algorithm meets the client's delayed ACK), which would cut the examples tenfold.
    try:
        host, port = app.address
        url = f"http://{host}:{port}/api/events"
        reasons = st.one_of(_TEXT, st.sampled_from([r.value for r in Reason]))

        def check(query: tuple[str, dict[str, str]]) -> None:
            raw, params = query
            response = requests.get(f"{url}?{raw}" if raw else url, params=params, timeout=10)
            if response.status_code == 400:
                return
            if response.status_code != 200 or not isinstance(response.json(), list):
                raise AssertionError(f"{response.status_code} {response.text[:200]!r}")

        queries = st.tuples(
            st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e, blacklist_characters="#"),
                    max_size=40),
            st.fixed_dictionaries({}, optional={"limit": st.one_of(st.integers().map(str), _TEXT),
                                                "container": _TEXT, "reason": reasons}))
        return fuzz_for("GET /api/events?limit=&container=&reason=", queries, check, seconds)
    finally:
        app.stop()


def fuzz(seconds: float = 60.0) -> list[Fuzzed]:
    """All fuzz targets, `seconds` in total (events 40 %, config 30 %, web 30 %)."""
    return [*fuzz_events(seconds * 0.4), *fuzz_config(seconds * 0.3), fuzz_web(seconds * 0.3)]


def rows(fuzz_seconds: float = 60.0) -> list[Row]:
    c = churn()
    b10, b = burst(10_000), burst(100_000)
    fuzzed = fuzz(fuzz_seconds)
    out = [
        Row(f"churn {c.cycles:,} create/start/die/destroy cycles: records before/after", c.records[1], c.records[0],
            "records", "before churn", "== before", c.records[0] == c.records[1]),
        Row("churn: rendered series after / before", c.series[1], c.series[0], "series", "before churn",
            "== before", c.series[0] == c.series[1]),
        Row("churn: RSS after / before", c.rss_mib[1], c.rss_mib[0], "MiB", "before churn", "<= +2 MiB",
            c.rss_mib[1] - c.rss_mib[0] <= 2.0),
        Row(f"churn: live Python blocks, growth over {c.blocks[0]:,}", c.blocks[1] - c.blocks[0], None, "blocks",
            "", "<= +2,000", c.blocks[1] - c.blocks[0] <= 2_000),
        Row("churn rate (4 events + 1 inspect per cycle)", c.cycles / c.seconds, None, "cycles/s", "",
            "(informative)"),
        Row(f"burst {b.events:,} events: counted ok", b.ok, b.events, "events", "events sent", "== sent, none other",
            b.ok == b.events and not any(b.other.values())),
        Row(f"burst {b.events:,} events: tracemalloc peak", b.peak_mib, b10.peak_mib, "MiB",
            f"same with {b10.events:,} events", "<= 1.5x (no growth with events)", b.peak_mib <= 1.5 * b10.peak_mib),
    ]
    for f in fuzzed:
        out.append(Row(f"fuzz {f.target}: crashes in {f.examples:,} examples", len(f.crashes), None, "crashes", "",
                       "0", not f.crashes))
    for f in fuzzed:
        for crash in f.crashes[:3]:
            print(f"crash in {f.target}: {crash}", file=sys.stderr)
    return out


if __name__ == "__main__":
    from bench.common import format_table

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="fuzz time in total (default 60, max 600)")
    args = parser.parse_args()
    print(format_table(rows(min(600.0, max(1.0, args.seconds)))))
