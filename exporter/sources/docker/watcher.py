"""DockerWatcher: list once, then follow the engine's event stream; reconnect without loss.

The reflector loop (client-go): connect -> replay missed events (`since` the last one seen,
`until` now) -> relist and reconcile (containers removed meanwhile disappear) -> stream events
from `now`. On any error: mark the source down, back off (library back-off + breaker), resume.
No request is sent per scrape; every request is a GET.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Iterable

import docker
import orjson

from exporter.resilience import FullJitter, ResilienceRegistry
from exporter.sources.reconnect import run_sessions
from exporter.sources.stream import event_lines, log_connection
from exporter.sources.docker.events import (CONTAINER_ACTIONS, NETWORK_ACTIONS, PODMAN_FILTER_ACTIONS, DockerEvent,
                                            MalformedEvent, parse_event)
from exporter.sources.timestamps import parse_timestamp
from exporter.sources.docker.cgroup import OomKillCounter
from exporter.sources.docker.life import Life
from exporter.sources.docker.lifecycle import DockerLifecycle
from exporter.state import ContainerRecord, Phase, Reason, StateStore

log = logging.getLogger(__name__)
_decode = orjson.loads
SOURCE = "docker"
_ACTIONS = frozenset(CONTAINER_ACTIONS)
_BY_INSPECT = frozenset({"create", "update", "destroy"})  # actions not applied by the lifecycle alone
SETTLE_EVERY = 15.0  # seconds between checks of what no event announces (settle)
# The engine stamps an event before it takes the lock that publishes it, so under load its stream
# is not in time order across containers (seen: 0.3 s out of order with 15 containers OOM-killed
# at once; 2 s is the margin). An event is a replay if it was seen in the last REPLAY_WINDOW, and a reconnect
# replays from REPLAY_WINDOW before the newest event seen.
REPLAY_WINDOW_NS = 2_000_000_000


def _since(t: float) -> str:
    return f"{t:.9f}"


class DockerWatcher:
    """One engine's containers in the state store, kept current from its event stream."""

    name = SOURCE

    def __init__(self, store: StateStore, registry: ResilienceRegistry, *, host: str, base_url: str | None,
                 max_containers: int = 5000, label_allowlist: tuple[str, ...] = (),
                 reconnect_max_backoff: float = 30.0, cgroup_root: str = "/sys/fs/cgroup",
                 clock: Callable[[], float] = time.time, client_factory: Callable[[], Any] | None = None) -> None:
        self.store = store
        self.lifecycle = DockerLifecycle(host, label_allowlist=label_allowlist)
        self._reduce = self.lifecycle.apply
        self.max_containers = max_containers
        self.breaker = registry.breaker("docker:engine")
        self.backoff = FullJitter(0.5, reconnect_max_backoff)
        self.clock = clock
        self.oom_counter = OomKillCounter(cgroup_root) if cgroup_root else None
        self._client_factory = client_factory or (lambda: docker.APIClient(base_url=base_url, version="auto", timeout=30))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._client: Any = None
        self._last_nano = 0                 # newest event time applied
        self._recent: set[tuple[int, str, str]] = set()    # (time, id, action) of the last REPLAY_WINDOW
        self._recent_order: deque[tuple[int, str, str]] = deque()
        self._clock_offset = 0.0  # engine clock - our clock, measured at each connect
        self.engine = ""          # "docker" or "podman", from /version at each connect
        self._ids: set[str] = set()
        self._dropped: set[str] = set()  # containers not tracked because of max_containers
        self._up: bool | None = None
        self.syncs = 0  # completed list+inspect passes: 1 after start, +1 per reconnect
        self.rechecks = 0  # overdue restarts asked of the engine (see settle)
        self.kernel_ooms = 0  # OOM kills booked from the kernel's cgroup count (see _kernel_oom)
        # Events, relists and the settle thread's re-inspects change records one at a time, so an
        # inspect is never applied between an event it already shows and that event.
        self._apply = threading.RLock()
        store.register_source(SOURCE)

    # -- lifecycle of the watcher ----------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="docker-watcher", daemon=True)
        self._thread.start()
        threading.Thread(target=self._settle_loop, name="docker-settle", daemon=True).start()

    def _settle_loop(self) -> None:
        while not self._stop.wait(SETTLE_EVERY):
            self.settle()

    def stop(self) -> None:
        self._stop.set()
        self._close_stream()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # already closed by the engine going away
                pass

    def _run(self) -> None:
        run_sessions(self._session, stop=self._stop, backoff=self.backoff, connected=lambda: bool(self._up),
                     down=lambda problem, delay: self._down(problem, delay))
        self._set_up(False, "stopped")

    def _down(self, problem: str, delay: float) -> None:
        self.store.count_source_error(SOURCE)
        self._set_up(False, problem, retry_in=round(delay, 2))

    def _set_up(self, up: bool, problem: str = "", **fields: object) -> None:
        self.store.set_source(SOURCE, up=up)
        log_connection(log, SOURCE, self._up, up, problem, **fields)
        self._up = up

    # -- one connected session ---------------------------------------------------------------
    def _session(self) -> None:
        client = self._client = self.breaker.call(self._connect)
        now = self.clock()
        if self.engine == "podman":
            # Podman 4 answers a `since`+`until` replay with nothing: open the stream from the last
            # event seen before the relist; what the relist already shows is recognised as such
            # (its events are stamped before the inspect was sent).
            since = (self._last_nano - REPLAY_WINDOW_NS) / 1e9 if self._last_nano else now
            self._stream = client.events(since=_since(since), filters=self._filters(), decode=False)
            self._sync(client)
        else:
            if self._last_nano:
                since = (self._last_nano - REPLAY_WINDOW_NS) / 1e9
                self._consume(client.events(since=_since(since), until=_since(now),
                                            filters=self._filters(), decode=False))
            self._sync(client)
            self._stream = client.events(since=_since(now), filters=self._filters(), decode=False)
        if self._stop.is_set():
            self._close_stream()
            return
        self._consume(self._stream)

    def _sync(self, client: Any) -> None:
        """Relist, then mark the source synced and up."""
        with self._apply:
            self._relist(client)
        self.syncs += 1
        self.store.set_source(SOURCE, synced=True)
        self._set_up(True, containers=len(self._ids), engine=self.engine)

    def _connect(self) -> Any:
        client = self._client_factory()
        client.ping()
        self._clock_offset = self._engine_clock_offset(client)
        self._detect_engine(client)
        return client

    def _detect_engine(self, client: Any) -> None:
        """Docker or Podman (its /version names a "Podman Engine" component): logged once, exported."""
        try:
            version = client.version() or {}
        except Exception:
            return
        components = {c.get("Name", ""): c.get("Version", "") for c in version.get("Components") or []
                      if isinstance(c, dict)}
        engine, release = ("podman", components["Podman Engine"]) if "Podman Engine" in components else (
            "docker", components.get("Engine", version.get("Version", "")))
        if engine != self.engine:
            log.info("container engine detected", extra={"fields": {"engine": engine, "version": release}})
        self.engine = engine
        self.store.set_source(SOURCE, engine=engine, engine_version=str(release))

    def _engine_clock_offset(self, client: Any) -> float:
        """Engine clock minus ours, erring early: event times say what an inspect already shows."""
        try:
            engine = parse_timestamp((client.info() or {}).get("SystemTime"))
        except Exception:  # an engine without /info's SystemTime: assume one clock (a local socket)
            return 0.0
        return 0.0 if engine is None else engine - self.clock()

    @staticmethod
    def _filters() -> dict[str, list[str]]:
        return {"type": ["container", "network"],
                "event": [*CONTAINER_ACTIONS, *PODMAN_FILTER_ACTIONS, *NETWORK_ACTIONS]}

    def _relist(self, client: Any) -> None:
        """List every container, inspect each once, drop records of containers that are gone."""
        # Only the ids outlive the list: its summaries, held through every inspect,
        # left allocator arenas the records then filled beside them (+1.9 MiB with 1,000 containers).
        listed = [item.get("Id") for item in client.containers(all=True)]
        ids = []
        for cid in listed:
            if not isinstance(cid, str):
                continue
            if self._inspect_into_store(client, cid):
                ids.append(cid)
        self.store.retain(ids, source=SOURCE)
        self._ids = set(ids)
        if self.oom_counter is not None:
            self.oom_counter.forget(self._ids)

    def _inspect_into_store(self, client: Any, cid: str, *, state: bool = True) -> bool:
        """Inspect one container into the store; `state=False` takes its identity and config only."""
        if cid in self._dropped and len(self._ids) >= self.max_containers:
            return False  # over the cap: no inspect per event either
        sent_at = self.clock() + self._clock_offset
        try:
            data = client.inspect_container(cid)
        except docker.errors.NotFound:
            return False
        old = self.store.get(cid)
        if old is None and len(self._ids) >= self.max_containers:
            if cid not in self._dropped:  # count each container once, not each of its events
                self._dropped.add(cid)
                self.store.count_dropped(SOURCE)
            return False
        self.store.put(self.lifecycle.from_inspect(data, old, at=sent_at, state=state))
        self._ids.add(cid)
        return True

    # -- events ------------------------------------------------------------------------------
    def _consume(self, chunks: Iterable[bytes]) -> None:
        for raw in event_lines(chunks):
            if self._stop.is_set():
                return
            self.handle_line(raw)

    def handle_line(self, line: bytes | str) -> None:
        """Decode and apply one event line; malformed ones are counted and skipped."""
        try:
            event = parse_event(_decode(line))
        except (ValueError, MalformedEvent) as exc:
            self.store.count_event(SOURCE, "malformed")
            log.debug("malformed docker event", extra={"fields": {"err": exc}})
            return
        with self._apply:
            self._handle(event)

    def handle(self, event: DockerEvent) -> None:
        """Apply one event; runs per event, so it stays lean (see bench/docker_events.py)."""
        with self._apply:
            self._handle(event)

    def _handle(self, event: DockerEvent) -> None:
        stamp, cid, action = event.time_nano, event.container_id, event.action
        seen = (stamp, cid, action)
        recent = self._recent
        if seen in recent or stamp < self._last_nano - REPLAY_WINDOW_NS:
            self.store.count_event(SOURCE, "duplicate")  # replayed after a reconnect
            return
        # Keep the events of the last REPLAY_WINDOW to recognise their replays.
        recent.add(seen)
        order = self._recent_order
        order.append(seen)
        if stamp > self._last_nano:
            self._last_nano = stamp
            horizon = stamp - REPLAY_WINDOW_NS
            while order[0][0] < horizon:
                recent.discard(order.popleft())
        if event.type == "network":
            self._network(event)
            return
        if action not in _ACTIONS:
            self.store.count_event(SOURCE, "ignored")
            return
        store = self.store
        if action not in _BY_INSPECT and store.apply_event(cid, self._reduce, event, source=SOURCE) is not None:
            return  # the common case: a known container's record changed under the store's lock, the event counted
        if store.get(cid) is None:
            if action == "destroy":
                self._dropped.discard(cid)
            # A container adopted at its `create` takes its config only: every event from then on follows.
            if action == "destroy" or not (self._adopt(cid, state=action != "create")
                                           or (action == "create" and self._adopt_from_event(event))):
                store.count_event(SOURCE, "ignored")
                return
        if action == "update":  # restart policy or limits changed: inspect its config again
            self._adopt(cid, state=False)
        elif action == "destroy":
            self.lifecycle.apply(event, store.get(cid))  # type: ignore[arg-type]
            store.remove(cid)
            self._ids.discard(cid)
            if self.oom_counter is not None:
                self.oom_counter.forget_one(cid)
        else:  # a create of a known container, or a container adopted just now
            store.apply_event(cid, self._reduce, event, source=SOURCE)
            return
        store.count_event(SOURCE, "ok")

    def _adopt_from_event(self, event: DockerEvent) -> bool:
        """A container gone before its inspect (a short `--rm` run): tracked from its events alone
        (no config: restart policy no, no memory limit known) until its `destroy`."""
        if not event.name or len(self._ids) >= self.max_containers:
            return False
        self.store.put(self.lifecycle.from_event(event))
        self._ids.add(event.container_id)
        return True

    def _adopt(self, cid: str, *, state: bool = True) -> bool:
        """An event for a container we have not listed yet (created meanwhile): inspect it once."""
        try:
            return self._inspect_into_store(self._client, cid, state=state)
        except Exception as exc:
            log.debug("cannot inspect new container", extra={"fields": {"id": cid[:12], "err": exc}})
            return False

    def _network(self, event: DockerEvent) -> None:
        """A never-started container losing its network is how a failed start shows: inspect it."""
        record = self.store.get(event.container_id)
        if record is not None and record.reason is Reason.CREATED and record.phase is Phase.WAITING:
            self._adopt(event.container_id)
            self.store.count_event(SOURCE, "ok")
        else:
            self.store.count_event(SOURCE, "ignored")

    def settle(self) -> None:
        """Time-driven changes no event announces: crash loops ending after 10 quiet minutes, and
        restarts the policy scheduled that never started (asked of the engine: see
        DockerLifecycle.restart_overdue), and OOM kills only the kernel counted (cgroup.py)."""
        now = self.clock()
        engine_now = now + self._clock_offset  # a restart is due on the engine's clock
        counter = self.oom_counter
        for record in self.store.records():
            if record.source.value != SOURCE:
                continue
            if counter is not None and record.phase is Phase.RUNNING:
                self._kernel_oom(counter, record)
            if self._up and self._client is not None and self.lifecycle.restart_overdue(record, engine_now):
                with self._apply:  # asked again under the lock: an event may have brought the start
                    current = self.store.get(record.key)
                    if current is not None and self.lifecycle.restart_overdue(current, engine_now):
                        self.rechecks += 1
                        self._adopt(record.key)
            elif record.reason is Reason.CRASH_LOOP_BACK_OFF:
                self.store.update(record.key, lambda r: self.lifecycle.settle(r, now),
                                  message="crash loop over: ran 10 minutes without crashing")

    def _kernel_oom(self, counter: OomKillCounter, record: ContainerRecord) -> None:
        """Book the current run's OOM kill if its cgroup counted one the engine did not report."""
        life = record.engine
        if not isinstance(life, Life) or life.run.oom:
            return
        found = counter.read(record.key)
        if not found:
            return
        kills, created = found
        if kills:
            with self._apply:  # after the events that may already have reported it
                before = self.store.get(record.key)
                after = self.store.update(record.key, lambda r: self.lifecycle.kernel_oom(r, created + self._clock_offset),
                                          message="OOM kill counted by the kernel (cgroup oom_kill), not reported by the engine")
                if after is not before:  # kernel_oom changes a record only to book the kill
                    self.kernel_ooms += 1
