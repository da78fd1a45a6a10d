"""The library inside another service: docs/examples/device_api.py against fake devices on loopback.

Devices are real HTTP servers (healthy, failing with 503 + Retry-After, slow); the service is
the documented example served by wsgiref; its /metrics is prometheus_client's, checked by promtool.
Breaker time is a FakeClock the test advances; retry sleeps go to another, so nothing sleeps.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests

from exporter.resilience import CircuitOpenError, FakeClock, KeyedBreakers, ResilienceRegistry, RetryBudget, RetryPolicy
from exporter.resilience.backoff import Constant
from exporter.resilience.transport import ResilientAdapter
from tests.harness import require_binary

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "device_api.py"
SLOW_SECONDS = 0.3


def load_example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("device_api_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


class FakeDevices:
    """Loopback HTTP servers, one per device; counts every request each device receives."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.behaviour: dict[str, str] = {}
        self.servers: dict[str, ThreadingHTTPServer] = {}

    def add(self, device_id: str, behaviour: str) -> str:
        devices = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                devices.calls[device_id] += 1
                mode = devices.behaviour[device_id]
                if mode == "failing":
                    self.send_response(503)
                    self.send_header("Retry-After", "2")
                    body = b'{"error": "overloaded"}'
                else:
                    if mode == "slow":
                        time.sleep(SLOW_SECONDS)  # the device under test is slow; no race depends on it
                    self.send_response(200)
                    body = json.dumps({"id": device_id, "temperature": 21}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.behaviour[device_id] = behaviour
        self.servers[device_id] = server
        return f"http://127.0.0.1:{server.server_address[1]}"

    def close(self) -> None:
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


@pytest.fixture
def devices() -> Iterator[FakeDevices]:
    fake = FakeDevices()
    yield fake
    fake.close()


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_device_service_answers_503_circuit_open_without_calling_the_failing_device(devices: FakeDevices) -> None:
    promtool = require_binary("promtool")
    example = load_example()
    urls = {"healthy": devices.add("healthy", "ok"), "failing": devices.add("failing", "failing"),
            "slow": devices.add("slow", "slow")}
    breaker_clock, retry_clock = FakeClock(), FakeClock()
    app = example.DeviceAPI(urls, failure_threshold=3, open_timeout=30.0, clock=breaker_clock,
                            sleep=retry_clock.sleep)
    server = example.serve(app, "127.0.0.1", 0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        # 1st request: two attempts (503, Retry-After 2 honoured), both counted by the breaker
        status, _, body = get(f"{base}/devices/failing/status")
        assert (status, json.loads(body)["error"]) == (502, "device_error")
        assert devices.calls["failing"] == 2 and retry_clock.sleeps == [2.0]
        # 2nd request: the 3rd failure opens the breaker; the retry is refused by it
        status, headers, body = get(f"{base}/devices/failing/status")
        assert devices.calls["failing"] == 3
        assert status == 503 and json.loads(body)["error"] == "circuit_open"
        for _ in range(5):
            status, headers, body = get(f"{base}/devices/failing/status")
            document = json.loads(body)
            assert status == 503 and headers["Content-Type"] == "application/json"
            assert document["error"] == "circuit_open" and document["deviceId"] == "failing"
            assert int(headers["Retry-After"]) == 30
        assert devices.calls["failing"] == 3  # not called while open
        for device in ("healthy", "slow"):
            status, _, body = get(f"{base}/devices/{device}/status")
            assert (status, json.loads(body)) == (200, {"id": device, "temperature": 21})

        status, headers, body = get(f"{base}/metrics")
        text = body.decode()
        assert status == 200
        assert 'circuit_breaker_state{deviceId="failing"} 1.0' in text
        assert 'circuit_breaker_state{deviceId="healthy"} 0.0' in text
        assert 'circuit_breaker_state{deviceId="slow"} 0.0' in text
        assert [line for line in text.splitlines() if line.startswith("circuit_breaker_state") and
                line.endswith(" 1.0")] == ['circuit_breaker_state{deviceId="failing"} 1.0']
        assert_promtool_accepts(promtool, body, allow_camel_case=True)

        # after open_timeout one trial call reaches the device; it fails and the breaker reopens
        breaker_clock.advance(29.0)
        assert get(f"{base}/devices/failing/status")[0] == 503 and devices.calls["failing"] == 3
        breaker_clock.advance(1.0)
        status, _, body = get(f"{base}/devices/failing/status")
        assert devices.calls["failing"] == 4
        assert get(f"{base}/devices/failing/status")[0] == 503 and devices.calls["failing"] == 4
        # the device recovers: the next trials close the breaker (success_threshold 2)
        devices.behaviour["failing"] = "ok"
        breaker_clock.advance(30.0)
        assert get(f"{base}/devices/failing/status")[0] == 200
        assert get(f"{base}/devices/failing/status")[0] == 200
        assert 'circuit_breaker_state{deviceId="failing"} 0.0' in get(f"{base}/metrics")[2].decode()
    finally:
        server.shutdown()
        server.server_close()


CAMEL_CASE_LINT = "label names should be written in 'snake_case' not 'camelCase'"


def assert_promtool_accepts(promtool: str, body: bytes, *, allow_camel_case: bool = False) -> None:
    """`promtool check metrics` passes; with allow_camel_case its only remark may be the camelCase lint.

    promtool 2.42 lints camelCase label names (exit 3, "lint problems"; parse errors exit 1) and
    has no switch to turn that off, while the fleet's alerts need `deviceId`.
    """
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=30)
    output = (check.stdout + check.stderr).decode()
    remarks = [line for line in output.splitlines() if line.strip()]
    if allow_camel_case and check.returncode == 3:
        assert remarks and all(line.endswith(CAMEL_CASE_LINT) for line in remarks), output
    else:
        assert check.returncode == 0, output


def test_promtool_check_metrics_is_clean_with_a_snake_case_key_label() -> None:
    promtool = require_binary("promtool")
    from prometheus_client import CollectorRegistry, generate_latest

    from exporter.resilience import BreakerSettings
    from exporter.resilience.prometheus import ResilienceCollector

    registry = ResilienceRegistry()
    devices = registry.keyed("devices", BreakerSettings(failure_threshold=1), label="device_id")
    devices.call("ok", lambda: None)
    with pytest.raises(ZeroDivisionError):
        devices.call("bad", lambda: 1 / 0)
    registry.breaker("docker")
    target = CollectorRegistry()
    target.register(ResilienceCollector(registry))
    body = generate_latest(target)
    assert b'circuit_breaker_state{device_id="bad"} 1.0' in body
    assert_promtool_accepts(promtool, body)


def adapter_session(keyed: KeyedBreakers, clock: FakeClock, **kw: object) -> requests.Session:
    policy = RetryPolicy(name="http", max_attempts=3, backoff=Constant(0.5), registry=ResilienceRegistry(),
                         budget=RetryBudget.unlimited(), sleep=clock.sleep)
    session = requests.Session()
    session.mount("http://", ResilientAdapter(policy, keyed, **kw))  # type: ignore[arg-type]
    return session


def test_adapter_retries_idempotent_methods_only_and_returns_the_last_answer(devices: FakeDevices) -> None:
    url = devices.add("d", "failing")
    clock = FakeClock()
    keyed = KeyedBreakers("http", label="host", clock=clock)
    session = adapter_session(keyed, clock)
    response = session.get(f"{url}/status", timeout=5)
    assert response.status_code == 503 and response.json() == {"error": "overloaded"}
    assert devices.calls["d"] == 3 and clock.sleeps == [2.0, 2.0]  # Retry-After beats the 0.5 s back-off
    assert session.post(f"{url}/status", data=b"x", timeout=5).status_code == 503
    assert devices.calls["d"] == 4  # POST: one attempt
    with pytest.raises(CircuitOpenError):  # the 5th failure opens the breaker; PUT's retry is refused
        session.put(f"{url}/status", data=b"x", timeout=5)
    assert devices.calls["d"] == 5
    with pytest.raises(CircuitOpenError):
        session.get(f"{url}/status", timeout=5)
    assert devices.calls["d"] == 5


def test_adapter_keeps_one_breaker_per_host(devices: FakeDevices) -> None:
    bad, good = devices.add("bad", "failing"), devices.add("good", "ok")
    clock = FakeClock()
    keyed = KeyedBreakers("http", label="host", clock=clock)
    session = adapter_session(keyed, clock)
    assert session.get(f"{bad}/status", timeout=5).status_code == 503  # 3 failures of 5
    with pytest.raises(CircuitOpenError):  # the 5th opens it, the last retry is refused
        session.get(f"{bad}/status", timeout=5)
    assert devices.calls["bad"] == 5
    assert session.get(f"{good}/status", timeout=5).json()["id"] == "good"
    assert sorted(keyed.keys()) == sorted([bad.removeprefix("http://"), good.removeprefix("http://")])


def test_adapter_retries_a_refused_connection_then_raises_it() -> None:
    from tests.harness import free_port

    clock = FakeClock()
    session = adapter_session(KeyedBreakers("http", clock=clock), clock)
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{free_port()}/", timeout=5)
    assert clock.sleeps == [0.5, 0.5]
