"""A real Prometheus and curl read the gzip body built from kept segments as the text it stands for.

Our HTTP server answers gzip scrapes with the kept deflate segments of every unchanged block in
one gzip member, its CRC combined from theirs (exporter.metrics.deflate).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client import CollectorRegistry

from exporter.metrics import ContainerCollector, Exposition
from exporter.state import ContainerRecord, Phase, Reason, Source, StateStore
from exporter.web.server import ExporterHTTPServer, serve_in_thread
from tests.harness import require_binary, wait_until
from tests.integration.engines_monitoring import Prometheus

SAMPLE_LINE = re.compile(rb"^[a-zA-Z_]", re.M)


def record(i: int) -> ContainerRecord:
    return ContainerRecord(key=f"id{i}", source=Source.DOCKER, container=f"web-{i}", host="h", pod=f"p{i % 7}",
                           namespace="ns", container_id=f"id{i}", image="img:1", phase=Phase.RUNNING,
                           reason=Reason.RUNNING, created_at=float(i)).with_failure(Reason.ERROR)


@pytest.fixture()
def served() -> Iterator[tuple[StateStore, Exposition, str]]:
    store = StateStore()
    for i in range(300):
        store.put(record(i))
    exposition = Exposition([ContainerCollector(store)])
    exposition.process_registry = CollectorRegistry()  # so that two renders are byte-identical
    server = ExporterHTTPServer(("127.0.0.1", 0), exposition, telemetry_path="/metrics", ready=lambda: True)
    serve_in_thread(server)
    try:
        yield store, exposition, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def curl(address: str, *args: str) -> bytes:
    return subprocess.run([require_binary("curl"), "-sS", "--fail", *args, f"http://{address}/metrics"],
                          check=True, capture_output=True, timeout=30).stdout


def test_curl_compressed_reads_the_member_stream_as_the_text_body(served: tuple[StateStore, Exposition, str]) -> None:
    store, exposition, address = served
    for step in range(3):  # as built, after changes and removals, after additions
        if step == 1:
            for i in range(0, 300, 10):
                store.put(record(i).with_failure(Reason.OOM_KILLED))
            for i in range(5, 300, 50):
                store.remove(f"id{i}")
        elif step == 2:
            for i in range(300, 340):
                store.put(record(i))
        for accept in ("text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0"):
            text = exposition.render(openmetrics=accept.startswith("application/openmetrics"))
            raw = curl(address, "-H", "Accept-Encoding: gzip", "-H", f"Accept: {accept}")
            assert raw[:2] == b"\x1f\x8b" and len(raw) < len(text) / 5  # gzip indeed
            assert curl(address, "--compressed", "-H", f"Accept: {accept}") == text


def test_prometheus_scrapes_every_sample_of_the_gzip_body(served: tuple[StateStore, Exposition, str],
                                                          tmp_path: Path) -> None:
    store, exposition, address = served
    prometheus = Prometheus(tmp_path, targets={"ours": [address]}, alertmanager=None, rule_files=[],
                            scrape_interval="1s", evaluation_interval="1s")
    try:
        def scraped(failures: int, samples: int) -> bool:
            ok = prometheus.query(f'up{{job="ours"}} == 1 and scrape_samples_scraped{{job="ours"}} == {samples}')
            total = prometheus.query('sum(workload_container_failures_total{job="ours"})')
            return bool(ok) and bool(total) and float(total[0]["value"][1]) == failures

        def sample_lines() -> int:  # what one scrape holds: every line but comments
            return len(SAMPLE_LINE.findall(exposition.render(openmetrics=True)))

        wait_until(lambda: scraped(300, sample_lines()), timeout=60, interval=0.5, message="all 300 failures")
        for i in range(0, 300, 3):  # 100 containers from 1 to 3 failures, one removed
            store.put(record(i).with_failure(Reason.ERROR, 2))
        store.remove("id1")
        wait_until(lambda: scraped(300 + 200 - 1, sample_lines()), timeout=60, interval=0.5,
                   message="the changed counts and series")
    finally:
        prometheus.close()
