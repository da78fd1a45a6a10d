"""Circuit breaker, retry and error families, read from a ResilienceRegistry at scrape time.

Breakers and retry policies number in the tens, so they are rendered on every scrape from
snapshots; the library itself never touches exposition.
"""
from __future__ import annotations

from typing import Iterable

from exporter.metrics.family import COUNTER, GAUGE, Family, Sample, render
from exporter.resilience import BreakerSnapshot, ResilienceRegistry

BREAKER_OUTCOMES = ("success", "failure", "rejected", "ignored")
RETRY_KINDS = ("successful_without_retry", "successful_with_retry", "failed_without_retry", "failed_with_retry")


def _state(s: BreakerSnapshot) -> Iterable[Sample]:
    yield (s.name,), s.state.metric_value


def _transitions(s: BreakerSnapshot) -> Iterable[Sample]:
    for (before, after), count in sorted(s.transitions.items()):
        yield (s.name, before, after), count


def _calls(s: BreakerSnapshot) -> Iterable[Sample]:
    for outcome in BREAKER_OUTCOMES:
        yield (s.name, outcome), s.calls.get(outcome, 0)


def _failures_in_window(s: BreakerSnapshot) -> Iterable[Sample]:
    yield (s.name,), s.failures_in_window


BREAKER_FAMILIES: tuple[Family[BreakerSnapshot], ...] = (
    Family("circuit_breaker_state", GAUGE,
           "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced-open, 4 disabled.", ("name",), _state),
    Family("circuit_breaker_transitions_total", COUNTER,
           "Circuit breaker state transitions.", ("name", "from", "to"), _transitions),
    Family("circuit_breaker_calls_total", COUNTER,
           "Calls through a circuit breaker by outcome.", ("name", "outcome"), _calls),
    Family("circuit_breaker_failures_in_window", GAUGE,
           "Failures currently counted in the breaker's sliding window.", ("name",), _failures_in_window),
)


def _retry_kinds(item: tuple[str, dict[str, int]]) -> Iterable[Sample]:
    name, kinds = item
    for kind in RETRY_KINDS:
        yield (name, kind), kinds.get(kind, 0)


RETRY_FAMILY: Family[tuple[str, dict[str, int]]] = Family(
    "retry_calls_total", COUNTER, "Calls through a retry policy by kind (resilience4j's four kinds).",
    ("name", "kind"), _retry_kinds)

ERRORS_FAMILY: Family[tuple[tuple[str, str], int]] = Family(
    "resilience_errors_total", COUNTER, "Failed attempts by policy or breaker name and error code.",
    ("name", "code"), lambda item: [(item[0], item[1])])

BUDGET_FAMILY: Family[int] = Family(
    "retry_budget_exhausted_total", COUNTER,
    "Retries refused because the process-wide retry budget was spent.", (), lambda n: [((), n)])


class ResilienceCollector:
    """Renders every breaker, retry policy and error count of one registry."""

    def __init__(self, registry: ResilienceRegistry) -> None:
        self._registry = registry

    def families(self) -> tuple[Family, ...]:
        return (*BREAKER_FAMILIES, RETRY_FAMILY, ERRORS_FAMILY, BUDGET_FAMILY)

    def collect(self) -> Iterable[tuple[Family, str]]:
        snapshots = sorted(self._registry.breaker_snapshots(), key=lambda s: s.name)
        for family in BREAKER_FAMILIES:
            yield family, "".join(render(family, s, "") for s in snapshots)
        retries = sorted((r.name, r.kinds) for r in self._registry.retry_snapshots())
        yield RETRY_FAMILY, "".join(render(RETRY_FAMILY, item, "") for item in retries)
        errors = sorted(self._registry.error_counts().items())
        yield ERRORS_FAMILY, "".join(render(ERRORS_FAMILY, item, "") for item in errors)
        yield BUDGET_FAMILY, render(BUDGET_FAMILY, self._registry.budget.exhausted_total, "")
