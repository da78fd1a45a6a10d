"""Assemble one scrape: family headers + cached bodies, then process metrics, in either format.

Prometheus text 0.0.4 and OpenMetrics differ only in counter family names in the headers and the
trailing `# EOF`, so sample text is shared. Gzip uses level 1: about 3x cheaper than the default
for the same text, and Prometheus always asks for gzip. A gzip body is one member made of
deflate segments (exporter.metrics.deflate): the cached families' kept segments, headers
compressed once, and one segment per run of small uncached text, the process metrics and
`# EOF` last.
"""
from __future__ import annotations

import time
from typing import Iterable, Protocol, Union

from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from prometheus_client import generate_latest as generate_text
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as CONTENT_TYPE_OPENMETRICS
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from exporter.metrics.deflate import Segment, gzip_body, segment
from exporter.metrics.family import Family


class Collector(Protocol):
    def families(self) -> tuple[Family, ...]: ...

    def collect(self) -> Iterable[tuple[Family, "Body"]]: ...


Body = Union[str, bytes, Iterable[bytes]]


def collect_parts(collectors: Iterable[Collector], parts: list[bytes], *, openmetrics: bool = False,
                  headers: dict[tuple[str, bool], bytes] | None = None) -> list[bytes]:
    """Append HELP/TYPE and the sample text of every family of `collectors` to `parts`.

    A collector's body is text, bytes, or chunks of bytes (the cached container text); the
    caller joins the whole scrape once: the text of 1,000 containers is ~3 MB, and each extra
    copy of it costs about a millisecond here.
    """
    cache = headers if headers is not None else {}
    for collector in collectors:
        for family, body in collector.collect():
            _append(family, body, parts, openmetrics, cache)
    return parts


def _header(family: Family, openmetrics: bool, cache: dict[tuple[str, bool], bytes]) -> bytes:
    header = cache.get((family.name, openmetrics))
    if header is None:
        header = cache[(family.name, openmetrics)] = family.header(openmetrics=openmetrics).encode()
    return header


def _append(family: Family, body: Body, parts: list[bytes], openmetrics: bool,
            cache: dict[tuple[str, bool], bytes]) -> None:
    parts.append(_header(family, openmetrics, cache))
    if isinstance(body, str):
        parts.append(body.encode())
    elif isinstance(body, bytes):
        parts.append(body)
    else:
        parts.extend(body)


def collect_segments(collectors: Iterable[Collector], tail: bytes, *, openmetrics: bool = False,
                     headers: dict[tuple[str, bool], bytes] | None = None,
                     compressed_headers: dict[tuple[str, bool], Segment] | None = None) -> list[Segment]:
    """Deflate segments of `collect_parts(...)` + `tail`, in order, as in one scrape.

    Collectors that keep their text compressed (`collect_compressed`) contribute it as it is,
    after their family's header (compressed once); the text in between (small collectors) is
    gathered and compressed per run, the last run ending with `tail` (`# EOF` in OpenMetrics).
    """
    cache = headers if headers is not None else {}
    compressed_cache = compressed_headers if compressed_headers is not None else {}
    out: list[Segment] = []
    pending: list[bytes] = []
    for collector in collectors:
        collect = getattr(collector, "collect_compressed", None) or collector.collect
        for family, body in collect():
            if not isinstance(body, Segment):
                _append(family, body, pending, openmetrics, cache)
                continue
            if pending:
                out.append(segment(b"".join(pending)))
                pending.clear()
            header = compressed_cache.get((family.name, openmetrics))
            if header is None:
                header = compressed_cache[(family.name, openmetrics)] = segment(_header(family, openmetrics, cache))
            out += (header, body)
    pending.append(tail)
    out.append(segment(b"".join(pending)))
    return out


def render_collectors(collectors: Iterable[Collector], *, openmetrics: bool = False) -> bytes:
    """Text of `collectors` alone (no process metrics, no # EOF): what a textfile holds."""
    return b"".join(collect_parts(collectors, [], openmetrics=openmetrics))


def _quality(header: str | None, token: str) -> float:
    """The highest q a header's comma-separated list gives `token` (a media type or coding); 0 if absent."""
    best = 0.0
    for item in (header or "").lower().split(","):
        name, *params = item.split(";")
        if name.strip() != token:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = max(best, q)
    return best


def wants_openmetrics(accept: str | None) -> bool:
    """Content negotiation as Prometheus does it: OpenMetrics only when asked for (q > 0)."""
    return _quality(accept, "application/openmetrics-text") > 0


def wants_gzip(accept_encoding: str | None) -> bool:
    """gzip when the client accepts it (`gzip;q=0` refuses it)."""
    return _quality(accept_encoding, "gzip") > 0


class Exposition:
    """Renders every collector plus the process registry (CPU, memory, scrape duration)."""

    def __init__(self, collectors: Iterable[Collector]) -> None:
        self._collectors = list(collectors)
        self.process_registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.process_registry)
        PlatformCollector(registry=self.process_registry)
        self.scrape_duration = Histogram(
            "resilience_exporter_scrape_duration_seconds",
            "Time spent rendering one scrape of /metrics.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=self.process_registry)
        self._headers: dict[tuple[str, bool], bytes] = {}
        self._compressed_headers: dict[tuple[str, bool], Segment] = {}

    def names(self) -> list[str]:
        return [f.name for c in self._collectors for f in c.families()]

    def render(self, *, openmetrics: bool = False) -> bytes:
        """One full scrape body in the requested format."""
        start = time.perf_counter()
        parts = collect_parts(self._collectors, [], openmetrics=openmetrics, headers=self._headers)
        parts.append(self._tail(openmetrics))
        body = b"".join(parts)
        self.scrape_duration.observe(time.perf_counter() - start)
        return body

    def render_gzip(self, *, openmetrics: bool = False) -> bytes:
        """The same body gzip-encoded, from the kept compressed text of every unchanged block."""
        start = time.perf_counter()
        body = gzip_body(collect_segments(self._collectors, self._tail(openmetrics), openmetrics=openmetrics,
                                          headers=self._headers, compressed_headers=self._compressed_headers))
        self.scrape_duration.observe(time.perf_counter() - start)
        return body

    def _tail(self, openmetrics: bool) -> bytes:
        # the process registry ends an OpenMetrics body with its "# EOF"
        return (generate_openmetrics(self.process_registry) if openmetrics
                else generate_text(self.process_registry))

    def response(self, accept: str | None, accept_encoding: str | None) -> tuple[bytes, dict[str, str]]:
        """Body and headers for an HTTP scrape, honouring Accept and Accept-Encoding."""
        openmetrics = wants_openmetrics(accept)
        headers = {"Content-Type": CONTENT_TYPE_OPENMETRICS if openmetrics else CONTENT_TYPE_PLAIN_0_0_4}
        if wants_gzip(accept_encoding):
            headers["Content-Encoding"] = "gzip"
            return self.render_gzip(openmetrics=openmetrics), headers
        return self.render(openmetrics=openmetrics), headers
