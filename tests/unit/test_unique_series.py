"""The exposition invariant: whatever the sources do, no two series share a name and label set.

Random sequences of adds, removals, renames and re-creations with reused names (a removal the
exporter missed, an engine reusing a name, a pod container moving) through the real store and
collectors, checked on the text and OpenMetrics bodies and on what the textfile writer gets; the
kept text (identity labels left out, put back at scrape) against a fresh render, and the gzip body.
"""
from __future__ import annotations

import gzip
import re
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.metrics import ContainerCollector, Exposition
from exporter.metrics.exposition import render_collectors
from exporter.state import ContainerRecord, Phase, PodMeta, Reason, Source, StateStore

SAMPLE = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) ", re.M)
NAMES = ("web", "db", "cache")
HOSTS = ("h1", "h2")

ops = st.lists(st.tuples(st.sampled_from(("add", "remove", "rename", "restart")),
                         st.integers(min_value=0, max_value=7),      # which record key
                         st.sampled_from(NAMES), st.sampled_from(HOSTS),
                         st.sampled_from((Source.DOCKER, Source.KUBERNETES))),
               max_size=40)


def duplicates(body: bytes) -> list[bytes]:
    seen: set[bytes] = set()
    dup = []
    for match in SAMPLE.finditer(body):
        series = match.group(1)
        if series in seen:
            dup.append(series)
        seen.add(series)
    return dup


def container_lines(collector: ContainerCollector) -> list[bytes]:
    """The container families' lines, sorted (pod-level text follows a key's source, which these
    steps change under one key as no engine does)."""
    return sorted(line for line in render_collectors([collector]).splitlines() if not line.startswith(b"workload_pod_"))


@settings(max_examples=200, deadline=None)
@given(steps=ops)
def test_no_exposition_ever_holds_two_series_alike(steps: list[tuple[str, int, str, str, Source]]) -> None:
    store = StateStore()
    collector = ContainerCollector(store, label_allowlist=("app",), pod_label_allowlist=("team",))
    exposition = Exposition([collector])
    exposition.process_registry = CollectorRegistry()  # CPU seconds move between two renders
    clock = 1_000.0
    for op, index, name, host, source in steps:
        key = f"id{index}"
        clock += 1
        old = store.get(key)
        if op == "remove":
            store.remove(key)
        elif op == "rename" and old is not None:
            store.put(old.evolve(container=name))
        elif op == "restart" and old is not None:
            store.put(old.evolve(restarts=old.restarts + 1, reason=Reason.CRASH_LOOP_BACK_OFF, started_at=clock))
        else:
            store.put(ContainerRecord(key=key, source=source, container=name, host=host, pod="p", namespace="ns",
                                      container_id=key, image=f"img:{index}", phase=Phase.RUNNING,
                                      reason=Reason.RUNNING, created_at=clock,
                                      pod_meta=PodMeta(MappingProxyType({"team": host})) if index % 2 == 0 else None,
                                      labels=MappingProxyType({"app": name})))
        for body in (exposition.render(), exposition.render(openmetrics=True), render_collectors([collector])):
            assert not duplicates(body), duplicates(body)
        fresh = ContainerCollector(store, label_allowlist=("app",), pod_label_allowlist=("team",))
        assert container_lines(collector) == container_lines(fresh)
        assert gzip.decompress(exposition.render_gzip(openmetrics=True)) == exposition.render(openmetrics=True)
    # what is shown is the newest record of each identity, and every identity present is shown
    text = exposition.render()
    identities = {(r.source.value, r.host, r.container) for r in store.records()}
    shown = set(re.findall(rb'workload_container_reason\{source="(\w+)",host="(\w+)",namespace="ns",pod="p",'
                           rb'container="(\w+)"', text))
    assert shown == {tuple(v.encode() for v in ident) for ident in identities}
    shadowed = len(store.records()) - len(identities)
    assert f"resilience_exporter_shadowed_records {shadowed}\n".encode() in text


def test_the_newest_record_of_an_identity_is_shown_and_the_older_returns_when_it_goes() -> None:
    store = StateStore()
    exposition = Exposition([ContainerCollector(store)])
    old = ContainerRecord(key="old", source=Source.DOCKER, container="web", host="h", container_id="old",
                          reason=Reason.ERROR, created_at=1.0)
    new = old.evolve(key="new", container_id="new", reason=Reason.RUNNING, phase=Phase.RUNNING, created_at=2.0)
    store.put(old)
    store.put(new)
    text = exposition.render().decode()
    assert 'reason="Running"' in text and 'reason="Error"' not in text
    assert "resilience_exporter_shadowed_records 1\n" in text
    store.remove("new")
    text = exposition.render().decode()
    assert 'reason="Error"' in text and "resilience_exporter_shadowed_records 0\n" in text
