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


class ListingApi:
    """The one call `_relist` makes, answering a fixed PodList body (raw, as `_preload_content=False`)."""

    def __init__(self, body: dict) -> None:
        self.data = json.dumps(body).encode()

    def list_pod_for_all_namespaces(self, **_: object) -> "ListingApi":
        return self


def test_relist_skips_an_unreadable_pod_keeps_its_last_records_and_still_syncs() -> None:
    w, store = watcher()
    scope = w.scopes[0]
    known = load_pod("running", name="known")
    w.apply(known)
    broken = load_pod("running", name="known")
    broken["status"]["containerStatuses"][0]["restartCount"] = "many"  # now unreadable
    fine = load_pod("running", name="fine")
    w._relist(ListingApi({"metadata": {"resourceVersion": ["9"]}, "items": [broken, fine, "junk"]}), scope)  # type: ignore[arg-type]
    assert scope.synced and w.relists == 1
    names = sorted({r.pod for r in store.records()})
    assert names == ["fine", "known"]  # the unreadable pod is neither dropped nor changed
    assert events(store).get("malformed") == 2
    assert scope.resource_version == ""  # a non-string resourceVersion is never sent back to the server


def test_watch_event_with_a_non_string_resource_version_does_not_move_it() -> None:
    w, _ = watcher()
    scope = Scope()
    scope.resource_version = "5"
    w.handle_line(line("BOOKMARK", {"metadata": {"resourceVersion": ["9"]}}), scope)
    w.handle_line(line("BOOKMARK", {"metadata": {"resourceVersion": {"v": 9}}}), scope)
    assert scope.resource_version == "5"


class _Pod(dict):  # type: ignore[type-arg]
    """A decoded pod that can be watched for being freed (a plain dict takes no weakref)."""


def test_relist_frees_each_listed_pod_once_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every pod of a 5,000-pod list held until the last was applied kept the whole decoded list
    # resident beside the records made meanwhile: cluster mode 5,000 pods x 2, 111.9 -> 108.6 MiB.
    import gc
    import weakref

    from exporter.sources.kubernetes import watcher as module

    decoded: list[weakref.ref[_Pod]] = []

    def decode_list(data: bytes) -> dict:
        body = json.loads(data)
        body["items"] = [_Pod(pod) for pod in body["items"]]
        decoded.extend(weakref.ref(pod) for pod in body["items"])
        return body

    monkeypatch.setattr(module, "decode_list", decode_list)
    w, store = watcher()
    alive_when_applied: list[int] = []
    applied: list[str] = []
    apply = w.apply

    def watched_apply(pod: dict) -> None:
        gc.collect()
        alive_when_applied.append(sum(ref() is not None for ref in decoded))
        applied.append(pod["metadata"]["name"])
        apply(pod)

    w.apply = watched_apply  # type: ignore[method-assign]
    pods = [load_pod("running", name=f"web-{i}") for i in range(4)]
    w._relist(ListingApi({"metadata": {"resourceVersion": "9"}, "items": pods}), w.scopes[0])  # type: ignore[arg-type]
    assert applied == [f"web-{i}" for i in range(4)]  # in the listed order: over the container cap, the last are dropped
    assert sorted({r.pod for r in store.records()}) == applied
    assert alive_when_applied == [4, 3, 2, 1]  # the one being applied and those still to come
