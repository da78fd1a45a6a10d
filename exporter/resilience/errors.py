"""Error vocabulary and the exception classifier shared by retry policies and breakers.

Third-party exceptions (requests, urllib3, docker, kubernetes, aiohttp) are recognised by
the ``(module, qualname)`` pairs of their class MRO and by duck-typed status attributes, so
this module imports none of those libraries and works when they are not installed.
"""
from __future__ import annotations

import json
import socket
from enum import Enum
from typing import Iterable


class ErrorCode(str, Enum):
    """Closed vocabulary of failure kinds; the value is the name so it can be a metric label."""

    NETWORK_ERROR = "NETWORK_ERROR"
    AGENT_DISCONNECTED = "AGENT_DISCONNECTED"
    AGENT_NOT_CONNECTED = "AGENT_NOT_CONNECTED"
    TIMEOUT = "TIMEOUT"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    DOCKER_ERROR = "DOCKER_ERROR"
    AGENT_ERROR = "AGENT_ERROR"
    INVALID_RESPONSE = "INVALID_RESPONSE"
    CIRCUIT_OPEN = "CIRCUIT_OPEN"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"

    @property
    def retryable(self) -> bool:
        """Transient by nature: trying again later can succeed (UNKNOWN_ERROR cautiously)."""
        return self in _RETRYABLE

    @property
    def cautious(self) -> bool:
        """Retryable only sparingly, because we do not know whether it is transient."""
        return self is ErrorCode.UNKNOWN_ERROR


_RETRYABLE = frozenset({
    ErrorCode.NETWORK_ERROR,
    ErrorCode.AGENT_DISCONNECTED,
    ErrorCode.AGENT_NOT_CONNECTED,
    ErrorCode.TIMEOUT,
    ErrorCode.UNKNOWN_ERROR,
})


class ResilienceError(Exception):
    """Base for errors raised by this library; carries a classified ``code``."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.UNKNOWN_ERROR) -> None:
        super().__init__(message)
        self.code = code


class CircuitOpenError(ResilienceError):
    """Raised instead of calling through an open breaker, so callers fail fast."""

    def __init__(self, name: str, retry_after: float | None = None) -> None:
        hint = f"; retry after {retry_after:.3g}s" if retry_after is not None else ""
        super().__init__(f"circuit breaker {name!r} is open{hint}", ErrorCode.CIRCUIT_OPEN)
        self.name = name
        self.retry_after = retry_after

    def __reduce__(self):  # keep picklable despite the custom __init__ signature
        return (type(self), (self.name, self.retry_after))


# (module, qualname) pairs; the first table whose pair appears in the MRO wins, in this order.
_Names = frozenset[tuple[str, str]]
_NETWORK_FIRST: _Names = frozenset({
    # urllib3 2.x makes NewConnectionError a ConnectTimeoutError subclass; it is a refusal.
    ("urllib3.exceptions", "NewConnectionError"),
})
_TIMEOUT_NAMES: _Names = frozenset({
    # By name, so that classifying never imports asyncio or subprocess (4+ MiB of RSS together).
    ("asyncio.exceptions", "TimeoutError"),  # Python 3.10; an alias of TimeoutError from 3.11
    ("subprocess", "TimeoutExpired"),
    ("requests.exceptions", "Timeout"),
    ("urllib3.exceptions", "ReadTimeoutError"),
    ("urllib3.exceptions", "ConnectTimeoutError"),
    ("urllib3.exceptions", "TimeoutError"),
    ("aiohttp.client_exceptions", "ServerTimeoutError"),
})
_NETWORK_NAMES: _Names = frozenset({
    ("requests.exceptions", "ConnectionError"),
    ("requests.exceptions", "ChunkedEncodingError"),
    ("urllib3.exceptions", "MaxRetryError"),
    ("urllib3.exceptions", "ProtocolError"),
    ("aiohttp.client_exceptions", "ClientConnectionError"),
})
_DOCKER_API = ("docker.errors", "APIError")
_DOCKER_BASE = ("docker.errors", "DockerException")
_KUBE_API = ("kubernetes.client.exceptions", "ApiException")
_REQUESTS_HTTP = ("requests.exceptions", "HTTPError")
_AIOHTTP_RESPONSE = ("aiohttp.client_exceptions", "ClientResponseError")

_DENIED_STATUS = frozenset({401, 403})
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})  # worth a retry: timeouts, throttling, 5xx
# docker-py wraps "cannot reach the daemon" in a plain DockerException with this text.
_DOCKER_UNREACHABLE = "Error while fetching server API version"
_MAX_CAUSE_DEPTH = 4


def _mro_names(cls: type) -> _Names:
    names = _MRO_CACHE.get(cls)
    if names is None:
        names = frozenset((c.__module__, c.__qualname__) for c in cls.__mro__)
        _MRO_CACHE[cls] = names
    return names


_MRO_CACHE: dict[type, _Names] = {}


def _status_of(exc: BaseException) -> int | None:
    """HTTP status from ``status_code``, ``status`` or ``response.status_code``, if any."""
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if response is not None:  # requests.Response is falsy for 4xx/5xx, so test identity
        value = getattr(response, "status_code", None)
        if isinstance(value, int):
            return value
    return None


def _from_status(exc: BaseException, names: _Names) -> ErrorCode | None:
    """Map HTTP-carrying exceptions (docker, kubernetes, requests, aiohttp) by status."""
    is_docker = _DOCKER_API in names
    is_kube = _KUBE_API in names
    if not (is_docker or is_kube or _REQUESTS_HTTP in names or _AIOHTTP_RESPONSE in names):
        return None
    status = _status_of(exc)
    if status in _DENIED_STATUS:
        return ErrorCode.PERMISSION_DENIED
    if status in TRANSIENT_STATUS or (is_kube and not status):  # kube status 0: no response
        return ErrorCode.NETWORK_ERROR
    if is_docker:
        return ErrorCode.DOCKER_ERROR
    return ErrorCode.INVALID_RESPONSE


def _any(names: _Names, table: Iterable[tuple[str, str]]) -> bool:
    return not names.isdisjoint(table)


def _classify_one(exc: BaseException) -> ErrorCode:
    for attr in ("error_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, ErrorCode):
            return value
    names = _mro_names(type(exc))
    if _DOCKER_BASE in names and _DOCKER_UNREACHABLE in str(exc):
        return ErrorCode.AGENT_NOT_CONNECTED
    by_status = _from_status(exc, names)
    if by_status is not None:
        return by_status
    if _any(names, _NETWORK_FIRST):
        return ErrorCode.NETWORK_ERROR
    if _any(names, _TIMEOUT_NAMES) or isinstance(
        exc, (TimeoutError, socket.timeout)
    ):
        return ErrorCode.TIMEOUT
    if _any(names, _NETWORK_NAMES) or isinstance(exc, (ConnectionError, socket.gaierror, socket.herror)):
        return ErrorCode.NETWORK_ERROR
    if isinstance(exc, PermissionError):
        return ErrorCode.PERMISSION_DENIED
    if isinstance(exc, FileNotFoundError) and str(exc.filename or "").endswith(".sock"):
        # A missing unix socket means the agent/daemon is not running (yet): retry later.
        return ErrorCode.AGENT_NOT_CONNECTED
    if isinstance(exc, json.JSONDecodeError):
        return ErrorCode.INVALID_RESPONSE
    if _DOCKER_BASE in names:
        return ErrorCode.DOCKER_ERROR
    return ErrorCode.UNKNOWN_ERROR


def classify(exc: BaseException) -> ErrorCode:
    """Map any exception to an ErrorCode; unknown wrappers are explained by their ``__cause__``.

    Documented extras: a FileNotFoundError on a ``*.sock`` path and docker's "Error while
    fetching server API version" both mean AGENT_NOT_CONNECTED (daemon absent, retryable).
    """
    code = _classify_one(exc)
    depth = 0
    cause = exc.__cause__
    while code is ErrorCode.UNKNOWN_ERROR and cause is not None and depth < _MAX_CAUSE_DEPTH:
        code = _classify_one(cause)
        cause = cause.__cause__
        depth += 1
    return code
