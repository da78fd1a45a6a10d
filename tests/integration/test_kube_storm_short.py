"""Issue 8, short: ~24 s of bench/kube_storm.py's storm (churn; watch connections dropped, cut
mid-event, expired with 410, compacted under deletion bursts) against the real Kubernetes source,
all-namespaces and namespaced at once: 0 stale, 0 missing, 0 mismatched pods at every checkpoint,
in the store and in /metrics. And the two faults the storm found, each on its own."""
from __future__ import annotations

import logging
from typing import Iterator

import pytest

from bench import kube_storm
from exporter.resilience import BreakerSettings, CircuitState, ResilienceRegistry
from exporter.sources.kubernetes import KubernetesWatcher
from exporter.state import StateStore
from tests.harness import wait_until
from tests.integration.fake_kube import FakeKubeApi, load_pod


def test_storm_leaves_no_stale_missing_or_mismatched_pod_and_no_thread_behind() -> None:
    # seed 6: in its first 12 s a drop, an expiry, a cut mid-event with a deletion burst, a compaction
    # under a burst, an HTTP 410 to the resumed watches (the disruptor's choices are fixed by the seed)
    result = kube_storm.storm(24, checkpoint_every=8, seed=6)
    failures = [(c.at, c.watcher, c.caught_up_s, c.source_up, c.store.examples, c.metrics.examples)
                for c in result.checks if not c.clean]
    assert not failures, failures
    assert len(result.checks) == 6 and {c.watcher for c in result.checks} == {"all-namespaces", "namespaced"}
    assert all(c.pods > 50 for c in result.checks)
    storm, sent = result.server["storm"], result.server["stats"]
    assert all(storm.get(kind) for kind in ("drop", "cut", "expire", "compact", "gone_http")), storm
    assert storm.get("bursts", 0) >= 2 and storm.get("burst_deleted", 0) >= 6, storm
    assert sent.get("cut_mid_event") and sent.get("gone_events") and sent.get("gone_http"), sent
    # every expiry, compaction and 410 made both configurations relist (plus the first list of each scope)
    assert result.relists["all-namespaces"] > 3 and result.relists["namespaced"] > 5 + 10, result.relists
    for name, events in result.events.items():
        assert events.get("ok", 0) > 500 and not events.get("malformed"), (name, events)
        assert result.breakers[name]["opened"] == 0, (name, result.breakers[name])
    assert result.peak_watcher_threads == 6  # one per scope: 1 + 5, never a second one for a scope
    assert result.server["peak_watches"] <= 6 + 6  # a cut connection may linger on the server side briefly
    assert result.threads[1] <= result.threads[0], result.threads  # every watcher thread ended
    assert result.connections_after == 0


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    server = FakeKubeApi().start()
    yield server
    server.close()


def _watcher(api: FakeKubeApi, store: StateStore, namespaces: list[str],
             registry: ResilienceRegistry | None = None) -> KubernetesWatcher:
    from kubernetes.client import ApiClient

    watcher = KubernetesWatcher(store, registry or ResilienceRegistry(), host="h", namespaces=namespaces,
                                api_factory=lambda: ApiClient(api.configuration()), reconnect_max_backoff=0.3,
                                watch_timeout=30, request_timeout=5)
    watcher.start()
    wait_until(lambda: store.ready() and all(s.up for s in watcher.scopes) and len(api._sockets) == len(namespaces),
               message="synced, and every scope's watch open at the server")
    return watcher


def test_a_refused_reconnect_is_not_reported_connected(api: FakeKubeApi, caplog: pytest.LogCaptureFixture) -> None:
    """The source said "connected" (source_up 1, back-off started over) before each retry's
    request, so while the API server refused, it flapped up/down on every retry."""
    api.add(load_pod("running"))
    store = StateStore()
    # the back-off alone paces the retries here
    registry = ResilienceRegistry(breaker_settings=BreakerSettings(failure_threshold=1000))
    watcher = _watcher(api, store, ["shop", "pay"], registry)
    try:
        caplog.set_level(logging.INFO, logger="exporter.sources.kubernetes")
        caplog.clear()
        before = len(api.requests)
        api.refusing = 503
        api.drop()
        wait_until(lambda: len(api.requests) >= before + 4, message="four refused reconnects")
        assert not store.sources()[0].up
        messages = [r.getMessage() for r in caplog.records]
        assert "kubernetes source connected" not in messages, messages
        api.refusing = 0
        wait_until(lambda: store.sources()[0].up, message="up again once the API server answers")
    finally:
        watcher.stop()


def test_410_answered_to_every_namespace_does_not_open_the_breaker(api: FakeKubeApi) -> None:
    """410 Gone is the API server's answer to an old resourceVersion, not its failure: one
    compaction answered with HTTP 410 to five namespaces' watches opened the breaker (threshold 5)."""
    namespaces = ["a", "b", "c", "d", "e"]
    for ns in namespaces:
        api.add(load_pod("running", namespace=ns, name=f"web-{ns}"))
    store = StateStore()
    watcher = _watcher(api, store, namespaces)
    try:
        api.gone_http = True

        def settled() -> bool:  # every 410 answered so far has been followed by its relist
            return watcher.relists >= len(namespaces) + api.stats["gone_http"] + api.stats["gone_events"]

        def opened() -> bool:  # the fault: no scope gets through until the breaker's open timeout
            return watcher.breaker.state is CircuitState.OPEN

        for i in range(10):  # until five watches were answered HTTP 410 (a watch may expire in-stream instead)
            watches = len(api.watches())
            api.add(load_pod("running", namespace="elsewhere", name=f"web-{i}"))  # every scope is now behind
            api.compact()
            api.drop()
            wait_until(lambda: opened() or (len(api.watches()) >= watches + len(namespaces) and settled()),
                       message="the scopes watching again")
            if api.stats["gone_http"] >= 5 or opened():
                break
        assert watcher.breaker.snapshot().calls["failure"] == 0, watcher.breaker.snapshot()
        assert api.stats["gone_http"] >= 5, api.stats
        wait_until(lambda: settled() and all(s.up and s.resource_version for s in watcher.scopes),
                   message="every scope relisted and watching")
        snapshot = watcher.breaker.snapshot()
        assert snapshot.state is CircuitState.CLOSED and snapshot.calls["failure"] == 0, snapshot
    finally:
        watcher.stop()
