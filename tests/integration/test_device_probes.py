"""A real HTTP server on loopback that flaps: the probe's breaker trips, stops sending, then recovers."""
from __future__ import annotations

import threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
import requests

from exporter.resilience import CircuitState
from tests.harness import running_exporter, url_of, wait_until


class Flapping(ThreadingHTTPServer):
    healthy = True
    hits = 0


class Handler(BaseHTTPRequestHandler):
    server: Flapping

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.hits += 1
        self.send_response(200 if self.server.healthy else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Flapping]:
    httpd = Flapping(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_flapping_target_trips_the_breaker_then_recovers(server: Flapping, tmp_path: Path) -> None:
    port = server.server_address[1]
    (tmp_path / "c.yaml").write_text(
        "web: {listen_address: '127.0.0.1:0'}\n"
        "resilience: {breaker_failure_threshold: 3, breaker_open_timeout: 1s, breaker_success_threshold: 1}\n"
        f"probes:\n  - {{name: api, url: 'http://127.0.0.1:{port}/health', interval: 50ms, timeout: 1s, attempts: 1}}\n")
    with running_exporter(file=tmp_path / "c.yaml") as app:
        breaker = app.registry.breaker("probe:api")
        base = url_of(app)
        wait_until(lambda: 'resilience_probe_success{target="api"} 1' in requests.get(base, timeout=5).text, timeout=10,
                   message="a first successful probe")
        server.healthy = False
        wait_until(lambda: breaker.state is CircuitState.OPEN, timeout=10, message="the breaker to open")
        text = requests.get(base, timeout=5).text
        assert 'circuit_breaker_state{name="probe:api"} 1' in text
        assert 'resilience_probe_success{target="api"} 0' in text
        hits = server.hits
        wait_until(lambda: app.device.probe_status.get("api").checks["rejected"] >= 3,  # type: ignore[union-attr]
                   timeout=10, message="checks rejected while open")
        assert server.hits <= hits + 1  # at most one half-open trial reached the server meanwhile
        server.healthy = True
        wait_until(lambda: breaker.state is CircuitState.CLOSED, timeout=10, message="the breaker to close again")
        wait_until(lambda: 'resilience_probe_success{target="api"} 1' in requests.get(base, timeout=5).text, timeout=10,
                   message="probe success after recovery")
        text = requests.get(base, timeout=5).text
        assert 'circuit_breaker_transitions_total{name="probe:api",from="open",to="half_open"}' in text
        assert 'circuit_breaker_state{name="probe:api"} 0' in text
