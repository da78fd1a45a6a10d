"""Five-minute example (docs/library.md): a device-facing HTTP API with one breaker per device.

    python docs/examples/device_api.py --listen 127.0.0.1:8080 --device d1=http://10.0.0.5:9000

GET /devices/<id>/status calls the device with retries (idempotent GET) through the device's
breaker; while that breaker is open it answers 503 circuit_open at once, without touching the
device. GET /metrics is prometheus_client's, with circuit_breaker_state{deviceId="..."}.
tests/integration/test_library_service.py runs this file against fake devices.
"""
from __future__ import annotations

import argparse
import json
import re
import time
from socketserver import ThreadingMixIn
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests
from prometheus_client import CollectorRegistry, make_wsgi_app

from exporter.resilience import (BreakerSettings, CircuitOpenError, FullJitter, ResilienceRegistry, RetryPolicy,
                                 circuit_open_response)
from exporter.resilience.prometheus import ResilienceCollector
from exporter.resilience.transport import ResilientAdapter

STATUS_PATH = re.compile(r"/devices/([^/]+)/status")


class DeviceAPI:
    """WSGI app: device status through keyed breakers and the requests adapter, plus /metrics."""

    def __init__(self, devices: dict[str, str], *, failure_threshold: int = 3, open_timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.devices = devices  # device id -> base URL
        self.resilience = ResilienceRegistry()
        self.breakers = self.resilience.keyed(
            "devices", BreakerSettings(failure_threshold=failure_threshold, open_timeout=open_timeout),
            label="deviceId", idle_timeout=max(3600.0, open_timeout), clock=clock)
        device_of = {urlsplit(url).netloc: device_id for device_id, url in devices.items()}
        retry = RetryPolicy(name="devices", max_attempts=2, max_elapsed=10.0, backoff=FullJitter(0.1, 2.0),
                            registry=self.resilience, sleep=sleep)
        adapter = ResilientAdapter(retry, self.breakers, key=lambda request: device_of[urlsplit(request.url).netloc])
        self.session = requests.Session()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        metrics = CollectorRegistry()
        metrics.register(ResilienceCollector(self.resilience))
        self.metrics_app = make_wsgi_app(metrics)

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self.metrics_app(environ, start_response)
        match = STATUS_PATH.fullmatch(path)
        if match is None or match[1] not in self.devices:
            return _json(start_response, 404, {"error": "not_found", "path": path})
        device_id = match[1]
        try:
            answer = self.session.get(f"{self.devices[device_id]}/status", timeout=3)
        except CircuitOpenError as exc:  # the device is not called while its breaker is open
            unavailable = circuit_open_response(exc, deviceId=device_id)
            start_response(unavailable.status_line, list(unavailable.headers.items()))
            return [unavailable.body]
        except requests.RequestException as exc:
            return _json(start_response, 502, {"error": "device_unreachable", "deviceId": device_id,
                                               "message": str(exc)})
        if not answer.ok:
            return _json(start_response, 502, {"error": "device_error", "deviceId": device_id,
                                               "status": answer.status_code})
        return _json(start_response, 200, answer.json())


def _json(start_response: Callable[..., Any], status: int, document: dict) -> list[bytes]:
    body = json.dumps(document).encode()
    reason = {200: "OK", 404: "Not Found", 502: "Bad Gateway"}[status]
    start_response(f"{status} {reason}", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """One thread per request, so a slow device does not hold up the others."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass


def serve(app: DeviceAPI, host: str, port: int, *, quiet: bool = False) -> ThreadingWSGIServer:
    handler = QuietHandler if quiet else WSGIRequestHandler
    return make_server(host, port, app, server_class=ThreadingWSGIServer,  # type: ignore[return-value]
                       handler_class=handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--device", action="append", default=[], metavar="ID=URL")
    args = parser.parse_args()
    devices = dict(item.split("=", 1) for item in args.device)
    host, _, port = args.listen.rpartition(":")
    serve(DeviceAPI(devices), host, int(port)).serve_forever()


if __name__ == "__main__":
    main()
