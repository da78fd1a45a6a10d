"""The metric families of a ResilienceRegistry as one table, free of any exposition library.

Both the exporter's own /metrics and the prometheus_client collector (``.prometheus``) render
these rows, so the two show the same names, labels and values. Keyed breakers put their key in
their own label (``circuit_breaker_state{deviceId="d1"}``), so label names vary within a family.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from .breaker import OUTCOMES, BreakerSnapshot
from .keyed import EVICTION_REASONS, KeyedSnapshot
from .registry import ResilienceRegistry, RetryOutcome

GAUGE = "gauge"
COUNTER = "counter"
Labels = tuple[tuple[str, str], ...]
Sample = tuple[Labels, float]
RETRY_KINDS = tuple(kind.value for kind in RetryOutcome)


@dataclass(frozen=True)
class View:
    """Everything one scrape reads, taken once so every family sees the same moment."""

    breakers: list[BreakerSnapshot]
    keyed: list[KeyedSnapshot]
    retries: list[tuple[str, dict[str, int]]]
    errors: list[tuple[tuple[str, str], int]]
    budget_exhausted: int

    @classmethod
    def of(cls, registry: ResilienceRegistry) -> "View":
        return cls(
            breakers=sorted(registry.breaker_snapshots(), key=lambda s: s.name),
            keyed=sorted(registry.keyed_snapshots(), key=lambda k: k.name),
            retries=sorted((r.name, r.kinds) for r in registry.retry_snapshots()),
            errors=sorted(registry.error_counts().items()),
            budget_exhausted=registry.budget.exhausted_total,
        )


@dataclass(frozen=True)
class FamilySpec:
    """One row: name (counters end in _total), type, help, and the samples it draws from a View."""

    name: str
    type: str
    help: str
    samples: Callable[[View], Iterable[Sample]]


def _state(v: View) -> Iterator[Sample]:
    for s in v.breakers:
        yield (("name", s.name),), s.state.metric_value
    for k in v.keyed:
        for key, state in k.states:
            yield ((k.label, key),), state.metric_value


def _transitions(v: View) -> Iterator[Sample]:
    per_key = [(("name", s.name), s.transitions) for s in v.breakers]
    per_key += [((k.label, key), t) for k in v.keyed for key, t in k.transitions]
    for ident, transitions in per_key:
        for (before, after), count in sorted(transitions.items()):
            yield (ident, ("from", before), ("to", after)), count


def _calls(v: View) -> Iterator[Sample]:
    # A keyed set counts its calls under its own name: one series per outcome, not per key.
    for name, calls in [(s.name, s.calls) for s in v.breakers] + [(k.name, k.calls) for k in v.keyed]:
        for outcome in OUTCOMES:
            yield (("name", name), ("outcome", outcome)), calls.get(outcome, 0)


def _failures_in_window(v: View) -> Iterator[Sample]:
    for s in v.breakers:
        yield (("name", s.name),), s.failures_in_window


def _keys(v: View) -> Iterator[Sample]:
    for k in v.keyed:
        yield (("name", k.name),), len(k.states)


def _evictions(v: View) -> Iterator[Sample]:
    for k in v.keyed:
        for reason in EVICTION_REASONS:
            yield (("name", k.name), ("reason", reason)), k.evicted[reason]


def _retries(v: View) -> Iterator[Sample]:
    for name, kinds in v.retries:
        for kind in RETRY_KINDS:
            yield (("name", name), ("kind", kind)), kinds.get(kind, 0)


def _errors(v: View) -> Iterator[Sample]:
    for (name, code), count in v.errors:
        yield (("name", name), ("code", code)), count


FAMILIES: tuple[FamilySpec, ...] = (
    FamilySpec("circuit_breaker_state", GAUGE,
               "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced-open, 4 disabled.", _state),
    FamilySpec("circuit_breaker_transitions_total", COUNTER, "Circuit breaker state transitions.", _transitions),
    FamilySpec("circuit_breaker_calls_total", COUNTER, "Calls through a circuit breaker by outcome.", _calls),
    FamilySpec("circuit_breaker_failures_in_window", GAUGE,
               "Failures currently counted in the breaker's sliding window.", _failures_in_window),
    FamilySpec("circuit_breaker_keys", GAUGE, "Keys (one breaker each) currently held by a keyed breaker set.", _keys),
    FamilySpec("circuit_breaker_keys_evicted_total", COUNTER,
               "Keys dropped from a keyed breaker set, by reason (idle, cap).", _evictions),
    FamilySpec("retry_calls_total", COUNTER,
               "Calls through a retry policy by kind (resilience4j's four kinds).", _retries),
    FamilySpec("resilience_errors_total", COUNTER, "Failed attempts by policy or breaker name and error code.", _errors),
    FamilySpec("retry_budget_exhausted_total", COUNTER,
               "Retries refused because the process-wide retry budget was spent.",
               lambda v: [((), v.budget_exhausted)]),
)


def collect(registry: ResilienceRegistry) -> Iterator[tuple[FamilySpec, list[Sample]]]:
    """Every family of ``registry`` with its samples, read from one View."""
    view = View.of(registry)
    for family in FAMILIES:
        yield family, list(family.samples(view))
