"""Kubernetes source under a connection storm (issue 8): churn, drops and 410 Gone, 0 stale pods.

The fake API server of tests/integration/fake_kube.py runs in its own process with two threads:
- churn: adds, modifies (kubelet-shaped pods from tests/fixtures: restarts going up, states
  changing, pending pods getting scheduled) and deletes pods in NAMESPACES, ~`rate` changes/s;
- a disruptor (seeded: the same sequence of choices for a seed): every 1-5 s one of: drop the
  watch connections, cut them in the middle of an event, expire the open watches (410 ERROR in
  the stream), drop and compact the history after a change (every resume gets 410 and the
  source must relist), the same with the relist answered HTTP 410 first, or with the resumed
  watch answered HTTP 410 instead of the ERROR event; about half of them (not expiries) followed
  at once by a burst of deletions (and re-creations under the same names) while the watches are
  down, so a relist that does not reconcile would leave stale pods.
This process runs two real `KubernetesWatcher`s side by side, each with its own store:
all namespaces (one watch) and a namespace list (one watch per namespace; the last churned
namespace is not in it). At every checkpoint the server pauses churn and disruption, sends its
pod set, and once each source has caught up (every scope connected, its resourceVersion at or
past the last change in its namespaces; waited on with a deadline) its store and its rendered
/metrics are compared with the API's pods: stale (ours, not the API's), missing, mismatched
(reason, restarts, node or image of a container differ; the expected state is derived from
the pod JSON here, not by the exporter's mapper). Goal: 0 / 0 / 0 at every checkpoint.
Also counted: disruptions, 410s sent, relists, events applied, peak watcher threads and watch
connections, threads back to baseline after stop, RSS before/after.

`python -m bench.kube_storm --seconds 300`; tests/integration/test_kube_storm_short.py runs ~25 s.
"""
from __future__ import annotations

import argparse
import copy
import gc
import logging
import multiprocessing
import os
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

from bench.common import Row
from tests.harness import wait_until
from tests.integration.fake_kube import FakeKubeApi, load_pod

HOST = "storm-host"  # the exporter's host label for pods not scheduled yet
NAMESPACES = ("shop", "pay", "search", "ml", "batch", "unwatched")
WATCHED = NAMESPACES[:-1]  # the namespaced configuration: every churned namespace but the last
NAMES_PER_NAMESPACE = 40
NODES = ("worker-1", "worker-2", "worker-3")
TEMPLATES = ("running", "running", "running", "err-image-pull", "image-pull-backoff", "crash-loop-backoff",
             "oom-killed-last-state", "oom-killed", "evicted", "create-container-config-error",
             "init-crash-loop", "err-image-never-pull", "pending")
KINDS = ("drop", "cut", "expire", "compact", "gone_list", "gone_http")  # disruptions, see the docstring
PodId = tuple[str, str]
Containers = dict[str, tuple[str, int, str, str]]  # container -> (reason, restarts, host, image)


# -- the expected state, from the pod JSON alone ----------------------------------------------
def expected_containers(pod: dict[str, Any]) -> Containers:
    """What the exporter should show for `pod`: kubelet semantics, independently of pods.py."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    host = spec.get("nodeName") or HOST
    pod_reason = status.get("reason") if status.get("phase") == "Failed" else None
    out: Containers = {}
    for statuses, specs in ((status.get("initContainerStatuses"), spec.get("initContainers")),
                            (status.get("containerStatuses"), spec.get("containers"))):
        images = {c["name"]: c.get("image") or "" for c in specs or ()}
        for cs in statuses or ():
            state = cs.get("state") or {}
            if pod_reason:
                reason = pod_reason
            elif state.get("running") is not None:
                reason = "Running"
            elif state.get("terminated") is not None:
                term = state["terminated"]
                reason = term.get("reason") or ("Completed" if not term.get("exitCode") else "Error")
            else:
                reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            out[cs["name"]] = (reason, int(cs.get("restartCount") or 0), host,
                               images.get(cs["name"]) or cs.get("image") or "")
        for name, image in images.items():
            if name not in out:  # no status yet: the kubelet's default waiting reason
                out[name] = (pod_reason or "ContainerCreating", 0, host, image)
    return out


# -- the server process: fake API, churn, disruptor -------------------------------------------
@dataclass
class Life:
    template: str
    restarts: int
    node: str
    uid: str


class Storm:
    """Churn and disruption threads around a FakeKubeApi; paused between checkpoints."""

    def __init__(self, api: FakeKubeApi, seed: int, rate: float) -> None:
        self.api = api
        self.rate = rate
        self.churn_rng = random.Random(seed)
        self.disrupt_rng = random.Random(seed + 1)  # what and when: the same sequence for a seed
        self.victim_rng = random.Random(seed + 2)   # which pods a burst deletes (depends on the churn)
        self.templates = {name: _template(name) for name in set(TEMPLATES)}
        self.live: dict[PodId, Life] = {}
        self.lives = 0
        self.lock = threading.Lock()  # the live pod set: churn and deletion bursts both change it
        self.go = threading.Event()
        self.done = False
        self.busy = (threading.Lock(), threading.Lock())  # held by churn / disruptor during one action
        self.counts: Counter[str] = Counter()
        self.threads = [threading.Thread(target=self._churn, name="storm-churn", daemon=True),
                        threading.Thread(target=self._disrupt, name="storm-disruptor", daemon=True)]

    # pods
    def _pod(self, ident: PodId, life: Life) -> dict[str, Any]:
        pod = copy.deepcopy(self.templates[life.template])
        meta = pod["metadata"]
        meta.update(namespace=ident[0], name=ident[1], uid=life.uid,
                    labels={"app.kubernetes.io/name": ident[1].rsplit("-", 1)[0]})
        meta.pop("generateName", None)
        pod["spec"]["nodeName"] = life.node
        for cs in pod["status"].get("containerStatuses") or ():
            if cs["name"] == "app":
                cs["restartCount"] = life.restarts
        if not life.node:
            pod["spec"].pop("nodeName")
        return pod

    def populate(self, n: int) -> None:
        for _ in range(n):
            self._add(self.churn_rng)

    def _add(self, rng: random.Random, ident: PodId | None = None) -> None:
        if ident is None:
            free = [(ns, f"web-{i:03d}") for ns in NAMESPACES for i in range(NAMES_PER_NAMESPACE)]
            free = [p for p in free if p not in self.live]
            ident = rng.choice(free)
        template = rng.choice(TEMPLATES)
        self.lives += 1
        life = Life(template, 0, "" if template == "pending" else rng.choice(NODES), f"uid-{self.lives:08d}")
        self.live[ident] = life
        self.api.add(self._pod(ident, life))
        self.counts["added"] += 1

    def _modify(self, rng: random.Random) -> None:
        ident = rng.choice(list(self.live))
        life = self.live[ident]
        life.template = rng.choice(TEMPLATES)
        life.restarts += rng.choice((0, 0, 1, 2))
        if not life.node and life.template != "pending":
            life.node = rng.choice(NODES)  # scheduled
        self.api.modify(self._pod(ident, life))
        self.counts["modified"] += 1

    def _delete(self, rng: random.Random) -> PodId:
        ident = rng.choice(list(self.live))
        del self.live[ident]
        self.api.delete(*ident)
        self.counts["deleted"] += 1
        return ident

    # threads
    def _churn(self) -> None:
        rng = self.churn_rng
        target = len(NAMESPACES) * NAMES_PER_NAMESPACE // 2
        while True:
            self.go.wait()
            if self.done:
                return
            with self.busy[0]:
                if not self.go.is_set():
                    continue
                with self.lock:
                    roll = rng.random()
                    if len(self.live) < target * 0.6 or (roll < 0.25 and len(self.live) < target * 1.4):
                        self._add(rng)
                    elif roll < 0.8:
                        self._modify(rng)
                    else:
                        self._delete(rng)
                    if rng.random() < 0.01:  # now and then a BOOKMARK moves every watch's resourceVersion on
                        self.api.bookmark()
                        self.counts["bookmarks"] += 1
            time.sleep(1 / self.rate)  # pacing of the churn, not a wait for anything

    def _disrupt(self) -> None:
        rng, victims, api = self.disrupt_rng, self.victim_rng, self.api
        while True:
            wake = time.monotonic() + rng.uniform(1.0, 5.0)
            kind = rng.choices(KINDS, weights=(3, 3, 2, 3, 1, 1))[0]
            burst, size, gone_lists = kind != "expire" and rng.random() < 0.5, rng.randint(3, 12), rng.randint(1, 3)
            while time.monotonic() < wake or not self.go.is_set():
                if self.done:
                    return
                self.go.wait()
                time.sleep(0.05)  # pacing: the next disruption is 1-5 s away
            with self.busy[1]:
                if not self.go.is_set():
                    continue
                self.counts[kind] += 1
                if kind == "cut":
                    api.cut()
                elif kind != "expire":
                    api.drop()
                with self.lock:
                    if burst:  # deletions (and re-creations) while the watches are down
                        for _ in range(size):
                            if self.live:
                                ident = self._delete(victims)
                                self.counts["burst_deleted"] += 1
                                if victims.random() < 0.3:
                                    self._add(victims, ident)  # same name, a new pod (uid)
                                    self.counts["burst_recreated"] += 1
                        self.counts["bursts"] += 1
                    elif kind in ("compact", "gone_list", "gone_http") and self.live:
                        self._modify(victims)  # a change no dropped watch has seen: every resume is too old
                if kind == "expire":
                    api.expire()
                elif kind in ("compact", "gone_list", "gone_http"):
                    api.gone_http = kind == "gone_http"
                    if kind == "gone_list":
                        api.gone_lists = gone_lists
                    api.compact()

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def pause(self) -> None:
        """Stop churn and disruption after their current action (which completes)."""
        self.go.clear()
        for lock in self.busy:
            with lock:
                pass

    def snapshot(self) -> dict[str, Any]:
        api = self.api
        with api.cond:
            pods = {ident: expected_containers(pod) for ident, pod in api.pods.items()}
            return {"pods": pods, "last_change": dict(api.last_change), "resource_version": api.resource_version,
                    "stats": dict(api.stats), "storm": dict(self.counts), "peak_watches": api.peak_watches,
                    "open_watches": len(api._sockets)}

    def stop(self) -> None:
        self.done = True
        self.go.set()
        for thread in self.threads:
            thread.join(timeout=10)


def _template(name: str) -> dict[str, Any]:
    if name != "pending":
        return load_pod(name)
    pod = load_pod("running")  # accepted, not scheduled yet: no container statuses
    pod["status"] = {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}], "qosClass": "Burstable"}
    return pod


def _serve(conn: Connection, seed: int, rate: float) -> None:
    """The server process: answers ("run", seconds) with a paused snapshot, "stop" with one too."""
    api = FakeKubeApi().start()
    storm = Storm(api, seed, rate)
    storm.populate(len(NAMESPACES) * NAMES_PER_NAMESPACE // 2)
    storm.start()
    conn.send(api.url)
    try:
        while True:
            command = conn.recv()
            if command[0] == "run":
                storm.go.set()
                time.sleep(command[1])  # the storm runs for this long
                storm.pause()
            else:
                storm.stop()
            conn.send(storm.snapshot())
            if command[0] == "stop":
                return
    finally:
        api.close()


# -- this process: the exporter's side ----------------------------------------------------------
@dataclass
class Diff:
    stale: int = 0
    missing: int = 0
    mismatched: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.stale or self.missing or self.mismatched)


@dataclass
class Check:
    at: float            # storm seconds run so far
    watcher: str
    pods: int            # the API's pods in the watcher's scope
    caught_up_s: float | None  # None: not caught up before the deadline
    source_up: bool      # resilience_exporter_source_up{source="kubernetes"} 1 once caught up
    store: Diff
    metrics: Diff

    @property
    def clean(self) -> bool:
        return self.caught_up_s is not None and self.source_up and self.store.clean and self.metrics.clean


@dataclass
class StormResult:
    seconds: float
    checks: list[Check]
    server: dict[str, Any]                # the final snapshot: stats, storm counts, peak watches
    relists: dict[str, int]
    events: dict[str, dict[str, int]]     # per watcher: store event counts by result
    breakers: dict[str, dict[str, Any]]   # per watcher: kubernetes:api breaker calls and transitions
    scopes: dict[str, int]
    peak_watcher_threads: int
    peak_connections: int                 # this process's TCP connections to the fake API
    threads: tuple[int, int]              # before start / after stop
    connections_after: int
    rss_mib: tuple[float, float]          # after the initial sync / at the end
    rss_trend: list[float]                # at each checkpoint

    @property
    def clean(self) -> bool:
        return all(c.clean for c in self.checks)

    def worst(self, what: str) -> int:
        return max((getattr(getattr(c, part), what) for c in self.checks for part in ("store", "metrics")), default=0)


def diff(expected: dict[PodId, Containers], ours: dict[PodId, Containers]) -> Diff:
    stale = sorted(set(ours) - set(expected))
    missing = sorted(set(expected) - set(ours))
    mismatched = sorted(p for p in set(ours) & set(expected) if ours[p] != expected[p])
    examples = ([f"stale {p}: {ours[p]}" for p in stale[:3]] + [f"missing {p}: {expected[p]}" for p in missing[:3]]
                + [f"mismatched {p}: ours {ours[p]} api {expected[p]}" for p in mismatched[:3]])
    return Diff(len(stale), len(missing), len(mismatched), examples)


def store_view(store: Any) -> dict[PodId, Containers]:
    out: dict[PodId, Containers] = {}
    for r in store.records():
        if r.source.value == "kubernetes":
            out.setdefault((r.namespace, r.pod), {})[r.container] = (r.display_reason, r.restarts, r.host, r.image)
    return out


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metrics_view(text: str) -> dict[PodId, Containers]:
    """The same view from the rendered exposition: reason from workload_container_reason, restarts
    from workload_container_restarts_total, host from their labels, image from workload_container_info's."""
    rows: dict[tuple[str, str, str], list[Any]] = {}
    for line in text.splitlines():
        if not line.startswith(("workload_container_reason{", "workload_container_restarts_total{",
                                 "workload_container_info{")):
            continue
        labels_text, _, value = line.rpartition("} ")
        labels = dict(_LABEL.findall(labels_text))
        if labels.get("source") != "kubernetes":
            continue
        row = rows.setdefault((labels["namespace"], labels["pod"], labels["container"]),
                              [None, None, labels["host"], None])
        if line.startswith("workload_container_info{"):
            row[3] = labels["image"]
        elif line.startswith("workload_container_reason{"):
            row[0] = labels["reason"]
        else:
            row[1] = int(float(value))
    out: dict[PodId, Containers] = {}
    for (ns, pod, container), row in rows.items():
        out.setdefault((ns, pod), {})[container] = tuple(row)  # type: ignore[assignment]
    return out


def rss_mib() -> float:
    line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def connections_to(port: int) -> int:
    """This process's TCP sockets connected to `port` on loopback (any state but LISTEN/TIME_WAIT)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if int(parts[2].rsplit(":", 1)[1], 16) == port and parts[9] in inodes:
            count += 1
    return count


class Monitor:
    """Samples watcher threads and connections every 50 ms; keeps the peaks."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.peak_threads = self.peak_connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="storm-monitor", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            watchers = sum(t.name.startswith("kubernetes-watcher") for t in threading.enumerate())
            self.peak_threads = max(self.peak_threads, watchers)
            self.peak_connections = max(self.peak_connections, connections_to(self.port))

    def __enter__(self) -> "Monitor":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _caught_up(watcher: Any, last_change: dict[str, int]) -> bool:
    for scope in watcher.scopes:
        need = last_change.get(scope.namespace, 0) if scope.namespace else max(last_change.values(), default=0)
        if not (scope.up and scope.resource_version and int(scope.resource_version) >= need):
            return False
    return watcher.store.ready()


def storm(seconds: float = 300.0, *, checkpoint_every: float = 30.0, seed: int = 8, rate: float = 60.0,
          catch_up_deadline: float = 60.0, reconnect_max_backoff: float = 5.0, watch_timeout: int = 20,
          progress: Callable[[str], None] | None = None) -> StormResult:
    """Run the storm for `seconds` (storm time, checks excluded) with a checkpoint every
    `checkpoint_every` seconds and at the end."""
    from kubernetes.client import ApiClient, Configuration

    from exporter.metrics import ContainerCollector, Exposition, SelfCollector
    from exporter.resilience import ResilienceRegistry
    from exporter.sources.kubernetes import KubernetesWatcher
    from exporter.state import StateStore

    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(theirs, seed, rate), daemon=True)
    server.start()
    quiet = logging.getLogger("exporter.sources")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # one warning per disruption per scope otherwise
    try:
        if not ours.poll(60):
            raise RuntimeError("the fake API server process did not start")
        url = ours.recv()
        port = int(url.rsplit(":", 1)[1])
        configuration = Configuration()
        configuration.host = url
        gc.collect()
        threads_before = threading.active_count()
        watchers: dict[str, Any] = {}
        expositions: dict[str, Any] = {}
        for name, namespaces in (("all-namespaces", ()), ("namespaced", WATCHED)):
            store = StateStore()
            watchers[name] = KubernetesWatcher(
                store, ResilienceRegistry(), host=HOST, api_factory=lambda: ApiClient(configuration),
                namespaces=namespaces, reconnect_max_backoff=reconnect_max_backoff, watch_timeout=watch_timeout,
                request_timeout=10)
            expositions[name] = Exposition([ContainerCollector(store), SelfCollector(store)])
        checks: list[Check] = []
        with Monitor(port) as monitor:
            for watcher in watchers.values():
                watcher.start()
            for watcher in watchers.values():
                wait_until(watcher.store.ready, timeout=30, message="initial sync")
            for exposition in expositions.values():
                exposition.render()
            rss_before = rss_mib()
            ran = 0.0
            snapshot: dict[str, Any] = {}
            rss_trend: list[float] = []
            while ran < seconds:
                step = min(checkpoint_every, seconds - ran)
                ours.send(("run", step))
                if not ours.poll(step + 60):
                    raise RuntimeError("the fake API server process did not pause")
                snapshot = ours.recv()
                ran += step
                for name, watcher in watchers.items():
                    checks.append(_check(name, watcher, expositions[name], snapshot, ran, catch_up_deadline))
                rss_trend.append(rss_mib())
                if progress:
                    progress(f"{ran:.0f}s: " + "; ".join(
                        f"{c.watcher} stale/missing/mismatched {c.store.stale}/{c.store.missing}/"
                        f"{c.store.mismatched} (metrics {c.metrics.stale}/{c.metrics.missing}/"
                        f"{c.metrics.mismatched}) of {c.pods} pods, caught up in {c.caught_up_s}s"
                        for c in checks[-len(watchers):])
                        + f"; RSS {rss_trend[-1]:.1f} MiB; server {snapshot['stats']}")
            rss_after = rss_mib()
            for watcher in watchers.values():
                watcher.stop()
        ours.send(("stop",))
        final = ours.recv() if ours.poll(60) else snapshot
        relists = {name: w.relists for name, w in watchers.items()}
        events = {name: dict(w.store.sources()[0].events) for name, w in watchers.items()}
        scopes = {name: len(w.scopes) for name, w in watchers.items()}
        breakers = {}
        for name, w in watchers.items():
            snap = w.breaker.snapshot()
            breakers[name] = {**snap.calls, "opened": sum(n for (_, to), n in snap.transitions.items() if to == "open")}
        del watchers, expositions
        gc.collect()  # the API clients (and their pooled connections) of the stopped watchers
        try:
            wait_until(lambda: threading.active_count() <= threads_before, timeout=15, message="threads to end")
        except AssertionError:
            pass  # reported: threads after > before
        return StormResult(
            seconds=ran, checks=checks, server=final, relists=relists, events=events, breakers=breakers, scopes=scopes,
            peak_watcher_threads=monitor.peak_threads, peak_connections=monitor.peak_connections,
            threads=(threads_before, threading.active_count()), connections_after=connections_to(port),
            rss_mib=(rss_before, rss_after), rss_trend=rss_trend)
    finally:
        quiet.setLevel(level)
        server.join(timeout=30)
        if server.is_alive():
            server.kill()


def _check(name: str, watcher: Any, exposition: Any, snapshot: dict[str, Any], at: float,
           deadline: float) -> Check:
    scope = set(WATCHED) if name == "namespaced" else set(NAMESPACES)
    expected = {p: c for p, c in snapshot["pods"].items() if p[0] in scope}
    start = time.monotonic()
    try:
        wait_until(lambda: _caught_up(watcher, snapshot["last_change"]), timeout=deadline,
                   message=f"{name} caught up")
        caught_up: float | None = round(time.monotonic() - start, 3)
    except AssertionError:
        caught_up = None
    text = exposition.render().decode()
    return Check(at, name, len(expected), caught_up, 'resilience_exporter_source_up{source="kubernetes"} 1' in text,
                 diff(expected, store_view(watcher.store)), diff(expected, metrics_view(text)))


def rows(seconds: float = 300.0) -> list[Row]:
    r = storm(seconds)
    return result_rows(r)


def result_rows(r: StormResult) -> list[Row]:
    s, storm_counts = r.server["stats"], r.server["storm"]
    n = len(r.checks)
    clean = sum(c.clean for c in r.checks)
    catch = [c.caught_up_s for c in r.checks if c.caught_up_s is not None]
    t = f"kube storm {r.seconds:.0f}s"
    gone = s.get("gone_events", 0) + s.get("gone_http", 0) + s.get("gone_lists", 0)
    rows_ = [
        Row(f"{t}: checkpoints clean (store and /metrics, both configs)", clean, n, "checks", "checkpoints in all",
            "all", clean == n),
        Row(f"{t}: stale pods, worst checkpoint", r.worst("stale"), None, "pods", "", "0", r.worst("stale") == 0),
        Row(f"{t}: missing pods, worst checkpoint", r.worst("missing"), None, "pods", "", "0",
            r.worst("missing") == 0),
        Row(f"{t}: mismatched pods, worst checkpoint", r.worst("mismatched"), None, "pods", "", "0",
            r.worst("mismatched") == 0),
        Row(f"{t}: catch-up after churn stops, worst", max(catch, default=float("nan")) * 1e3, None, "ms", "",
            f"<= 60 s, all {n}", len(catch) == n),
        Row(f"{t}: disruptions (drop {storm_counts.get('drop', 0)}, cut mid-event {storm_counts.get('cut', 0)}, "
            f"expire {storm_counts.get('expire', 0)}, compact+drop {storm_counts.get('compact', 0)}, "
            f"+410 list {storm_counts.get('gone_list', 0)}, +410 HTTP watch {storm_counts.get('gone_http', 0)})",
            sum(storm_counts.get(k, 0) for k in KINDS),
            None, "", "", "(informative)"),
        Row(f"{t}: 410 Gone sent (ERROR events {s.get('gone_events', 0)}, HTTP on watch {s.get('gone_http', 0)}, "
            f"on list {s.get('gone_lists', 0)})", gone, None, "", "", "(informative)"),
        Row(f"{t}: deletion bursts while down ({storm_counts.get('burst_deleted', 0)} pods deleted, "
            f"{storm_counts.get('burst_recreated', 0)} re-created)", storm_counts.get("bursts", 0), None, "", "",
            "(informative)"),
        Row(f"{t}: BOOKMARKs asked of the open watches", storm_counts.get("bookmarks", 0), None, "", "",
            "(informative)"),
        Row(f"{t}: pod changes made (add {storm_counts.get('added', 0)}, modify {storm_counts.get('modified', 0)}, "
            f"delete {storm_counts.get('deleted', 0)})",
            sum(storm_counts.get(k, 0) for k in ("added", "modified", "deleted")), None, "", "", "(informative)"),
    ]
    for name in r.relists:
        e = r.events[name]
        rows_.append(Row(f"{t}: {name} ({r.scopes[name]} watch{'es' if r.scopes[name] > 1 else ''}): relists",
                         r.relists[name], None, "", "", "(informative)"))
        rows_.append(Row(f"{t}: {name}: events applied (malformed {e.get('malformed', 0)}, "
                         f"error {e.get('error', 0)}, bookmark {e.get('bookmark', 0)})", e.get("ok", 0), None, "",
                         "", "(informative)"))
        b = r.breakers[name]
        rows_.append(Row(f"{t}: {name}: kubernetes:api breaker opened (calls: {b.get('success', 0)} ok, "
                         f"{b.get('failure', 0)} failed, {b.get('rejected', 0)} rejected)", b["opened"], None, "", "",
                         "(informative)"))
    scopes = sum(r.scopes.values())
    rows_ += [
        Row(f"{t}: peak watcher threads", r.peak_watcher_threads, scopes, "", "scopes (1 thread each)", "== scopes",
            r.peak_watcher_threads == scopes),
        Row(f"{t}: peak watch connections at the server (open at once)", r.server["peak_watches"], scopes, "",
            "scopes", "(informative)"),
        Row(f"{t}: peak TCP connections of the exporter to the API", r.peak_connections, None, "", "",
            "(informative)"),
        Row(f"{t}: threads after stop", r.threads[1], r.threads[0], "", "before start", "<= before",
            r.threads[1] <= r.threads[0]),
        Row(f"{t}: TCP connections to the API after stop", r.connections_after, None, "", "", "0",
            r.connections_after == 0),
        Row(f"{t}: RSS at the end", r.rss_mib[1], r.rss_mib[0], "MiB", "after the initial sync", "(informative)"),
        Row(f"{t}: RSS growth over the second half", r.rss_trend[-1] - r.rss_trend[(len(r.rss_trend) - 1) // 2]
            if r.rss_trend else float("nan"), None, "MiB", "", "(informative)"),
    ]
    return rows_


def main() -> None:
    import sys

    from bench.common import format_table

    parser = argparse.ArgumentParser(prog="python -m bench.kube_storm", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="storm time (default 300)")
    parser.add_argument("--checkpoint-every", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--rate", type=float, default=60.0, help="pod changes per second")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args()
    result = storm(args.seconds, checkpoint_every=args.checkpoint_every, seed=args.seed, rate=args.rate,
                   progress=None if args.quiet else lambda line: print(line, file=sys.stderr, flush=True))
    for check in result.checks:
        for example in check.store.examples + check.metrics.examples:
            print(f"{check.at:.0f}s {check.watcher}: {example}", file=sys.stderr)
    print(format_table(result_rows(result)))


if __name__ == "__main__":
    main()
