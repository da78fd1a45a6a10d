"""Reliability soak: container churn without leaks, an event burst without loss, bounded fuzzing.

- churn: 10,000 create/start/die/destroy cycles through `DockerWatcher.handle_line` (recorded
  event shapes, each new container adopted by inspect through `from_inspect`) beside 1,000
  long-lived containers, scraping every 100 cycles; the store size, the rendered series and the
  process memory must come back to where they were before the churn.
- burst: 100k events through `handle_line` with no event lost (events_total{result="ok"}) and a
  tracemalloc peak that does not grow with the number of events (10k vs 100k).
- fuzz: hypothesis for a bounded time against
  - Docker events: `parse_event`/`handle_line`; a crash is any exception but MalformedEvent;
  - config: `exporter.config.load` (random YAML files and flag texts); any exception but ConfigError;
  - `/api/events?limit=&container=&reason=` of a running Exporter: any answer but 200 (JSON list) / 400;
  - Kubernetes pods: `PodMapper.records` on random JSON; `KubernetesWatcher.apply` on kubelet-shaped
    fixture pods mutated (keys dropped, wrong types, nulls, huge/negative numbers, unicode, several
    states at once, parts of other pods grafted) against a reference watcher that never saw the
    mutant; watch streams of mutated events cut into random chunks through the watcher's own read
    loop (`_watch` with an in-memory response). A crash: any exception but TypeError/ValueError/
    AttributeError from the mapping (the watcher counts those malformed) or WatchExpired/ApiException
    after an ERROR event; a record holding a wrong type; a scrape or status document that fails to
    render; a line not counted exactly once; a change to another pod's records; a rejected pod that
    leaves a trace (the next good state maps differently from the reference);
  - every HTTP route (/metrics, /healthz, /readyz, /api/state, /api/events, /) with raw requests:
    random and odd paths, repeated/unicode/percent-garbage/huge query parameters, Accept,
    Accept-Encoding and other headers, HEAD, without and with basic auth; a crash is a 5xx (but
    /readyz's 503), a dropped connection, a non-JSON body where JSON is promised, a 4xx without a
    message, 404 for a route or 200 for an unknown path, a /metrics body not in the negotiated
    format or encoding.

`python -m bench.soak [--seconds 60]`: fuzz time in total (up to 600), spread over all targets
(Docker events 20 %, config 15 %, /api/events 10 %, Kubernetes pods 35 %, HTTP routes 20 %).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import gc
import gzip
import http.client
import io
import json
import shutil
import socket
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote, unquote, urlsplit

import docker
import requests
import yaml
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis import strategies as st
from kubernetes.client import ApiException

from bench.common import Row
from bench.docker_events import BASE, N_CONTAINERS, container_id, event_lines, inspect
from exporter.app import Exporter
from exporter.config import ConfigError, leaves, load
from exporter.metrics import ContainerCollector, Exposition
from exporter.metrics.exposition import render_collectors
from exporter.resilience import ResilienceRegistry
from exporter.sources.docker.events import CONTAINER_ACTIONS, MalformedEvent, parse_event
from exporter.sources.docker.watcher import DockerWatcher
from exporter.sources.kubernetes.watcher import KubernetesWatcher, Scope, WatchExpired
from exporter.sources.stream import event_lines as stream_lines
from exporter.state import ContainerRecord, Phase as RecordPhase, Reason, Source, StateStore
from exporter.web.status import StatusView

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
    lives: tuple[int, int]            # records carrying a Life (the reducer's per-container memory)
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
    before = (len(store), series(exposition.render()), sum(1 for r in store.records() if r.engine is not None), rss_mib(),
              sys.getallocatedblocks(), store.sources()[0].events.get("ok", 0))
    start = time.perf_counter()
    run(min(1_000, cycles), cycles)
    seconds = time.perf_counter() - start
    gc.collect()
    after = (len(store), series(exposition.render()), sum(1 for r in store.records() if r.engine is not None), rss_mib(),
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
             *, batch: int = 200, max_batches: int = 100_000, min_examples: int = 20) -> Fuzzed:
    """Run `check` on generated values for `seconds` (and at least `min_examples` times: hypothesis'
    first use of a character class in a fresh checkout builds its charmap cache for seconds);
    every exception it lets out is a crash."""
    result = Fuzzed(target)

    def done() -> bool:
        return time.monotonic() >= stop_at and result.examples >= min_examples

    @settings(max_examples=batch, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    @given(strategy)
    def one(value: Any) -> None:
        if done():
            return  # out of time: finish the batch without running the target
        result.examples += 1
        check(value)

    stop_at = time.monotonic() + seconds
    for _ in range(max_batches):
        if done():
            break
        try:
            one()
        except Exception as exc:  # hypothesis re-raises the shrunk failure(s)
            failures = exc.exceptions if isinstance(exc, BaseExceptionGroup) else (exc,)
            result.crashes.extend(_describe(failure) for failure in failures)
    return result


def _describe(exc: BaseException) -> str:
    """The exception and hypothesis' note naming the falsifying example, cut to a few lines."""
    notes = " | ".join(getattr(exc, "__notes__", ()))
    return f"{type(exc).__name__}: {exc}"[:400] + (f" [{notes[:600]}]" if notes else "")


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
    app = Exporter(load(flags={"web.listen_address": "127.0.0.1:0", "docker.enabled": "false"}))
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


# -- Kubernetes pods -----------------------------------------------------------------------
# The watcher counts a pod it cannot read as malformed when the mapping raises one of these
# (exporter/sources/kubernetes/watcher.py, handle_line); any other exception is a crash.
POD_MALFORMED = (TypeError, ValueError, AttributeError)
FIXTURE_PODS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "pods"
KUBE_PODS: dict[str, dict[str, Any]] = {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURE_PODS.glob("*.json"))}
KUBE_NAMES = sorted(KUBE_PODS)
_STR_FIELDS = ("key", "container", "host", "namespace", "pod", "image", "container_id", "raw_reason", "message")


def _subtrees(node: Any, out: list[Any]) -> list[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "managedFields":
                out.append(value)
                _subtrees(value, out)
    elif isinstance(node, list):
        for value in node:
            out.append(value)
            _subtrees(value, out)
    return out


# Pieces of real pods to graft where they do not belong (a status list where a spec is, ...).
_GRAFTS = _subtrees(list(KUBE_PODS.values()), [])
# Every container state of the fixtures ({"waiting": ...}, {"running": ...}, {"terminated": ...}).
_STATES = [s for pod in KUBE_PODS.values() for key in ("initContainerStatuses", "containerStatuses")
           for cs in pod["status"].get(key) or () for s in (cs.get("state"), cs.get("lastState")) if s]
_NASTY = st.one_of(
    st.sampled_from([None, "", [], {}, 0, -1, True, False, 2**31, -2**31, 2**63 - 1, -2**63, 2**64 - 1, 0.5, -0.0,
                     1e308, -1e308, "0", "-1", "12", "1e3", "0001-01-01T00:00:00Z", "2026-13-45T99:99:99Z",
                     "2026-11-20T09:14:03.123456789123Z", "9999-12-31T23:59:59Z", "not a time", "\u202e\x00",
                     "\U0001f4a5", "a" * 5000, "Running", "OOMKilled", "CrashLoopBackOff", "Evicted", "Failed",
                     "Completed", "ErrImagePull", "a/b", "k8s:a/b/c", "\\\"\n", "\udfff".encode(
                         "utf-8", "surrogatepass").decode("utf-8", "replace")]),
    _JSON, st.integers(min_value=-2**70, max_value=2**70))
# Where a mutation lands: anywhere, or inside the parts the mapping reads.
_ZONES = ((), ("status",), ("status", "containerStatuses"), ("status", "initContainerStatuses"),
          ("status", "containerStatuses", 0, "state"), ("status", "containerStatuses", 1, "lastState"),
          ("spec", "containers"), ("spec", "initContainers"), ("metadata",))
_MUTATION = st.tuples(st.sampled_from(["drop", "set", "set", "dup", "states", "graft"]), st.sampled_from(_ZONES),
                      st.integers(0, 2**16), _NASTY)


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """(parent, key) of every value under `node`, managedFields' insides left out."""
    out: list[tuple[Any, Any]] = []

    def walk(parent: Any) -> None:
        items = parent.items() if isinstance(parent, dict) else enumerate(parent) if isinstance(parent, list) else ()
        for key, value in list(items):
            out.append((parent, key))
            if key != "managedFields":
                walk(value)

    walk(node)
    return out


def mutate(pod: dict[str, Any], mutations: list[tuple[str, tuple[Any, ...], int, Any]]) -> dict[str, Any]:
    """A deep copy of `pod` with each mutation applied at a slot chosen by index within its zone."""
    pod = json.loads(json.dumps(pod))
    for op, zone, index, value in mutations:
        root: Any = pod
        for part in zone:
            try:
                root = root[part]
            except (KeyError, IndexError, TypeError):
                root = pod
                break
        slots = _slots(root) or _slots(pod)
        if not slots:
            return pod
        parent, key = slots[index % len(slots)]
        if op == "drop":
            del parent[key]
        elif op == "set":
            parent[key] = copy.deepcopy(value)  # never share the strategy's own [] or {}
        elif op == "dup" and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))
        elif op == "dup":
            parent[f"{key}-copy"] = parent[key]
        elif op == "states":  # several of waiting/running/terminated at once
            merged: dict[str, Any] = {}
            for k in range(1 + index % 3):
                merged.update(_STATES[(index + 7 * k) % len(_STATES)])
            parent[key] = json.loads(json.dumps(merged))
        else:  # graft
            parent[key] = json.loads(json.dumps(_GRAFTS[index % len(_GRAFTS)]))
    return pod


def kube_pod(fixture: str, *, name: str = "web-0", namespace: str = "shop") -> dict[str, Any]:
    pod = json.loads(json.dumps(KUBE_PODS[fixture]))
    pod["metadata"].update(name=name, namespace=namespace)
    return pod


def _kube_watcher() -> tuple[KubernetesWatcher, StateStore, ContainerCollector]:
    store = StateStore()
    watcher = KubernetesWatcher(store, ResilienceRegistry(), host="soak", api_factory=lambda: None)
    return watcher, store, ContainerCollector(store)


def record_problems(record: ContainerRecord) -> list[str]:
    """What a record holds that its type promises it does not (these break the scrape or the API)."""
    problems = [f"{name}={getattr(record, name)!r:.60}" for name in _STR_FIELDS
                if type(getattr(record, name)) is not str]
    for name in ("restarts", "oom_kills", "retry_count"):
        if type(getattr(record, name)) is not int:
            problems.append(f"{name}={getattr(record, name)!r:.60}")
    if record.last_exit_code is not None and type(record.last_exit_code) is not int:
        problems.append(f"last_exit_code={record.last_exit_code!r:.60}")
    for name in ("last_terminated_at", "started_at", "created_at", "next_retry_at"):
        value = getattr(record, name)
        if value is not None and (type(value) not in (int, float) or value != value or abs(value) == float("inf")):
            problems.append(f"{name}={value!r:.60}")
    if not isinstance(record.phase, RecordPhase) or not isinstance(record.reason, Reason):
        problems.append(f"phase/reason={record.phase!r}/{record.reason!r}")
    return problems


def _check_store(store: StateStore, collector: ContainerCollector) -> bytes:
    """Every record well typed, the scrape and the status document render; returns the scrape text."""
    for record in store.records():
        problems = record_problems(record)
        if problems:
            raise AssertionError(f"record {record.key!r:.80} holds {', '.join(problems)}")
    json.dumps(StatusView(store, ResilienceRegistry(), host="soak").document().as_dict())
    return render_collectors([collector])


def fuzz_pods(seconds: float) -> list[Fuzzed]:
    """The pod mapping on random JSON and on mutated kubelet pods (differential), and watch streams."""
    def check_random(pod: Any) -> None:
        watcher, store, collector = _kube_watcher()
        try:
            records = watcher.mapper.records(pod, store.get)
        except POD_MALFORMED:
            return
        for record in records:
            store.put(record)
        _check_store(store, collector)

    def check_mutant(case: tuple[str, str, list[Any]]) -> None:
        before, after, mutations = case
        # subject: sentinel, pod, the mutant of its next state, then that state; reference: no mutant
        subject, store, collector = _kube_watcher()
        reference, ref_store, _ = _kube_watcher()
        for w in (subject, reference):
            w.apply(kube_pod("running", name="keep", namespace="soak-sentinel"))
            w.apply(kube_pod(before))
        sentinel = {r.key: r for r in store.records() if r.namespace == "soak-sentinel"}
        try:
            subject.apply(mutate(kube_pod(after), mutations))
            rejected = False
        except POD_MALFORMED:
            rejected = True
        _check_store(store, collector)
        subject.apply(kube_pod(after))
        reference.apply(kube_pod(after))
        if any(store.get(k) is not r for k, r in sentinel.items()):
            raise AssertionError("the sentinel pod's records changed")
        text = _check_store(store, collector)
        if b'pod="keep"' not in text:
            raise AssertionError("the sentinel pod is missing from the scrape")
        if rejected:  # a rejected pod leaves no trace: the next good state maps as if it never came
            ours = sorted(store.records(), key=lambda r: r.key)
            theirs = sorted(ref_store.records(), key=lambda r: r.key)
            if ours != theirs:
                diff = [(a.key, {f: (v, b.__dict__[f]) for f, v in a.__dict__.items() if v != b.__dict__[f]})
                        for a, b in zip(ours, theirs) if a != b]
                raise AssertionError(f"records after a rejected pod differ from the reference: {diff!r:.400}")

    stream_watcher, stream_store, stream_collector = _kube_watcher()
    stream_watcher.apply(kube_pod("running", name="keep", namespace="soak-sentinel"))
    sentinel = {r.key: r for r in stream_store.records()}
    scope = Scope()
    api = _StreamApi()

    def check_stream(case: tuple[list[bytes], list[int]]) -> None:
        lines, cuts = case
        stream = b"".join(line + b"\n" for line in lines)
        points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
        api.chunks = [stream[a:b] for a, b in zip(points, points[1:]) if b > a]
        expected = sum(1 for _ in stream_lines(api.chunks))
        before = stream_store.sources()[0].events
        try:
            stream_watcher._watch(api, scope)  # type: ignore[arg-type]  # the real read loop, no socket
            raised = None
        except (WatchExpired, ApiException) as exc:
            raised = exc
        after = stream_store.sources()[0].events
        counted = sum(after.values()) - sum(before.values())
        if raised is not None:
            if after.get("error", 0) != before.get("error", 0) + 1:
                raise AssertionError(f"{type(raised).__name__} without an ERROR event: {raised}")
            if counted > expected:
                raise AssertionError(f"{counted} events counted for {expected} lines")
        elif counted != expected:
            raise AssertionError(f"{counted} events counted for {expected} lines ({before} -> {after})")
        if any(stream_store.get(k) is not r for k, r in sentinel.items()):
            raise AssertionError("the sentinel pod's records changed")
        if b'pod="keep"' not in _check_store(stream_store, stream_collector):
            raise AssertionError("the sentinel pod is missing from the scrape")

    random_pods = st.one_of(_JSON, st.fixed_dictionaries({}, optional={
        "metadata": st.one_of(_JSON, st.fixed_dictionaries({}, optional={"name": _NASTY, "namespace": _NASTY})),
        "spec": _JSON, "status": _JSON}))
    mutants = st.tuples(st.sampled_from(KUBE_NAMES), st.sampled_from(KUBE_NAMES),
                        st.lists(_MUTATION, min_size=1, max_size=4))
    kinds = st.one_of(st.sampled_from(["ADDED", "MODIFIED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]), _JSON)
    event = st.builds(lambda kind, fixture, name, mutations: {"type": kind, "object": mutate(
        kube_pod(fixture, name=name), mutations)}, kinds, st.sampled_from(KUBE_NAMES),
        st.sampled_from(["web-0", "web-1", "web-2"]), st.lists(_MUTATION, max_size=3))
    lines = st.one_of(
        st.builds(_event_bytes, event, st.one_of(st.none(), st.none(), st.integers(0, 7000))),
        st.builds(lambda code: _event_bytes({"type": "ERROR", "object": status_object(code)}, None), st.integers(0, 5)),
        st.binary(max_size=300), st.builds(lambda e: json.dumps(e).encode(), _JSON))
    streams = st.tuples(st.lists(lines, min_size=1, max_size=4), st.lists(st.integers(0, 2**20), max_size=6))
    return [fuzz_for("PodMapper.records(random JSON)", random_pods, check_random, seconds * 0.25),
            fuzz_for("KubernetesWatcher.apply(mutated kubelet pods)", mutants, check_mutant, seconds * 0.45),
            fuzz_for("KubernetesWatcher watch stream (mutated events, random chunks)", streams, check_stream,
                     seconds * 0.30)]


def status_object(index: int) -> dict[str, Any]:
    """A Status as the API server sends in an ERROR event (410 Gone, 500, ... and odd codes)."""
    code = [410, 500, 403, "410", None, 0][index % 6]
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "soak",
            "reason": "Expired", "code": code}


class _Chunks:
    """A watch response of fixed chunks, as urllib3 hands them to the watcher."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def stream(self, amt: Any = None, decode_content: bool = False) -> Iterator[bytes]:
        yield from self.chunks

    def release_conn(self) -> None:
        pass


class _StreamApi:
    """The CoreV1Api calls of a watch, answered from memory."""

    chunks: list[bytes] = []

    def list_pod_for_all_namespaces(self, **_: Any) -> _Chunks:
        return _Chunks(self.chunks)


# -- every HTTP route ------------------------------------------------------------------------
ROUTES = ("/metrics", "/healthz", "/readyz", "/api/state", "/api/events", "/")
JSON_ROUTES = {"/api/state": dict, "/api/events": list}
SOAK_USER, SOAK_PASSWORD = "soak", "s3cret-\u00e9\U0001f511"
_PERCENT = st.sampled_from(["%", "%%", "%zz", "%ff%fe", "%00", "%C0%80", "%E2%82", "%25%32%35", "%2F", "%0d%0a",
                            "%u2603", "%E2%80%AE", "%F0%9F%92%A5", "+", "&", "=", ";", "?", "#", "..", "."])
_SAFE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7e), max_size=30)
_RAW_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), max_size=20)
_QUERY_VALUES = st.one_of(_SAFE, _RAW_TEXT, _PERCENT, st.integers(-2**80, 2**80).map(str),
                          st.sampled_from(["", "9" * 5000, "1e3", "0x10", " 5", "\u0661\u0662", "1_000", "-0",
                                           "CrashLoopBackOff", "OOMKilled", "c1", "\u00fcml\u00e4ut", "a" * 70_000]))
_QUERY_KEYS = st.one_of(st.sampled_from(["limit", "container", "reason", "limit", "x", "", "LIMIT", "limit[]"]),
                        _SAFE, _PERCENT)
_HTTP_PATHS = st.one_of(st.sampled_from(ROUTES), st.sampled_from(ROUTES),
                        st.sampled_from(["/api", "/api/", "/metrics/", "/favicon.ico", "/api/events/", "//metrics",
                                         "/scrape", "///api/state", "/METRICS", "/healthz/../metrics", "/./metrics",
                                         "*", "http://soak/api/events", "/api/state%00", "/%2e%2e/", "/index.html"]),
                        st.builds(lambda a, b: a + b, st.sampled_from(ROUTES), st.one_of(_SAFE, _PERCENT, _RAW_TEXT)),
                        _SAFE.map(lambda s: "/" + s), _RAW_TEXT.map(lambda s: "/" + s))
_ACCEPT = st.one_of(st.sampled_from([
    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "application/openmetrics-text; version=0.0.1", "application/openmetrics-text;version=99", "text/plain",
    "*/*", "", "application/json", "text/html", "application/openmetrics-text;q=0", "APPLICATION/OPENMETRICS-TEXT",
    "application/openmetrics-text" * 500]), _RAW_TEXT)
_ACCEPT_ENCODING = st.one_of(st.sampled_from(["gzip", "GZIP", "gzip, deflate, br", "x-gzip", "identity", "*",
                                              "gzip;q=0", "br", "", "deflate", "gzip" * 1000]), _RAW_TEXT)


def _auth_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


_AUTHORIZATION = st.one_of(
    st.builds(_auth_header, st.sampled_from([SOAK_USER, "", "root", SOAK_USER + " "]),
              st.one_of(st.just(SOAK_PASSWORD), _RAW_TEXT, st.text(min_size=60, max_size=200),
                        st.just(SOAK_PASSWORD + "x" * 80), st.just("x" * 100))),
    st.just(_auth_header(SOAK_USER, SOAK_PASSWORD)),
    st.sampled_from(["Basic", "Basic ", "Basic !!!", "basic " + _auth_header(SOAK_USER, SOAK_PASSWORD)[6:],
                     "Bearer abc", "Basic " + "A" * 10_000, "Basic =",
                     "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
                     "Basic " + base64.b64encode(b"no-colon").decode()]),
    _RAW_TEXT)


@dataclass(frozen=True)
class Request:
    method: str
    target: str                      # as sent in the request line
    headers: tuple[tuple[str, str], ...]
    keep_alive: bool

    def encode(self) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1", "Host: soak",
                 *(f"{name}: {value}" for name, value in self.headers),
                 "Connection: keep-alive" if self.keep_alive else "Connection: close", "", ""]
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")

    def header(self, name: str) -> str | None:
        """The header as the handler sees it, read by http.server's own parser: a header line whose
        name is not ASCII ends the headers there (email.feedparser), the ones after it are dropped."""
        head = self.encode().partition(b"\r\n")[2]
        return http.client.parse_headers(io.BytesIO(head)).get(name)


def _target(path: str, query: list[tuple[str, str]], encode: bool, fragment: str) -> str:
    if encode:
        text = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    else:
        text = "&".join(f"{k}={v}" if v or k else "" for k, v in query)
    target = path + (f"?{text}" if query else "") + (f"#{fragment}" if fragment else "")
    return target.replace(" ", "%20")


_REQUESTS = st.builds(
    Request,
    st.sampled_from(["GET", "GET", "GET", "HEAD"]),
    st.builds(_target, _HTTP_PATHS, st.lists(st.tuples(_QUERY_KEYS, _QUERY_VALUES), max_size=6), st.booleans(),
              st.one_of(st.just(""), _SAFE)),
    st.lists(st.one_of(st.tuples(st.just("Accept"), _ACCEPT), st.tuples(st.just("Accept-Encoding"), _ACCEPT_ENCODING),
                       st.tuples(st.just("Authorization"), _AUTHORIZATION),
                       st.tuples(st.sampled_from(["X-Forwarded-For", "If-None-Match", "Range", "Cookie", "Expect",
                                                  "Content-Length", "Transfer-Encoding", "X-\u00e9"]),
                                 st.one_of(_SAFE, _RAW_TEXT, st.just("100-continue")))),
             max_size=5).map(tuple),
    st.booleans())


class Dropped(Exception):
    """The server closed the connection before a whole answer."""


def http_exchange(address: tuple[str, int], request: Request, *, timeout: float = 10.0
                  ) -> tuple[int, dict[str, str], bytes]:
    """Send one raw request; the status, headers (lower-case names) and body of its final answer."""
    data = request.encode()
    try:
        return _exchange(address, data, head=request.method == "HEAD", timeout=timeout)
    except (ConnectionResetError, BrokenPipeError):
        if data.index(b"\r\n") > 65_536:  # http.server answers 414 and closes with the rest unread: a reset
            return 414, {}, b"reset after a request line over 64 KiB"
        raise


def _exchange(address: tuple[str, int], data: bytes, *, head: bool, timeout: float
              ) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        buf = b""

        def more() -> bytes:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise Dropped(f"connection closed after {len(buf)} bytes: {buf[:120]!r}")
            return chunk

        while True:
            while b"\r\n\r\n" not in buf:
                buf += more()
            block, _, buf = buf.partition(b"\r\n\r\n")
            status_line, *header_lines = block.decode("latin-1").split("\r\n")
            version, _, rest = status_line.partition(" ")
            if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
                raise Dropped(f"no status line: {block[:120]!r}")
            status = int(rest[:3])
            headers = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if status >= 200:
                break  # 1xx (100 Continue): the real answer follows
        if head or status in (204, 304):
            return status, headers, b""
        length = int(headers.get("content-length", "-1"))
        if length < 0:  # no length: the body runs to the end of the connection
            try:
                while True:
                    buf += more()
            except Dropped:
                return status, headers, buf
        while len(buf) < length:
            buf += more()
        return status, headers, buf[:length]


def route_of(target: str) -> str:
    """The path the server routes on, as http.server and urlsplit see the request target, decoded
    (a client may percent-encode any character of the path; a non-ASCII one it must)."""
    if target.startswith("//"):
        target = "/" + target.lstrip("/")  # http.server (3.11+) against open redirects
    return unquote(urlsplit(target).path)


def asks_openmetrics(accept: str) -> bool:
    """RFC 9110 content negotiation: the media type (any case) listed with a q above 0."""
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != "application/openmetrics-text":
            continue
        qs = [p.split("=", 1)[1] for p in params if p.lower().startswith("q=")]
        q = qs[-1] if qs else "1"  # a repeated q: the last one counts
        try:
            if float(q) > 0:
                return True
        except ValueError:
            continue
    return False


def check_answer(request: Request, answer: tuple[int, dict[str, str], bytes], *, telemetry_path: str,
                 authorized: bool) -> None:
    """A crash: 5xx (but /readyz's 503), 404 for a route, 200 for an unknown path, a non-JSON body
    where JSON is promised, a /metrics body in the wrong format or encoding, a 4xx without a message."""
    status, headers, body = answer
    route = route_of(request.target)
    known = route == telemetry_path or (route in ROUTES and route != "/metrics")
    head = request.method == "HEAD"
    if status >= 500 and not (route == "/readyz" and status == 503):
        raise AssertionError(f"{status} for {request.target[:100]!r}: {body[:200]!r}")
    if route == "/healthz" and status not in (200, 400, 414, 431):  # 4xx: http.server refused the request
        raise AssertionError(f"/healthz answered {status}")
    if not authorized and known and route != "/healthz" and status not in (401, 400, 414, 431):
        raise AssertionError(f"{status} without credentials for {request.target[:100]!r}")
    if status == 401 and "www-authenticate" not in headers:
        raise AssertionError("401 without WWW-Authenticate")
    if 400 <= status < 500 and status != 401 and not head and not body.strip():
        raise AssertionError(f"{status} without a message for {request.target[:100]!r}")
    if status == 404 and known:
        raise AssertionError(f"404 for the route {route!r}")
    if status == 200 and not known:
        raise AssertionError(f"200 for an unknown path {route!r}")
    content_type = headers.get("content-type", "")
    if content_type == "application/json" and not head:  # JSON promised: JSON given (our 400s say why in it)
        doc = json.loads(body)
        if status == 400 and not (isinstance(doc, dict) and doc.get("error")):
            raise AssertionError(f"400 without an error message: {body[:200]!r}")
    if status != 200:
        return
    if route in JSON_ROUTES:
        if content_type != "application/json":
            raise AssertionError(f"{route}: Content-Type {content_type!r}")
        if not head and not isinstance(json.loads(body), JSON_ROUTES[route]):
            raise AssertionError(f"{route}: not a JSON {JSON_ROUTES[route].__name__}: {body[:200]!r}")
    elif route == telemetry_path:
        openmetrics = asks_openmetrics(request.header("Accept") or "")
        if content_type.startswith("application/openmetrics-text") != openmetrics:
            raise AssertionError(f"Content-Type {content_type!r} for Accept {request.header('Accept')!r:.100}")
        if head:
            return
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if not body.startswith(b"# HELP") or openmetrics != body.endswith(b"# EOF\n"):
            raise AssertionError(f"not a {'OpenMetrics' if openmetrics else 'text 0.0.4'} body: {body[:100]!r}")
    elif route == "/" and not head and b"</html>" not in body:
        raise AssertionError(f"status page cut: {body[-100:]!r}")


def _populated_exporter(**flags: str) -> Exporter:
    """An Exporter on loopback (no engine) holding Docker and Kubernetes records with odd names."""
    app = Exporter(load(flags={"web.listen_address": "127.0.0.1:0", "docker.enabled": "false", **flags}))
    names = ["c0", "caf\u00e9", 'q"uote', "back\\slash", "new\nline", "\U0001f4a5", "<script>x</script>", ""]
    for i, name in enumerate(names * 3):
        app.store.put(ContainerRecord(key=f"id{i}", source=Source.DOCKER, container=name, host="h", image="img:1",
                                      phase=RecordPhase.TERMINATED, reason=list(Reason)[i % len(Reason)],
                                      message=name * 3, last_exit_code=i - 5).with_failure(Reason.ERROR))
    watcher = KubernetesWatcher(app.store, app.registry, host="soak", api_factory=lambda: None)
    for i, fixture in enumerate(KUBE_NAMES):
        watcher.apply(kube_pod(fixture, name=f"web-{i}"))
    app.registry.breaker("probe:\u00e9")
    return app


@contextlib.contextmanager
def http_exporters() -> Iterator[tuple[Exporter, Exporter]]:
    """Two running Exporters on loopback: a plain one, and one with basic auth (user SOAK_USER,
    password SOAK_PASSWORD, bcrypt) and its telemetry path moved to /scrape."""
    workdir = Path(tempfile.mkdtemp(prefix="re-soak-web-"))
    import bcrypt  # only servers with basic_auth_users need it

    hashed = bcrypt.hashpw(SOAK_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    web_config = workdir / "web.yaml"
    web_config.write_text(yaml.safe_dump({"basic_auth_users": {SOAK_USER: hashed}}))
    plain = _populated_exporter()
    secured = _populated_exporter(**{"web.config_file": str(web_config), "web.telemetry_path": "/scrape"})
    plain.store.set_source("kubernetes", synced=True)  # /readyz: 200 here, 503 on the secured one
    try:
        plain.start()
        secured.start()
        yield plain, secured
    finally:
        for app in (plain, secured):
            if app.server is not None:
                app.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _same_credentials(header: str | None, good: str) -> bool:
    """RFC 7617: the scheme is case-insensitive ("basic", "BASIC"), the credentials are not."""
    return header is not None and header[:6].lower() == "basic " and header[6:] == good[6:]


def fuzz_http(seconds: float) -> list[Fuzzed]:
    """Raw requests to every route of a running Exporter, without and with basic auth."""
    good = _auth_header(SOAK_USER, SOAK_PASSWORD)

    def check(request: Request, app: Exporter, secured: bool) -> None:
        answer = http_exchange(app.address, request)
        check_answer(request, answer, telemetry_path=app.config.web.telemetry_path,
                     authorized=not secured or _same_credentials(request.header("Authorization"), good))

    with http_exporters() as (plain, secured):
        return [fuzz_for("HTTP: every route, random paths/queries/headers", _REQUESTS,
                         lambda r: check(r, plain, False), seconds * 0.65),
                fuzz_for("HTTP with basic auth: random Authorization and routes", _REQUESTS,
                         lambda r: check(r, secured, True), seconds * 0.35)]


def fuzz(seconds: float = 60.0) -> list[Fuzzed]:
    """All fuzz targets, `seconds` in total: Docker events 20 %, config 15 %, /api/events 10 %,
    Kubernetes pods 35 %, every HTTP route 20 % (each split again over its targets)."""
    return [*fuzz_events(seconds * 0.20), *fuzz_config(seconds * 0.15), fuzz_web(seconds * 0.10),
            *fuzz_pods(seconds * 0.35), *fuzz_http(seconds * 0.20)]


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
