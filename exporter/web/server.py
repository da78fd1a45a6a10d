"""The threaded HTTP server: /metrics, /healthz, /readyz, /api/state, /api/events and the page.

stdlib's ThreadingHTTPServer gives one thread per connection (as client_python's own server
does), so a slow scrape never blocks an orchestrator's health check. With a web config file the
socket speaks TLS (handshake in the connection's thread, not the accept loop) and every path
but /healthz asks for basic auth.

Hardened as a production server is (limits.py): header and idle timeouts, a cap on open
connections that closes the longest-waiting one, a cap on concurrent requests (node_exporter's
--web.max-requests), a backlog of `somaxconn`, and an accept loop that backs off on EMFILE.
Connection threads are reused (workers.py) and identical concurrent scrapes share one render
(coalesce.py), so a burst of new connections is not serialised behind thread starts.
cheroot, the well-kept candidate, was measured and lost on two counts (docs/BENCHMARKS.md): its
accept loop dies on EMFILE and does TLS handshakes inline, so one silent client stalls it.
"""
from __future__ import annotations

import errno
import functools
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from exporter.metrics import Exposition
from exporter import __version__
from exporter.web import humanize
from exporter.web.coalesce import Coalescer
from exporter.web.limits import ConnectionTable, somaxconn
from exporter.web.status import StatusDocument
from exporter.web.workers import WorkerPool

if TYPE_CHECKING:  # a server without a web config file never imports it
    from exporter.web.webconfig import WebSecurity

log = logging.getLogger(__name__)
Events = Callable[..., list[dict[str, Any]]]


@functools.cache
def _templates() -> Any:
    """The page's jinja2 environment, built on the first page view: scrapers never load jinja2 (3 MiB)."""
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("exporter.web", "templates"),
                              autoescape=jinja2.select_autoescape(["html"]))


@dataclass(frozen=True)
class HTTPLimits:
    """Connection and request limits; the defaults hold 3,000 idle connections off (see limits.py)."""

    max_connections: int = 1024
    max_requests: int = 40          # concurrent requests but /healthz; 0: no cap
    read_header_timeout: float = 10.0
    idle_timeout: float = 60.0
    request_queue_timeout: float = 1.0  # wait for a free request slot before answering 503


_ACCEPT_FAILURES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], exposition: Exposition, *, telemetry_path: str,
                 ready: Callable[[], bool], state: Callable[[], StatusDocument] | None = None,
                 events: Events | None = None, security: WebSecurity | None = None, refresh: int = 5,
                 limits: HTTPLimits = HTTPLimits()) -> None:
        self.exposition = exposition
        self.telemetry_path = telemetry_path
        self.ready = ready
        self.state = state or StatusDocument.empty
        self.events = events or (lambda **_: [])
        self.security = security
        self.refresh = refresh
        self.limits = limits
        self.connections = ConnectionTable(limits.max_connections)
        self.workers = WorkerPool(idle_seconds=limits.idle_timeout)
        self.renders: Coalescer[tuple[str | None, str | None], tuple[bytes, dict[str, str]]] = Coalescer()
        self.requests = threading.BoundedSemaphore(limits.max_requests) if limits.max_requests > 0 else None
        self.request_queue_size = somaxconn()
        self._accept_backoff = 0.0
        super().__init__(address, Handler)
        if security is not None and security.ssl_context is not None:
            self.socket = security.ssl_context.wrap_socket(self.socket, server_side=True,
                                                           do_handshake_on_connect=False)

    def get_request(self) -> tuple[Any, Any]:
        """accept(); out of descriptors, close the longest-waiting connection and back off (as Go's
        http.Server does, 5 ms doubling to 1 s) instead of spinning on a listen socket that stays ready."""
        try:
            request = super().get_request()
        except OSError as exc:
            if exc.errno in _ACCEPT_FAILURES:
                self.connections.make_room()
                self._accept_backoff = min(max(self._accept_backoff * 2, 0.005), 1.0)
                log.warning("accept failed; backing off", extra={"fields": {
                    "err": exc, "backoff_seconds": self._accept_backoff, "connections": len(self.connections)}})
                time.sleep(self._accept_backoff)
            raise
        self._accept_backoff = 0.0
        return request

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.admit(request):  # every connection is busy being answered
            self.shutdown_request(request)
            return
        self.workers.submit(lambda: self.process_request_thread(request, client_address))

    def shutdown_request(self, request: Any) -> None:
        self.connections.remove(request)
        super().shutdown_request(request)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if hasattr(request, "do_handshake"):
            try:
                request.settimeout(self.limits.read_header_timeout)
                request.do_handshake()
            except OSError as exc:  # plain HTTP on the TLS port, a scanner, a timeout
                log.debug("TLS handshake failed", extra={"fields": {"client": client_address[0], "err": exc}})
                return
        super().finish_request(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = f"resilience-exporter/{__version__}"
    # Headers and body go out in two writes; without TCP_NODELAY the body waits for the
    # client's delayed ACK (~40 ms per request on a kept-alive connection, i.e. every scrape).
    disable_nagle_algorithm = True
    body_timeout = 5.0  # seconds to read the small body of a refused (405) request
    _answered = 0

    def version_string(self) -> str:
        return self.server_version  # no Python version: it tells an attacker which CVEs to try

    def handle_one_request(self) -> None:
        """One request: a new connection gets the header timeout, a kept-alive one the idle timeout."""
        limits = self.server.limits
        self.connection.settimeout(limits.idle_timeout if self._answered else limits.read_header_timeout)
        super().handle_one_request()
        self._answered += 1
        self.server.connections.waiting(self.connection)

    def parse_request(self) -> bool:
        self.connection.settimeout(self.server.limits.read_header_timeout)
        if not super().parse_request():
            return False
        if not self.server.connections.busy(self.connection):  # closed to make room while sending headers
            self.close_connection = True
            return False
        return True

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)  # a configured path is matched decoded
        if path == "/healthz":  # liveness stays open: orchestrators probe without credentials
            self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
            return
        requests = self.server.requests
        # A short wait before refusing: a burst just over the cap queues instead of failing.
        if requests is not None and not requests.acquire(timeout=self.server.limits.request_queue_timeout):
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, f"limit of concurrent requests reached ({self.server.limits.max_requests}), "
                       "try again later\n".encode(), "text/plain; charset=utf-8", {"Retry-After": "1"})
            return
        try:
            self._route(path, query)
        finally:
            if requests is not None:
                requests.release()

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        security = self.server.security
        try:
            allowed = security is None or security.authorized(self.headers.get("Authorization"))
        except ValueError:  # bcrypt >= 5 refuses passwords over 72 bytes: a wrong password, not a dropped connection
            allowed = False
        if not allowed:
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", 'Basic realm="resilience-exporter"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path == self.server.telemetry_path:
            accept, encoding = self.headers.get("Accept"), self.headers.get("Accept-Encoding")
            body, shared = self.server.renders.call(
                (accept, encoding), lambda: self.server.exposition.response(accept, encoding))
            headers = dict(shared)  # shared with the other requests of this render
            self._send(HTTPStatus.OK, body, headers.pop("Content-Type"), headers)
        elif path == "/readyz":
            ready = self.server.ready()
            self._send(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
                       b"ready\n" if ready else b"not ready: sources still syncing\n", "text/plain; charset=utf-8")
        elif path == "/api/state":
            self._json(self.server.state().as_dict())
        elif path == "/api/events":
            try:
                limit = int(query.get("limit", ["100"])[0])
            except ValueError:
                self._json({"error": "limit: expected an integer"}, HTTPStatus.BAD_REQUEST)
                return
            self._json(self.server.events(container=query.get("container", [""])[0],
                                          reason=query.get("reason", [""])[0], limit=limit))
        elif path == "/":
            self._send(HTTPStatus.OK, self._page().encode(), "text/html; charset=utf-8")
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def _not_allowed(self) -> None:
        """405 for methods that change things: every route here is read-only.

        A small body is read and dropped so the kept-alive connection stays usable (Go's net/http
        does the same); any other body closes it, said with `Connection: close` so the client does
        not send its next request on a socket we are closing.
        """
        headers = {"Allow": "GET, HEAD"}
        try:
            dropped = self._drop_body()
        except OSError:  # the client stalled or went away mid-body: nobody to answer
            self.close_connection = True
            return
        if not dropped:
            self.close_connection = True  # an unread body must not become the next request
            headers["Connection"] = "close"
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"method not allowed: use GET or HEAD\n",
                   "text/plain; charset=utf-8", headers)
        if not dropped:
            self._linger()

    def _linger(self, seconds: float = 2.0, limit: int = 1 << 20) -> None:
        """Lingering close (as nginx does): closing a socket with unread input sends a reset, which
        can destroy the answer before the client reads it. Half-close, then read until the client
        closes, for at most `seconds` and `limit` bytes."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline, read = time.monotonic() + seconds, 0
            while read < limit and (left := deadline - time.monotonic()) > 0:
                self.connection.settimeout(left)
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                read += len(chunk)
        except OSError:  # the client reset or timed out: nothing left to protect
            pass

    def _drop_body(self, limit: int = 64 * 1024) -> bool:
        """Read and discard a request body of at most `limit` bytes within `body_timeout`; False if
        it cannot be. OSError (timeout, reset) when the client stalls or leaves mid-body."""
        if self.headers.get("Transfer-Encoding"):
            return False
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return False
        if not 0 <= length <= limit:
            return False
        if not length:
            return True
        self.connection.settimeout(self.body_timeout)
        if len(self.rfile.read(length)) != length:
            raise ConnectionError("request body cut short")
        return True

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed  # noqa: N815

    def _page(self) -> str:
        now = time.time()
        return _templates().get_template("index.html").render(
            state=self.server.state().as_dict(), events=self.server.events(limit=20), refresh=self.server.refresh,
            telemetry_path=self.server.telemetry_path,
            ago=lambda t: humanize.ago(t, now), until=lambda t: humanize.until(t, now))

    def _json(self, doc: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, json.dumps(doc, default=str).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
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
