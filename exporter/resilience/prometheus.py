"""prometheus_client collector for a ResilienceRegistry: the library's metrics in your service.

    from prometheus_client import REGISTRY, start_http_server
    from exporter.resilience.prometheus import ResilienceCollector
    REGISTRY.register(ResilienceCollector())   # the process-wide resilience registry
    start_http_server(8000)

The only module of the library that imports prometheus_client; the families come from
``families.FAMILIES``, the table the exporter's own /metrics renders.
"""
from __future__ import annotations

from typing import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from . import registry as _registry_module
from .families import COUNTER, FAMILIES, FamilySpec, collect
from .registry import ResilienceRegistry


def _metric(spec: FamilySpec) -> Metric:
    # prometheus_client names a counter family without its _total suffix and adds it per sample
    name = spec.name[:-len("_total")] if spec.type == COUNTER else spec.name
    return Metric(name, spec.help, spec.type)


class ResilienceCollector(Collector):
    """Yields breaker, keyed-breaker, retry, error and budget families read at scrape time.

    ``describe()`` lists the families without reading the registry, so registering does not
    collect and a second registration in the same CollectorRegistry is refused as a duplicate.
    """

    def __init__(self, registry: ResilienceRegistry | None = None) -> None:
        self._registry = registry

    def __repr__(self) -> str:
        return f"ResilienceCollector({self._registry!r})"

    @property
    def registry(self) -> ResilienceRegistry:
        # None follows the process-wide registry, read per scrape like RetryPolicy's default
        return self._registry if self._registry is not None else _registry_module.REGISTRY

    def describe(self) -> Iterator[Metric]:
        for spec in FAMILIES:
            yield _metric(spec)

    def collect(self) -> Iterator[Metric]:
        for spec, samples in collect(self.registry):
            metric = _metric(spec)
            for labels, value in samples:
                metric.add_sample(spec.name, dict(labels), value)
            yield metric
