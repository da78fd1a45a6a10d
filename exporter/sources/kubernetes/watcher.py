"""KubernetesWatcher: the reflector loop (client-go) over pods, one per watched namespace scope.

list -> remember resourceVersion -> watch from it with bookmarks -> BOOKMARK moves the
resourceVersion on -> ERROR 410 / HTTP 410 (expired): relist and reconcile (pods deleted
meanwhile disappear) -> any other error: source down, back off (FullJitter + the registry
breaker `kubernetes:api`), resume the watch from the last resourceVersion.
The list's resourceVersion is client-go's `relistResourceVersion()`: "0" for the first list (any
state the API server's watch cache holds: no quorum read of etcd from every node at once), the
last synced one for a relist (served from the cache, no older than what we had), and "" (the
latest, a consistent read) only after a list at that version was itself refused as expired.
Responses are read raw (`_preload_content=False`) and decoded into plain dicts holding only the
fields the mapping reads (wire.py): the client's model deserialization costs more than
everything else (bench/kube.py).
Lines are split from the raw chunks as bytes (sources/stream.py), not by kubernetes.watch.
Every request is a GET on pods: list and watch only.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from kubernetes.client import ApiException, CoreV1Api

from exporter.resilience import FullJitter, ResilienceRegistry
from exporter.sources.reconnect import run_sessions
from exporter.sources.stream import event_lines, log_connection
from exporter.sources.kubernetes.pods import PodMapper, pod_name
from exporter.sources.kubernetes.wire import decode_event, decode_list
from exporter.state import StateStore

log = logging.getLogger(__name__)
SOURCE = "kubernetes"
GONE = 410
GATEWAY_TIMEOUT = 504
TOO_LARGE = "ResourceVersionTooLarge"  # the cause of a 504 for a version the cache has not reached
PodId = tuple[str, str]


class WatchExpired(Exception):
    """The resourceVersion is older than the server keeps (410 Gone): relist."""


@dataclass
class Scope:
    """One list+watch: all namespaces ("") or one; its own resourceVersion and connection state."""

    namespace: str = ""
    resource_version: str = ""
    up: bool | None = None
    synced: bool = False
    relist: bool = False       # the watch expired (410): list again before watching
    unavailable: bool = False  # a list at resource_version was refused as expired: list the latest

    def holds(self, namespace: str) -> bool:
        return not self.namespace or namespace == self.namespace


class KubernetesWatcher:
    """Pods of the watched namespaces (optionally one node) in the state store, kept current."""

    name = SOURCE

    def __init__(self, store: StateStore, registry: ResilienceRegistry, *, host: str,
                 api_factory: Callable[[], Any], namespaces: Iterable[str] = (), label_selector: str = "",
                 node: str = "", max_containers: int = 20000, reconnect_max_backoff: float = 30.0,
                 watch_timeout: int = 300, request_timeout: float = 30.0,
                 label_allowlist: tuple[str, ...] = ()) -> None:
        self.store = store
        self.mapper = PodMapper(host, label_allowlist=label_allowlist)
        self.breaker = registry.breaker("kubernetes:api")
        self.backoff = FullJitter(min(0.5, reconnect_max_backoff), reconnect_max_backoff)
        self.scopes = [Scope(ns) for ns in dict.fromkeys(namespaces)] or [Scope()]
        self.selectors = {k: v for k, v in (("label_selector", label_selector),
                                            ("field_selector", f"spec.nodeName={node}" if node else "")) if v}
        self.max_containers = max_containers
        self.watch_timeout = watch_timeout
        self.request_timeout = request_timeout
        self._api_factory = api_factory
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._responses: set[Any] = set()
        self._lock = threading.Lock()         # the pod index; scopes run on their own threads
        self._pods: dict[PodId, tuple[str, ...]] = {}
        self._dropped: set[PodId] = set()
        self._containers = 0
        self.relists = 0  # completed lists: 1 per scope after start, +1 per expiry
        store.register_source(SOURCE)

    # -- lifecycle of the watcher ----------------------------------------------------------
    def start(self) -> None:
        for scope in self.scopes:
            thread = threading.Thread(target=self._run, args=(scope,), daemon=True,
                                      name=f"kubernetes-watcher-{scope.namespace or 'all'}")
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for response in list(self._responses):
            try:
                response.shutdown()  # unblocks a read in progress (urllib3 >= 2.3)
            except Exception:  # already closed by the server going away
                pass
        for thread in self._threads:
            thread.join(timeout=10)

    def _run(self, scope: Scope) -> None:
        api: list[CoreV1Api] = []  # built once, on the first session

        def session() -> None:
            if not api:
                api.append(CoreV1Api(self._api_factory()))
            self._session(api[0], scope)

        run_sessions(session, stop=self._stop, backoff=self.backoff, connected=lambda: scope.up,
                     down=lambda problem, delay: self._down(scope, problem, delay))
        self._set_up(scope, False, "stopped")

    def _down(self, scope: Scope, problem: str, delay: float) -> None:
        self.store.count_source_error(SOURCE)
        self._set_up(scope, False, problem, retry_in=round(delay, 2))

    def _set_up(self, scope: Scope, up: bool, problem: str = "", **fields: object) -> None:
        was_up, scope.up = scope.up, up
        self.store.set_source(SOURCE, up=all(s.up for s in self.scopes))
        log_connection(log, SOURCE, was_up, up, problem, namespace=scope.namespace or "*", **fields)

    # -- one connected session ---------------------------------------------------------------
    def _session(self, api: CoreV1Api, scope: Scope) -> None:
        expiries = 0  # watches in a row that expired before any event moved the resourceVersion on
        while not self._stop.is_set():
            if not scope.resource_version or scope.relist:
                try:
                    self._relist(api, scope)
                except WatchExpired as exc:
                    if scope.unavailable:
                        raise  # even the latest was refused: a failed session, backed off
                    log.info("kubernetes list at the last resourceVersion expired; listing the latest",
                             extra={"fields": {"namespace": scope.namespace or "*", "err": exc}})
                    scope.unavailable = True
                    continue
            watched_from = scope.resource_version
            try:
                self._watch(api, scope)
            except WatchExpired as exc:
                log.info("kubernetes watch expired; relisting",
                         extra={"fields": {"namespace": scope.namespace or "*", "err": exc}})
                scope.relist = True
                expiries = expiries + 1 if scope.resource_version == watched_from else 1
                if expiries >= 2:  # a server answering 410 at once, again: back off (client-go does)
                    self._stop.wait(self.backoff.delay(expiries - 1))

    def _call(self, api: CoreV1Api, scope: Scope, **kwargs: Any) -> Any:
        """GET the pods of `scope` (list or watch), raw, through the breaker; 410 -> WatchExpired.

        A 410 is an answer (the resourceVersion is too old), not a failure of the API server: it
        must not count towards opening the breaker (one compaction would answer it to every scope).
        """
        def get() -> Any:
            try:
                if scope.namespace:
                    return api.list_namespaced_pod(scope.namespace, _preload_content=False, **self.selectors,
                                                   **kwargs)
                return api.list_pod_for_all_namespaces(_preload_content=False, **self.selectors, **kwargs)
            except ApiException as exc:
                if exc.status == GONE or (exc.status == GATEWAY_TIMEOUT and TOO_LARGE in str(exc.body or "")):
                    return WatchExpired(exc.reason)  # client-go treats "too large" as expired too
                raise
        response = self.breaker.call(get)
        if isinstance(response, WatchExpired):
            raise response
        return response

    def _relist(self, api: CoreV1Api, scope: Scope) -> None:
        """List the scope's pods, apply each, drop the pods that are gone (deleted meanwhile)."""
        asked = "" if scope.unavailable else scope.resource_version or "0"
        body = decode_list(self._call(api, scope, resource_version=asked, _request_timeout=self.request_timeout).data)
        items = list(body.pop("items", None) or ())
        items.reverse()
        listed: set[PodId] = set()
        while items:  # in order, each pod freed once applied: the records made next take its room
            pod = items.pop()
            try:
                ident = pod_name(pod)
                listed.add(ident)  # listed even if unreadable: its last known records stay
                self.apply(pod)
            except (TypeError, ValueError, AttributeError):  # one bad pod must not fail every relist
                self.store.count_event(SOURCE, "malformed")
        with self._lock:  # other scopes' threads change the index meanwhile
            gone = [p for p in self._pods if scope.holds(p[0]) and p not in listed]
        for ident in gone:
            self.delete(ident)
        version = (body.get("metadata") or {}).get("resourceVersion")
        scope.resource_version = version if isinstance(version, str) else ""
        scope.synced, scope.relist, scope.unavailable = True, False, False
        self.relists += 1
        self.store.set_source(SOURCE, synced=all(s.synced for s in self.scopes))

    def _watch(self, api: CoreV1Api, scope: Scope) -> None:
        response = self._call(api, scope, watch=True, resource_version=scope.resource_version,
                              allow_watch_bookmarks=True, timeout_seconds=self.watch_timeout,
                              _request_timeout=(self.request_timeout, self.watch_timeout + self.request_timeout))
        self._set_up(scope, True, pods=len(self._pods))  # connected: only now (a failed retry is no reconnect)
        self._responses.add(response)
        try:
            for line in event_lines(response.stream(amt=None, decode_content=False)):
                if self._stop.is_set():
                    return
                self.handle_line(line, scope)
        finally:
            self._responses.discard(response)
            response.release_conn()

    # -- events ------------------------------------------------------------------------------
    def handle_line(self, line: str | bytes, scope: Scope) -> None:
        """Decode and apply one watch event; malformed ones are counted and skipped."""
        try:
            event = decode_event(line)
            kind, obj = event["type"], event["object"]
            version = obj["metadata"].get("resourceVersion") if kind != "ERROR" else None
        except (ValueError, KeyError, TypeError, AttributeError):
            self.store.count_event(SOURCE, "malformed")
            return
        if kind == "ADDED" or kind == "MODIFIED":
            try:
                self.apply(obj)
            except (TypeError, ValueError, AttributeError):  # a pod we cannot read: skip it, do not
                self.store.count_event(SOURCE, "malformed")   # fail the watch (it would resend it)
                return
        elif kind == "DELETED":
            self.delete(pod_name(obj))
        elif kind == "BOOKMARK":
            self.store.count_event(SOURCE, "bookmark")
        elif kind == "ERROR":
            self.store.count_event(SOURCE, "error")
            code = obj.get("code") if isinstance(obj, dict) else None
            if code == GONE:
                raise WatchExpired(obj.get("message") or "resource version expired")
            raise ApiException(status=code or 0, reason=str(obj.get("message") if isinstance(obj, dict) else obj))
        else:
            self.store.count_event(SOURCE, "ignored")
            return
        if version and isinstance(version, str):  # sent back verbatim on the next watch request
            scope.resource_version = version
        if kind != "BOOKMARK":
            self.store.count_event(SOURCE, "ok")

    def apply(self, pod: dict[str, Any]) -> None:
        """Write the records of one pod; a new pod over the container cap is counted as dropped."""
        ident = pod_name(pod)
        old_keys = self._pods.get(ident)
        if old_keys is None and self._containers >= self.max_containers:
            if ident not in self._dropped:
                self._dropped.add(ident)
                self.store.count_dropped(SOURCE)
            return
        get, put = self.store.get, self.store.put
        records = self.mapper.records(pod, get)
        for record in records:
            if get(record.key) is not record:
                put(record)
        keys = tuple([r.key for r in records])
        if keys != old_keys:
            with self._lock:
                self._pods[ident] = keys
                self._containers += len(keys) - len(old_keys or ())
            for key in set(old_keys or ()) - set(keys):
                self._forget(key)

    def delete(self, ident: PodId) -> None:
        """A deleted pod: all of its container records go."""
        self._dropped.discard(ident)
        with self._lock:
            keys = self._pods.pop(ident, ())
            self._containers -= len(keys)
        for key in keys:
            self._forget(key)

    def _forget(self, key: str) -> None:
        self.mapper.forget(key)
        self.store.remove(key)
