"""requests integration: a transport adapter with a breaker per host and the library's retries.

    session = requests.Session()
    adapter = ResilientAdapter()                      # breakers: REGISTRY.keyed("http", label="host")
    session.mount("http://", adapter); session.mount("https://", adapter)

Only idempotent methods are retried (RFC 9110 9.2.2, urllib3's default list); every method
passes the breaker, so a failing POST still counts against its host. A 429/5xx answer is a
failure; once retries are spent the caller gets that last response, as from urllib3's Retry.
Importing this module imports requests; ``exporter.resilience`` itself never does.
"""
from __future__ import annotations

import email.utils
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import registry as _registry_module
from .backoff import FullJitter
from .keyed import KeyedBreakers
from .retry import RetryPolicy

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def host_key(request: requests.PreparedRequest) -> str:
    """Default breaker key: ``host:port`` of the URL."""
    return urlsplit(request.url or "").netloc


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now()) if when.tzinfo else None


class RetryableResponse(requests.exceptions.HTTPError):
    """A 429/5xx answer raised inside the adapter so breaker and policy see a failure.

    classify() maps it like any requests HTTPError (429/5xx: NETWORK_ERROR, retryable);
    ``retry_after`` carries the server's Retry-After, which RetryPolicy waits at least.
    """

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"{response.status_code} from {response.url}", response=response)
        self.retry_after = parse_retry_after(response.headers.get("Retry-After"))


def default_policy() -> RetryPolicy:
    """3 attempts, full jitter from 0.2 s to 5 s, at most 30 s in all (a long Retry-After gives up)."""
    return RetryPolicy(name="http", max_attempts=3, max_elapsed=30.0, backoff=FullJitter(0.2, 5.0))


def _replayable(request: requests.PreparedRequest) -> bool:
    # a streamed or file body is consumed by the first attempt and cannot be sent again
    return request.body is None or isinstance(request.body, (bytes, str))


class ResilientAdapter(HTTPAdapter):
    """HTTPAdapter whose ``send`` goes through ``breakers`` (keyed by ``key(request)``) and ``retry``.

    urllib3's own retries stay off (``max_retries=0``): one policy, one set of metrics.
    """

    def __init__(self, retry: RetryPolicy | None = None, breakers: KeyedBreakers | None = None, *,
                 key: Callable[[requests.PreparedRequest], str] = host_key,
                 retry_methods: frozenset[str] = IDEMPOTENT_METHODS,
                 retry_statuses: frozenset[int] = RETRY_STATUSES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.retry = retry if retry is not None else default_policy()
        self.breakers = breakers if breakers is not None else _registry_module.REGISTRY.keyed("http", label="host")
        self.key = key
        self.retry_methods = frozenset(m.upper() for m in retry_methods)
        self.retry_statuses = frozenset(retry_statuses)

    def __repr__(self) -> str:
        return f"ResilientAdapter(retry={self.retry!r}, breakers={self.breakers!r})"

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        breaker = self.breakers.get(self.key(request))

        def attempt() -> requests.Response:
            response = HTTPAdapter.send(self, request, **kwargs)
            if response.status_code in self.retry_statuses:
                response.content  # read the small error body so the connection goes back to the pool
                raise RetryableResponse(response)
            return response

        try:
            if request.method in self.retry_methods and _replayable(request):
                return self.retry.retry(breaker.call, attempt)
            return breaker.call(attempt)
        except RetryableResponse as exc:
            return exc.response  # type: ignore[return-value]
