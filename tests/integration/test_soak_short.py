"""Short soak runs (seconds each) of bench/soak.py: churn leaves nothing behind, a burst loses no
event and its memory does not grow with its size, fuzzing (Docker events, config, Kubernetes pods
and watch streams, every HTTP route) finds no crash."""
from __future__ import annotations

import pytest

from bench import soak


def test_container_churn_returns_store_series_and_memory_to_baseline() -> None:
    result = soak.churn(2_000, deadline_s=60)
    assert result.records[1] == result.records[0] == 1_000
    assert result.series[1] == result.series[0]
    assert result.lives[1] == result.lives[0]
    assert result.ok_events == 4 * 2_000
    assert result.rss_mib[1] - result.rss_mib[0] <= 2.0, result.rss_mib
    assert result.blocks[1] - result.blocks[0] <= 2_000, result.blocks
    assert result.leak_free


def test_event_burst_counts_every_event_and_peak_memory_does_not_grow_with_it() -> None:
    small, large = soak.burst(5_000), soak.burst(20_000)
    assert large.ok == 20_000 and not any(large.other.values()), large.other
    assert small.ok == 5_000
    assert large.peak_mib <= 1.5 * small.peak_mib, (small.peak_mib, large.peak_mib)


def test_fuzzed_events_are_counted_or_rejected_never_raised() -> None:
    for fuzzed in soak.fuzz_events(3.0):
        assert fuzzed.examples > 0 and not fuzzed.crashes, (fuzzed.target, fuzzed.crashes)


def test_fuzzed_config_fails_only_with_config_error() -> None:
    for fuzzed in soak.fuzz_config(2.0):
        assert fuzzed.examples > 0 and not fuzzed.crashes, (fuzzed.target, fuzzed.crashes)


def test_fuzzed_events_api_queries_answer_200_or_400() -> None:
    fuzzed = soak.fuzz_web(2.0)
    assert fuzzed.examples > 0 and not fuzzed.crashes, fuzzed.crashes


def test_fuzzed_pods_are_mapped_or_rejected_without_trace_and_never_crash_the_watch() -> None:
    fuzzed = soak.fuzz_pods(6.0)
    assert [f.target for f in fuzzed] == ["PodMapper.records(random JSON)",
                                          "KubernetesWatcher.apply(mutated kubelet pods)",
                                          "KubernetesWatcher watch stream (mutated events, random chunks)"]
    for f in fuzzed:
        assert f.examples > 0 and not f.crashes, (f.target, f.crashes)


def test_a_rejected_pod_leaves_no_trace_and_other_pods_stay() -> None:
    watcher, store, collector = soak._kube_watcher()
    watcher.apply(soak.kube_pod("running", name="keep", namespace="soak-sentinel"))
    watcher.apply(soak.kube_pod("running"))
    bad = soak.kube_pod("crash-loop-backoff")
    bad["status"]["containerStatuses"][1]["restartCount"] = {"many": True}  # app's status is good, the next not
    with pytest.raises(soak.POD_MALFORMED):
        watcher.apply(bad)
    watcher.apply(soak.kube_pod("crash-loop-backoff"))
    assert store.get("k8s:shop/web-0/app").reason.value == "CrashLoopBackOff"
    assert store.get("k8s:soak-sentinel/keep/app") is not None
    assert b'pod="keep"' in soak._check_store(store, collector)


def test_fuzzed_http_requests_to_every_route_get_no_5xx_and_no_dropped_connection() -> None:
    for fuzzed in soak.fuzz_http(4.0):
        assert fuzzed.examples > 0 and not fuzzed.crashes, (fuzzed.target, fuzzed.crashes)


def test_basic_auth_with_a_password_over_72_bytes_is_a_401_not_a_dropped_connection() -> None:
    with soak.http_exporters() as (_, secured):  # bcrypt >= 5 raises ValueError past 72 bytes
        for password in ("x" * 100, soak.SOAK_PASSWORD + "x" * 80):
            auth = (("Authorization", soak._auth_header(soak.SOAK_USER, password)),)
            status, headers, _ = soak.http_exchange(secured.address, soak.Request("GET", "/api/state", auth, False))
            assert status == 401 and "www-authenticate" in headers
        good = (("Authorization", soak._auth_header(soak.SOAK_USER, soak.SOAK_PASSWORD)),)
        status, _, body = soak.http_exchange(secured.address, soak.Request("GET", "/api/state", good, False))
        assert status == 200 and b'"containers"' in body


@pytest.mark.parametrize(("path", "accept", "openmetrics"), [
    ("/metrics", "application/openmetrics-text;q=0", False),  # q=0 refuses (RFC 9110); once taken for a crash
    ("/metrics", "APPLICATION/OPENMETRICS-TEXT", True),
    ("/metrics", "text/plain;q=0.5, application/openmetrics-text;version=1.0.0", True),
    ("/met%72ics", "application/openmetrics-text" * 3, False),  # percent-encoded path: the same route
])
def test_http_oracle_agrees_with_negotiation_and_decoded_paths(path: str, accept: str, openmetrics: bool) -> None:
    assert soak.asks_openmetrics(accept) is openmetrics
    with soak.http_exporters() as (plain, _):
        request = soak.Request("GET", path, (("Accept", accept),), False)
        answer = soak.http_exchange(plain.address, request)
        soak.check_answer(request, answer, telemetry_path="/metrics", authorized=True)  # raises on a crash
        assert answer[0] == 200 and answer[1]["content-type"].startswith("application/openmetrics-text") is openmetrics
