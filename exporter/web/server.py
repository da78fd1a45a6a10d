"""The threaded HTTP server: /metrics with content negotiation and gzip, /healthz, /readyz.

stdlib's ThreadingHTTPServer gives one thread per connection (as client_python's own server
does), so a slow scrape never blocks the health checks of an orchestrator.
"""
from __future__ import annotations

import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from exporter.metrics import Exposition

log = logging.getLogger(__name__)

LANDING = """<!doctype html><html><head><meta charset="utf-8"><title>resilience-exporter</title></head>
<body><h1>resilience-exporter</h1><ul>
<li><a href="{path}">{path}</a> metrics</li><li><a href="/healthz">/healthz</a></li>
<li><a href="/readyz">/readyz</a></li></ul></body></html>
"""


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], exposition: Exposition, *, telemetry_path: str,
                 ready: Callable[[], bool]) -> None:
        self.exposition = exposition
        self.telemetry_path = telemetry_path
        self.ready = ready
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "resilience-exporter"

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path == self.server.telemetry_path:
            body, headers = self.server.exposition.response(
                self.headers.get("Accept"), self.headers.get("Accept-Encoding"))
            self._send(HTTPStatus.OK, body, headers)
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", {"Content-Type": "text/plain; charset=utf-8"})
        elif path == "/readyz":
            ready = self.server.ready()
            self._send(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                       b"ready\n" if ready else b"not ready: sources still syncing\n",
                       {"Content-Type": "text/plain; charset=utf-8"})
        elif path == "/":
            page = LANDING.format(path=self.server.telemetry_path).encode()
            self._send(HTTPStatus.OK, page, {"Content-Type": "text/html; charset=utf-8"})
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", {"Content-Type": "text/plain; charset=utf-8"})

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _send(self, status: HTTPStatus, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("http %s", format % args)


def serve_in_thread(server: ExporterHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return thread
