"""The whole exporter with the Docker source on a private dockerd: /metrics, caps and allow-lists."""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable

import requests

from exporter.resilience import ResilienceRegistry
from exporter.sources.docker import DockerWatcher
from exporter.state import StateStore
from tests.harness import wait_until
from tests.integration.dockerd import IMAGE, PrivateDockerd


def test_exporter_serves_docker_containers_and_source_health(dockerd: PrivateDockerd,
                                                             exporter_factory: Callable[..., Any]) -> None:
    name = f"exp-{uuid.uuid4().hex[:6]}"
    app = exporter_factory({"docker.host": dockerd.url, "docker.label_allowlist": "team", "host": "edge-1"})
    host, port = app.address
    try:
        dockerd.run("--name", name, "--label", "team=payments", "--label", "secret=x", IMAGE, "sh", "-c", "exit 2")
        url = f"http://{host}:{port}/metrics"
        text = wait_until(lambda: (t := requests.get(url, timeout=5).text) and
                          f'container="{name}"' in t and "workload_container_last_exit_code{" in t and t,
                          message="the container's series", timeout=30, interval=0.05)
        ident = f'source="docker",host="edge-1",namespace="",pod="",container="{name}"'
        assert f'workload_container_info{{{ident},container_id="' in text and f'image="{IMAGE}"}} 1' in text
        assert f"workload_container_last_exit_code{{{ident}}} 2" in text
        assert f'workload_container_failures_total{{{ident},reason="Error"}} 1' in text
        assert f'workload_container_labels{{{ident},label_team="payments"}} 1' in text
        assert "secret" not in text
        assert 'resilience_exporter_source_up{source="docker"} 1' in text
        assert 'circuit_breaker_state{name="docker:engine"} 0' in text
        assert requests.get(f"http://{host}:{port}/readyz", timeout=5).status_code == 200
    finally:
        dockerd.cli("rm", "-f", name, check=False)


def test_unreachable_engine_marks_the_source_down_and_keeps_serving(
        tmp_path: Path, exporter_factory: Callable[..., Any]) -> None:
    app = exporter_factory({"docker.host": f"unix://{tmp_path}/none.sock", "docker.reconnect_max_backoff": "1s"})
    host, port = app.address
    text = wait_until(lambda: (t := requests.get(f"http://{host}:{port}/metrics", timeout=5).text)
                      and 'resilience_exporter_source_up{source="docker"} 0' in t
                      and 'circuit_breaker_calls_total{name="docker:engine",outcome="failure"}' in t and t,
                      message="source down reported", timeout=30, interval=0.05)
    assert "resilience_exporter_build_info" in text
    assert requests.get(f"http://{host}:{port}/readyz", timeout=5).status_code == 503


def test_container_cap_counts_the_dropped(dockerd: PrivateDockerd) -> None:
    names = [f"cap-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for name in names:
        dockerd.cli("create", "--network", "none", "--name", name, IMAGE, "true")
    store = StateStore()
    already = len(dockerd.client().containers(all=True))
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url=dockerd.url, max_containers=already - 2)
    try:
        watcher.start()
        wait_until(store.ready, message="synced", timeout=30, interval=0.05)
        assert len(store) == already - 2 and store.sources()[0].dropped == 2
        for name in names:  # events of untracked containers neither track nor count them again
            dockerd.cli("start", name)
        wait_until(lambda: all(dockerd.inspect(n)["State"]["Status"] == "exited" for n in names), message="exited",
                   timeout=30, interval=0.05)
        probe = f"cap-probe-{uuid.uuid4().hex[:6]}"
        names.append(probe)
        dockerd.cli("create", "--network", "none", "--name", probe, IMAGE, "true")
        wait_until(lambda: store.sources()[0].dropped == 3, message="the new container counted as dropped",
                   timeout=30, interval=0.05)
        assert len(store) == already - 2 and store.sources()[0].dropped == 3
    finally:
        watcher.stop()
        for name in names:
            dockerd.cli("rm", "-f", name, check=False)
