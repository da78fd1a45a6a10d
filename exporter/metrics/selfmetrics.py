"""The exporter's own health: build info, source status and events, tracked objects."""
from __future__ import annotations

import platform
from typing import Iterable

from exporter import __version__
from exporter.metrics.family import COUNTER, GAUGE, TRUNCATIONS, Family, Sample, render
from exporter.state import SourceStatus, StateStore


def _source_up(s: SourceStatus) -> Iterable[Sample]:
    yield (s.name,), int(s.up)


def _source_synced(s: SourceStatus) -> Iterable[Sample]:
    yield (s.name,), int(s.synced)


def _events(s: SourceStatus) -> Iterable[Sample]:
    for result, count in sorted(s.events.items()):
        yield (s.name, result), count


BUILD_INFO: Family[None] = Family(
    "resilience_exporter_build_info", GAUGE,
    "A metric with a constant '1' value labeled by version and Python version.",
    ("version", "python_version"), lambda _: [((__version__, platform.python_version()), 1)])

SOURCE_FAMILIES: tuple[Family[SourceStatus], ...] = (
    Family("resilience_exporter_source_up", GAUGE,
           "1 when the source's engine (dockerd, Kubernetes API) is connected.", ("source",), _source_up),
    Family("resilience_exporter_source_synced", GAUGE,
           "1 once the source's initial list has been loaded into the store.", ("source",), _source_synced),
    Family("resilience_exporter_events_total", COUNTER,
           "Events received from a source by result (ok, malformed, ignored, ...).", ("source", "result"), _events),
    Family("resilience_exporter_source_engine_info", GAUGE,
           "A metric with a constant '1' value labeled by the engine a source talks to (docker, podman) and its version.",
           ("source", "engine", "version"),
           lambda s: [((s.name, s.engine, s.engine_version), 1)] if s.engine else []),
    Family("resilience_exporter_containers_dropped_total", COUNTER,
           "Containers not tracked because the source's max_containers cap was reached.", ("source",),
           lambda s: [((s.name,), s.dropped)]),
    Family("resilience_exporter_source_errors_total", COUNTER,
           "List or watch sessions of the source that ended in an error; the source backs off and resumes.",
           ("source",), lambda s: [((s.name,), s.errors)]),
)

LABELS_TRUNCATED: Family[int] = Family(
    "resilience_exporter_label_values_truncated_total", COUNTER,
    "Label values cut to 512 characters when a changed object's series were rendered.", (), lambda n: [((), n)])

TRACKED: Family[int] = Family(
    "resilience_exporter_tracked_containers", GAUGE,
    "Containers currently tracked in the state store.", (), lambda n: [((), n)])


class SelfCollector:
    """Build info and per-source health, read from the store."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._build = render(BUILD_INFO, None, "")

    def families(self) -> tuple[Family, ...]:
        return (BUILD_INFO, *SOURCE_FAMILIES, TRACKED, LABELS_TRUNCATED)

    def collect(self) -> Iterable[tuple[Family, str]]:
        yield BUILD_INFO, self._build
        sources = sorted(self._store.sources(), key=lambda s: s.name)
        for family in SOURCE_FAMILIES:
            yield family, "".join(render(family, s, "") for s in sources)
        yield TRACKED, render(TRACKED, len(self._store), "")
        yield LABELS_TRUNCATED, render(LABELS_TRUNCATED, TRUNCATIONS.total, "")
