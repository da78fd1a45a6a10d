"""Circuit breaker, retry and error families, read from a ResilienceRegistry at scrape time.

The rows live in the library (``exporter.resilience.families``) so that prometheus_client users
of ``exporter.resilience.prometheus`` see exactly what this renders; breakers and policies number
in the tens (keyed sets: one state line per key), so they are rendered on every scrape.
"""
from __future__ import annotations

from typing import Iterable

from exporter.metrics.family import COUNTER, GAUGE, Family, format_value, label_prefix
from exporter.resilience import ResilienceRegistry
from exporter.resilience.families import FAMILIES, FamilySpec, Sample, collect

_TYPES = {"gauge": GAUGE, "counter": COUNTER}


def _header_family(spec: FamilySpec) -> Family[None]:
    """The HELP/TYPE row of a library family; its samples come from ``render_samples``."""
    return Family(spec.name, _TYPES[spec.type], spec.help, (), lambda _: ())


HEADERS: dict[str, Family[None]] = {spec.name: _header_family(spec) for spec in FAMILIES}


def render_samples(name: str, samples: Iterable[Sample]) -> str:
    lines = []
    for labels, value in samples:
        if labels:
            text = label_prefix([n for n, _ in labels], [v for _, v in labels])
            lines.append(f"{name}{{{text}}} {format_value(value)}\n")
        else:
            lines.append(f"{name} {format_value(value)}\n")
    return "".join(lines)


class ResilienceCollector:
    """Renders every breaker, keyed breaker set, retry policy and error count of one registry."""

    def __init__(self, registry: ResilienceRegistry) -> None:
        self._registry = registry

    def families(self) -> tuple[Family, ...]:
        return tuple(HEADERS.values())

    def collect(self) -> Iterable[tuple[Family, str]]:
        for spec, samples in collect(self._registry):
            yield HEADERS[spec.name], render_samples(spec.name, samples)
