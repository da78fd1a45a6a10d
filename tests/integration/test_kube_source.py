"""The Kubernetes source against the fake API server (tests/integration/fake_kube.py), through the
official client: list, chunked watch, bookmarks, 410 Gone, dropped connections."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

from exporter.config import load
from exporter.metrics import ContainerCollector, Exposition, SelfCollector
from exporter.resilience import ResilienceRegistry
from exporter.sources import build_sources
from exporter.sources.kubernetes import KubernetesWatcher
from exporter.sources.kubernetes.pods import container_key
from exporter.state import ContainerRecord, Phase, Reason, StateStore
from tests.harness import wait_until
from tests.integration.fake_kube import FakeKubeApi, load_pod

POD = "web-7d4b9c8f6d-x2x9q"
APP = container_key("shop", POD, "app")


class Harness:
    def __init__(self, api: FakeKubeApi) -> None:
        self.api = api
        self.store = StateStore()
        self.registry = ResilienceRegistry()
        self.exposition = Exposition([ContainerCollector(self.store), SelfCollector(self.store)])
        self.watchers: list[KubernetesWatcher] = []

    def watcher(self, **options: Any) -> KubernetesWatcher:
        from kubernetes.client import ApiClient

        watcher = KubernetesWatcher(self.store, self.registry, host="cluster-a",
                                    api_factory=lambda: ApiClient(self.api.configuration()),
                                    reconnect_max_backoff=0.3, watch_timeout=30, request_timeout=5, **options)
        self.watchers.append(watcher)
        watcher.start()
        wait_until(self.store.ready, message="kubernetes source synced")
        return watcher

    def wait(self, key: str, predicate: Callable[[ContainerRecord], bool], message: str) -> ContainerRecord:
        def check() -> ContainerRecord | None:
            record = self.store.get(key)
            return record if record is not None and predicate(record) else None
        return wait_until(check, message=f"{key}: {message} (now {self.store.get(key)})")

    def up(self) -> bool:
        return next(s.up for s in self.store.sources() if s.name == "kubernetes")

    def metrics(self) -> str:
        return self.exposition.render().decode()


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    server = FakeKubeApi().start()
    yield server
    server.close()


@pytest.fixture
def harness(api: FakeKubeApi) -> Iterator[Harness]:
    h = Harness(api)
    yield h
    for watcher in h.watchers:
        watcher.stop()


def test_image_pull_failure_progresses_from_err_image_pull_to_back_off(harness: Harness) -> None:
    harness.api.add(load_pod("running"))
    harness.watcher()
    harness.wait(APP, lambda r: r.reason is Reason.RUNNING, "Running after the list")
    harness.api.modify(load_pod("err-image-pull"))
    harness.wait(APP, lambda r: r.reason is Reason.ERR_IMAGE_PULL, "ErrImagePull")
    harness.api.modify(load_pod("image-pull-backoff"))
    record = harness.wait(APP, lambda r: r.reason is Reason.IMAGE_PULL_BACK_OFF, "ImagePullBackOff")
    assert record.failures == {Reason.ERR_IMAGE_PULL: 1, Reason.IMAGE_PULL_BACK_OFF: 1} and not record.terminal
    text = harness.metrics()
    identity = f'source="kubernetes",host="worker-2",namespace="shop",pod="{POD}",container="app"'
    assert 'image="registry.example.com/shop/web:1.8.3-typo"} 1' in text  # on workload_container_info only
    assert f'workload_container_waiting_reason{{{identity},reason="ImagePullBackOff"}} 1' in text
    assert f'workload_container_failures_total{{{identity},reason="ErrImagePull"}} 1' in text


def test_err_image_never_pull_is_terminal_at_once_with_its_remedy(harness: Harness) -> None:
    harness.watcher()
    harness.api.add(load_pod("err-image-never-pull"))
    record = harness.wait(APP, lambda r: True, "the pod's first event")
    assert (record.reason, record.terminal) == (Reason.ERR_IMAGE_NEVER_PULL, True)
    assert record.remedy.startswith("The pull policy is Never")
    assert 'workload_container_terminal{source="kubernetes"' in harness.metrics()


def test_crash_loop_back_off_counts_restarts_and_the_unseen_crash(harness: Harness) -> None:
    harness.api.add(load_pod("running"))
    harness.watcher()
    harness.api.modify(load_pod("crash-loop-backoff"))  # restartCount 0 -> 3, lastState Error
    record = harness.wait(APP, lambda r: r.reason is Reason.CRASH_LOOP_BACK_OFF, "CrashLoopBackOff")
    assert (record.restarts, record.last_exit_code, record.last_terminated_reason) == (3, 1, Reason.ERROR)
    assert record.failures == {Reason.CRASH_LOOP_BACK_OFF: 1, Reason.ERROR: 1}
    assert f'workload_container_restarts_total{{source="kubernetes",host="worker-2",namespace="shop",pod="{POD}",' \
           'container="app"} 3' in harness.metrics()


def test_oom_kill_between_two_scrapes_is_counted_from_last_state(harness: Harness) -> None:
    harness.api.add(load_pod("running"))
    harness.watcher()
    harness.api.modify(load_pod("oom-killed-last-state"))  # already running again, restartCount 1
    record = harness.wait(APP, lambda r: r.restarts == 1, "restartCount 1")
    assert (record.phase, record.oom_kills, record.failures) == (Phase.RUNNING, 1, {Reason.OOM_KILLED: 1})
    assert record.last_terminated_reason is Reason.OOM_KILLED and record.last_exit_code == 137
    assert 'workload_container_last_terminated_reason{source="kubernetes"' in harness.metrics()


def test_init_container_failure_is_reported_on_the_init_container(harness: Harness) -> None:
    harness.watcher()
    harness.api.add(load_pod("init-crash-loop"))
    init = harness.wait(container_key("shop", POD, "migrate"), lambda r: True, "the init container")
    assert (init.reason, init.restarts, init.last_exit_code) == (Reason.CRASH_LOOP_BACK_OFF, 2, 2)
    assert init.message.startswith("init container:")
    assert harness.wait(APP, lambda r: True, "app").reason is Reason.POD_INITIALIZING


def test_evicted_pod_and_deletion_remove_nothing_early_and_everything_at_delete(harness: Harness) -> None:
    harness.api.add(load_pod("running"))
    harness.watcher()
    harness.api.modify(load_pod("evicted"))
    harness.wait(APP, lambda r: r.reason is Reason.EVICTED, "Evicted")
    harness.api.delete("shop", POD)
    wait_until(lambda: len(harness.store) == 0, message="the deleted pod's records to go")
    assert POD not in harness.metrics()


def test_pod_deleted_during_a_disconnect_disappears_and_source_up_tells_the_truth(harness: Harness) -> None:
    api = harness.api
    api.add(load_pod("running"))
    api.add(load_pod("running", name="web-7d4b9c8f6d-gone1"))
    watcher = harness.watcher()
    wait_until(harness.up, message="source up once the watch is answered (synced comes first, from the list)")
    assert 'resilience_exporter_source_up{source="kubernetes"} 1' in harness.metrics()
    api.refusing = 503
    api.drop()
    wait_until(lambda: not harness.up(), message="source down while the API server refuses")
    assert 'resilience_exporter_source_up{source="kubernetes"} 0' in harness.metrics()
    # each refused list/watch session is one error (ResilienceSourceErrors)
    before = harness.store.sources()[0].errors
    wait_until(lambda: harness.store.sources()[0].errors >= before + 2, message="each refused session counted")
    assert 'resilience_exporter_source_errors_total{source="kubernetes"} ' in harness.metrics()
    api.delete("shop", "web-7d4b9c8f6d-gone1")
    api.modify(load_pod("crash-loop-backoff"))
    api.refusing = 0
    harness.wait(APP, lambda r: r.reason is Reason.CRASH_LOOP_BACK_OFF, "the change made while away")
    wait_until(lambda: harness.store.get(container_key("shop", "web-7d4b9c8f6d-gone1", "app")) is None,
               message="the pod deleted while away to go")
    wait_until(harness.up, message="source up again")
    assert watcher.relists == 1  # resumed from the resourceVersion: no relist needed
    resumed = api.watches()[-1].query["resourceVersion"]
    assert int(resumed) >= 1002  # the last version seen before the drop, not "0"


def test_watch_expiry_relists_and_reconciles_deleted_pods(harness: Harness) -> None:
    api = harness.api
    api.add(load_pod("running"))
    api.add(load_pod("running", name="web-7d4b9c8f6d-gone2"))
    watcher = harness.watcher()
    api.refusing = 503
    api.drop()
    wait_until(lambda: not harness.up(), message="source down")
    api.delete("shop", "web-7d4b9c8f6d-gone2")
    api.modify(load_pod("oom-killed-last-state"))
    api.compact()  # the deletion event is gone from history: only a relist can tell
    api.refusing = 0
    wait_until(lambda: watcher.relists == 2, message="a relist after 410 Gone")
    wait_until(lambda: harness.store.get(container_key("shop", "web-7d4b9c8f6d-gone2", "app")) is None,
               message="the pod deleted meanwhile to go")
    record = harness.wait(APP, lambda r: r.restarts == 1, "the relisted state")
    assert record.oom_kills == 1  # the OOM kill during the gap is still counted, once
    status = next(s for s in harness.store.sources() if s.name == "kubernetes")
    assert status.events.get("error") == 1  # the ERROR event with Status code 410
    # client-go's relistResourceVersion(): the first list from the watch cache ("0"), the relist at
    # the last synced version (the cache serves it, no older); "" only if that one is refused.
    lists = [r.query.get("resourceVersion") for r in api.requests if not r.watch]
    last_watched = [r.query["resourceVersion"] for r in api.requests if r.watch][-2]
    assert lists == ["0", last_watched] and int(last_watched) > 0, lists


def test_a_first_list_from_a_lagging_watch_cache_catches_up_through_the_watch(harness: Harness) -> None:
    api = harness.api
    gone = container_key("shop", "web-7d4b9c8f6d-gone4", "app")
    api.add(load_pod("running"))
    api.add(load_pod("running", name="web-7d4b9c8f6d-gone4"))
    api.lag_cache()  # the API server's watch cache stops here: "0" lists are answered from it
    cached_version = str(api.resource_version)
    api.modify(load_pod("oom-killed-last-state"))
    api.delete("shop", "web-7d4b9c8f6d-gone4")
    watcher = harness.watcher()
    record = harness.wait(APP, lambda r: r.oom_kills == 1, "the OOM kill made after the cached state")
    assert record.restarts == 1
    wait_until(lambda: harness.store.get(gone) is None, message="the pod deleted after the cached state to go")
    lists = [r.query.get("resourceVersion") for r in api.requests if not r.watch]
    assert lists == ["0"] and api.watches()[0].query["resourceVersion"] == cached_version
    assert watcher.relists == 1  # the watch from the cached version brought the rest: no relist


def test_a_relist_refused_as_expired_lists_the_latest(harness: Harness) -> None:
    api = harness.api
    api.add(load_pod("running"))
    watcher = harness.watcher()
    wait_until(lambda: api.watches(), message="the watch")
    api.gone_lists = 1  # the list at the last version is refused too: then a consistent read
    api.modify(load_pod("crash-loop-backoff"))
    api.expire()  # the open watch ends with 410: relist
    harness.wait(APP, lambda r: r.reason is Reason.CRASH_LOOP_BACK_OFF, "the change after the compaction")
    wait_until(lambda: watcher.relists == 2, message="the relist")
    lists = [r.query.get("resourceVersion") for r in api.requests if not r.watch]
    assert lists[0] == "0" and lists[-1] == "" and len(lists) == 3 and lists[1] not in ("", "0"), lists


def test_bookmarks_move_the_resource_version_a_reconnect_resumes_from(harness: Harness) -> None:
    watcher = harness.watcher()
    mark = harness.api.bookmark()
    wait_until(lambda: watcher.scopes[0].resource_version == str(mark), message="the bookmark's resourceVersion")
    harness.api.drop()
    wait_until(lambda: len(harness.api.watches()) >= 2, message="a new watch")
    query = harness.api.watches()[-1].query
    assert query["resourceVersion"] == str(mark) and query["allowWatchBookmarks"] == "true"
    status = next(s for s in harness.store.sources() if s.name == "kubernetes")
    assert status.events.get("bookmark") == 1


def test_node_mode_sends_the_field_selector_and_sees_only_its_node(harness: Harness) -> None:
    harness.api.add(load_pod("running", name="here", node="worker-2"))
    harness.api.add(load_pod("running", name="elsewhere", node="worker-9"))
    harness.watcher(node="worker-2")
    harness.api.add(load_pod("err-image-pull", name="later-elsewhere", node="worker-9"))
    harness.api.add(load_pod("err-image-pull", name="later-here", node="worker-2"))
    harness.wait(container_key("shop", "later-here", "app"), lambda r: True, "the new pod on this node")
    assert {r.pod for r in harness.store.records()} == {"here", "later-here"}
    assert all(r.query.get("fieldSelector") == "spec.nodeName=worker-2" for r in harness.api.requests)
    assert {r.watch for r in harness.api.requests} == {True, False}  # the list and the watch both


def test_namespaces_and_label_selector_scope_list_and_watch(harness: Harness) -> None:
    app = {"app.kubernetes.io/name": "web"}
    harness.api.add(load_pod("running", name="a", namespace="shop", labels=app))
    harness.api.add(load_pod("running", name="b", namespace="pay", labels=app))
    harness.api.add(load_pod("running", name="c", namespace="kube-system", labels=app))
    harness.api.add(load_pod("running", name="d", namespace="shop", labels={"app.kubernetes.io/name": "db"}))
    harness.watcher(namespaces=["shop", "pay"], label_selector="app.kubernetes.io/name=web")
    assert {(r.namespace, r.pod) for r in harness.store.records()} == {("shop", "a"), ("pay", "b")}
    assert {r.path for r in harness.api.requests} == {"/api/v1/namespaces/shop/pods", "/api/v1/namespaces/pay/pods"}
    assert {r.query["labelSelector"] for r in harness.api.requests} == {"app.kubernetes.io/name=web"}


def test_kubeconfig_and_context_from_config_reach_the_api_server(api: FakeKubeApi, tmp_path: Path) -> None:
    api.add(load_pod("crash-loop-backoff"))
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "fake", "cluster": {"server": api.url}},
                     {"name": "nowhere", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester"}},
                     {"name": "other", "context": {"cluster": "nowhere", "user": "tester"}}]}))
    config = load(flags={"kubernetes.enabled": "true", "kubernetes.kubeconfig": str(kubeconfig),
                         "kubernetes.context": "fake", "docker.enabled": "false"})
    store = StateStore()
    (source,) = build_sources(store, ResilienceRegistry(), host=config.host, docker=config.docker,
                              kubernetes=config.kubernetes)
    source.start()
    try:
        wait_until(store.ready, message="synced through the kubeconfig's context")
        assert store.get(APP).reason is Reason.CRASH_LOOP_BACK_OFF  # type: ignore[union-attr]
    finally:
        source.stop()


def test_a_server_answering_410_at_once_again_and_again_is_backed_off(harness: Harness) -> None:
    api = harness.api
    api.add(load_pod("running"))
    watcher = harness.watcher()
    with api.cond:  # the open watch and every watch from any version the lists give: 410 at once
        api.compacted = 10**12
        api.cond.notify_all()
    start, before, relists = time.monotonic(), len(api.watches()), watcher.relists
    wait_until(lambda: watcher.relists >= relists + 8, timeout=20, message="eight relists after 410s")
    rate = (len(api.watches()) - before) / (time.monotonic() - start)
    assert rate <= 40, rate  # watches/s; without a back-off ~1,000/s (a list and a watch every ms or so)
