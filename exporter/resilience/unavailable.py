"""CircuitOpenError as an HTTP answer: 503, Retry-After, JSON ``{"error": "circuit_open", ...}``.

The fleet API's behaviour: while a device's breaker is open the service answers at once, without
touching the device, and tells the client when a new try can succeed. Stdlib only.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .errors import CircuitOpenError

# Forced-open breakers have no timeout; clients are told to come back after this many seconds.
FALLBACK_RETRY_AFTER = 60


@dataclass(frozen=True)
class Unavailable:
    """Status, headers and body of a 503 ready to send from any framework."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def status_line(self) -> str:
        return f"{self.status} Service Unavailable"


def circuit_open_response(exc: CircuitOpenError, **fields: Any) -> Unavailable:
    """The 503 for ``exc``; ``fields`` are added to the JSON body (e.g. ``deviceId=...``)."""
    seconds = max(1, math.ceil(exc.retry_after)) if exc.retry_after is not None else FALLBACK_RETRY_AFTER
    document = {"error": "circuit_open", "breaker": exc.name, "retry_after_seconds": seconds,
                "message": str(exc), **fields}
    body = json.dumps(document).encode()
    headers = {"Content-Type": "application/json", "Retry-After": str(seconds), "Content-Length": str(len(body))}
    return Unavailable(503, headers, body)


WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


class CircuitOpenMiddleware:
    """WSGI middleware: a CircuitOpenError escaping the app becomes the 503 above."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            return self.app(environ, start_response)
        except CircuitOpenError as exc:
            answer = circuit_open_response(exc)
            start_response(answer.status_line, list(answer.headers.items()), sys.exc_info())
            return [answer.body]
