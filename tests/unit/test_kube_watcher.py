"""Watch event handling without a server: results counted, resourceVersion kept, 410 -> relist."""
from __future__ import annotations

import json

import pytest
from kubernetes.client import ApiException

from exporter.resilience import ResilienceRegistry
from exporter.sources.kubernetes.watcher import KubernetesWatcher, Scope, WatchExpired
from exporter.state import StateStore
from tests.integration.fake_kube import load_pod, status_object


def watcher(**options: object) -> tuple[KubernetesWatcher, StateStore]:
    store = StateStore()
    return KubernetesWatcher(store, ResilienceRegistry(), host="h", api_factory=lambda: None, **options), store  # type: ignore[arg-type]


def line(kind: str, obj: object) -> str:
    return json.dumps({"type": kind, "object": obj})


def events(store: StateStore) -> dict[str, int]:
    return store.sources()[0].events


def test_events_are_counted_by_result_and_move_the_resource_version() -> None:
    w, store = watcher()
    scope = Scope()
    pod = load_pod("running")
    pod["metadata"]["resourceVersion"] = "7"
    w.handle_line(line("ADDED", pod), scope)
    w.handle_line(line("BOOKMARK", {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": "9"}}), scope)
    w.handle_line("{not json", scope)
    w.handle_line(line("ADDED", "a string"), scope)
    w.handle_line(json.dumps({"type": "SOMETHING", "object": {"metadata": {}}}), scope)
    odd = load_pod("running", name="odd")
    odd["status"]["containerStatuses"][0]["restartCount"] = "many"
    w.handle_line(line("MODIFIED", odd), scope)
    assert scope.resource_version == "9" and len(store) == 2
    assert events(store) == {"ok": 1, "bookmark": 1, "malformed": 3, "ignored": 1}


def test_error_event_410_asks_for_a_relist_and_others_raise_api_errors() -> None:
    w, _ = watcher()
    with pytest.raises(WatchExpired, match="too old"):
        w.handle_line(line("ERROR", status_object(410, "Expired", "too old resource version: 5 (9)")), Scope())
    with pytest.raises(ApiException) as raised:
        w.handle_line(line("ERROR", status_object(500, "InternalError", "etcd is unhappy")), Scope())
    assert raised.value.status == 500


def test_deleted_event_removes_every_container_of_the_pod() -> None:
    w, store = watcher()
    w.handle_line(line("ADDED", load_pod("init-crash-loop")), Scope())
    assert len(store) == 3
    w.handle_line(line("DELETED", load_pod("init-crash-loop")), Scope())
    assert len(store) == 0


def test_pods_beyond_the_container_cap_are_dropped_and_counted_once() -> None:
    w, store = watcher(max_containers=2)
    w.apply(load_pod("running", name="first"))
    w.apply(load_pod("running", name="second"))
    w.apply(load_pod("crash-loop-backoff", name="second"))
    assert {r.pod for r in store.records()} == {"first"} and store.sources()[0].dropped == 1
    w.delete(("shop", "first"))
    w.apply(load_pod("running", name="second"))
    assert {r.pod for r in store.records()} == {"second"}


def test_node_namespaces_and_selector_become_request_parameters() -> None:
    w, _ = watcher(node="worker-2", namespaces=["a", "b", "a"], label_selector="tier=web")
    assert w.selectors == {"label_selector": "tier=web", "field_selector": "spec.nodeName=worker-2"}
    assert [s.namespace for s in w.scopes] == ["a", "b"]
