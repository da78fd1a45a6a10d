"""The exporter's HTTP server on loopback, checked with real clients and real promtool."""
from __future__ import annotations

import gzip
import subprocess
import socket
import threading
from typing import Callable

import pytest
import requests

from exporter.app import Exporter
from exporter.config import load
from exporter.state import ContainerRecord, Phase, Reason, Source
from tests.harness import require_binary, url_of


@pytest.fixture
def exporter(exporter_factory: Callable[..., Exporter]) -> Exporter:
    return exporter_factory()


url = url_of


def populate(app: Exporter, n: int) -> None:
    for i in range(n):
        app.store.put(ContainerRecord(
            key=f"id{i}", source=Source.DOCKER, container=f"c{i}", host="h", image="img:1",
            phase=Phase.TERMINATED, reason=Reason.ERROR, last_exit_code=3,
            last_terminated_reason=Reason.ERROR, last_terminated_at=1.5, restarts=i).with_failure(Reason.ERROR))
    app.registry.breaker("probe:a")
    app.store.register_source("docker")
    app.store.count_event("docker", "malformed")


def test_metrics_pass_promtool_check_metrics(exporter: Exporter) -> None:
    promtool = require_binary("promtool")
    populate(exporter, 50)
    body = requests.get(url(exporter, "/metrics"), timeout=5).content
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""  # no lint warnings either


def test_openmetrics_and_gzip_negotiated_by_headers(exporter: Exporter) -> None:
    populate(exporter, 3)
    om = requests.get(url(exporter, "/metrics"), timeout=5,
                      headers={"Accept": "application/openmetrics-text;version=1.0.0", "Accept-Encoding": "gzip"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.headers["Content-Encoding"] == "gzip"
    assert om.text.endswith("# EOF\n")  # requests transparently gunzips
    raw = requests.get(url(exporter, "/metrics"), timeout=5, headers={"Accept-Encoding": "gzip"}, stream=True).raw.read()
    assert gzip.decompress(raw).startswith(b"# HELP")
    plain = requests.get(url(exporter, "/metrics"), timeout=5, headers={"Accept-Encoding": "identity"})
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Content-Encoding" not in plain.headers


def test_health_and_readiness(exporter: Exporter) -> None:
    assert requests.get(url(exporter, "/healthz"), timeout=5).status_code == 200
    assert requests.get(url(exporter, "/readyz"), timeout=5).status_code == 200  # no sources to wait for
    exporter.store.register_source("docker")
    assert requests.get(url(exporter, "/readyz"), timeout=5).status_code == 503
    exporter.store.set_source("docker", up=True, synced=True)
    assert requests.get(url(exporter, "/readyz"), timeout=5).status_code == 200
    assert requests.get(url(exporter, "/nope"), timeout=5).status_code == 404


def test_methods_that_change_things_get_405_and_the_connection_stays_usable(exporter: Exporter) -> None:
    with requests.Session() as session:
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            answer = session.request(method, url(exporter, "/metrics"), data=b"x" * 1000, timeout=5)
            assert answer.status_code == 405 and answer.headers["Allow"] == "GET, HEAD", method
            assert "GET or HEAD" in answer.text and answer.headers.get("Connection") != "close"
            assert session.get(url(exporter, "/healthz"), timeout=5).text == "ok\n"  # body not read as a request


def test_a_405_with_a_body_it_will_not_read_says_connection_close(exporter: Exporter) -> None:
    host, port = exporter.address
    with socket.create_connection((host, port), timeout=5) as conn:  # a chunked body: not read, so closed
        conn.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        answer = b""
        while chunk := conn.recv(4096):  # the server closes after its answer
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 405") and "connection: close" in head
    with requests.Session() as session:  # a body over 64 KiB is not read either
        answer = session.post(url(exporter, "/metrics"), data=b"x" * 100_000, timeout=5)
        assert answer.status_code == 405 and answer.headers["Connection"] == "close"
        assert session.get(url(exporter, "/healthz"), timeout=5).text == "ok\n"


@pytest.mark.parametrize("path", ["/m", "/métriques"])
def test_custom_telemetry_path(path: str, exporter_factory: Callable[..., Exporter]) -> None:
    app = exporter_factory({"web.telemetry_path": path})
    # requests sends the non-ASCII path percent-encoded, as every HTTP client does
    assert "resilience_exporter_build_info" in requests.get(url(app, path), timeout=5).text
    assert requests.get(url(app, "/metrics"), timeout=5).status_code == 404


def test_concurrent_scrapes_see_whole_consistent_bodies(exporter: Exporter) -> None:
    populate(exporter, 200)
    errors: list[str] = []
    start = threading.Barrier(8)

    def scrape() -> None:
        start.wait()
        for _ in range(10):
            text = requests.get(url(exporter, "/metrics"), timeout=10).text
            if text.count("workload_container_info{") != 200:
                errors.append(f"got {text.count('workload_container_info{')} info series")

    threads = [threading.Thread(target=scrape) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_configured_breaker_defaults_and_budget_reach_the_registry() -> None:
    registry = Exporter(load(flags={"resilience.breaker_failure_threshold": "3", "resilience.breaker_open_timeout": "1m",
                                    "resilience.retry_budget_ratio": "0.25"})).registry
    breaker = registry.breaker("docker:events")
    assert (breaker.failure_threshold, breaker.open_timeout, breaker.window) == (3, 60.0, 60.0)
    assert registry.budget.ratio == 0.25


def test_a_405_whose_body_stalls_is_closed_without_an_answer(exporter: Exporter, monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.web.server import Handler

    monkeypatch.setattr(Handler, "body_timeout", 0.5)
    host, port = exporter.address
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        assert conn.recv(4096) == b""  # closed after body_timeout: no 405 written to a stalled client
    assert requests.get(url(exporter, "/healthz"), timeout=5).text == "ok\n"


def test_requests_beyond_max_requests_get_503_and_healthz_still_answers(
        exporter_factory: Callable[..., Exporter]) -> None:
    app = exporter_factory({"web.max_requests": "2"})
    assert app.server is not None and app.server.requests is not None
    for _ in range(2):  # two requests being answered right now
        app.server.requests.acquire()
    r = requests.get(url(app, "/metrics"), timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert "limit of concurrent requests reached (2)" in r.text
    assert requests.get(url(app, "/healthz"), timeout=10).status_code == 200
    app.server.requests.release()
    assert requests.get(url(app, "/metrics"), timeout=10).status_code == 200


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
        exporter_factory: Callable[..., Exporter]) -> None:
    app = exporter_factory({"web.read_header_timeout": "300ms"})
    with socket.create_connection(app.address, timeout=10) as idle:
        assert idle.recv(1) == b""  # closed by the server, not by our 10 s timeout
