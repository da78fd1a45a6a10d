"""Scrape of N synthetic container records: our cached exposition vs stock client_python.

The peer is the usual exporter shape: client_python Gauge/Counter objects with the same
families, labels and values, rendered by `generate_latest`. Rows: a scrape with nothing
changed since the previous one (the common case), and one where every container changed.
"""
from __future__ import annotations

import gzip
import random
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bench.common import Row
from exporter.metrics import CONTAINER_FAMILIES, ContainerCollector, Exposition
from exporter.metrics.containers import IDENTITY_LABELS
from exporter.metrics.family import COUNTER
from exporter.state import ContainerRecord, Health, Phase, Reason, Source, StateStore


def synthetic(n: int) -> list[ContainerRecord]:
    reasons = [Reason.RUNNING, Reason.CRASH_LOOP_BACK_OFF, Reason.OOM_KILLED, Reason.ERR_IMAGE_PULL]
    out = []
    for i in range(n):
        reason = reasons[i % len(reasons)]
        rec = ContainerRecord(
            key=f"id{i:06d}", source=Source.DOCKER, container=f"svc-{i}", host="host-1",
            namespace=f"proj{i % 10}", pod=f"svc{i % 50}", image=f"registry.local/app{i % 20}:1.{i % 7}",
            container_id=f"{i:064x}", phase=Phase.RUNNING if reason is Reason.RUNNING else Phase.WAITING,
            reason=reason, restarts=i % 13, last_exit_code=i % 3, last_terminated_reason=Reason.ERROR,
            last_terminated_at=1.7e9 + i, oom_kills=i % 2, health=Health.HEALTHY, started_at=1.7e9,
            next_retry_at=1.7e9 + 300 if reason is not Reason.RUNNING else None)
        out.append(rec.with_failure(Reason.ERROR, i % 5 + 1))
    return out


def stock_registry(records: list[ContainerRecord]) -> CollectorRegistry:
    """The same samples held in client_python metric objects, as a classic exporter would."""
    disable_created_metrics()  # fair: we do not expose _created series either
    registry = CollectorRegistry(auto_describe=False)
    for family in CONTAINER_FAMILIES:
        labels = IDENTITY_LABELS + family.labels
        if family.type == COUNTER:
            metric = Counter(family.name[:-6], family.help, labels, registry=registry)
        else:
            metric = Gauge(family.name, family.help, labels, registry=registry)
        for rec in records:
            ident = (rec.source.value, rec.host, rec.namespace, rec.pod, rec.container)
            for extra, value in family.samples(rec):
                child = metric.labels(*ident, *extra)
                if family.type == COUNTER:
                    child.inc(value)
                else:
                    child.set(value)
    return registry


def best_of(fn, repeats: int = 30) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def sample_count(text: str) -> int:
    """Container samples only (ours also carries process and scrape-duration families)."""
    return sum(1 for f in text_string_to_metric_families(text) for s in f.samples
               if s.name.startswith("workload_container_"))


def rows(n: int = 1000) -> list[Row]:
    records = synthetic(n)
    store = StateStore()
    exposition = Exposition([ContainerCollector(store)])
    for rec in records:
        store.put(rec)
    ours_text = exposition.render().decode()
    registry = stock_registry(records)
    peer_text = generate_latest(registry).decode()
    ours_samples = sample_count(ours_text)
    peer_samples = sample_count(peer_text)
    assert ours_samples == peer_samples, (ours_samples, peer_samples)

    steady = best_of(lambda: exposition.render())
    peer = best_of(lambda: generate_latest(registry), repeats=10)

    def all_dirty() -> None:
        for rec in records:
            store.put(rec)
        exposition.render()

    dirty = best_of(all_dirty, repeats=10)
    exposition.render_gzip()
    steady_gzip = best_of(lambda: exposition.render_gzip())
    peer_gzip = best_of(lambda: gzip.compress(generate_latest(registry), compresslevel=1), repeats=5)
    rng = random.Random(1)

    def churn() -> None:  # a new failure on 10 % of the containers, then a gzip scrape
        for rec in rng.sample(records, n // 10):
            store.put(rec.with_failure(Reason.ERROR, rng.randint(1, 1000)))
        exposition.render_gzip()

    churned = best_of(churn, repeats=10)
    return [
        Row(f"scrape {n} containers ({ours_samples} samples), unchanged", steady * 1e3, peer * 1e3, "ms",
            "client_python generate_latest", "<= 3 ms and <= 0.5x", steady <= 0.003 and steady / peer <= 0.5),
        Row(f"scrape {n} containers, all changed since last scrape", dirty * 1e3, peer * 1e3, "ms",
            "client_python generate_latest", "(informative)", None),
        Row(f"gzip scrape {n} containers, unchanged (kept compressed blocks)", steady_gzip * 1e3, peer_gzip * 1e3,
            "ms", "generate_latest + gzip level 1", "(informative)", None),
        Row(f"gzip scrape {n} containers, 10 % changed since last scrape", churned * 1e3, peer_gzip * 1e3,
            "ms", "generate_latest + gzip level 1", "(informative)", None),
    ]


if __name__ == "__main__":
    from bench.common import format_table

    print(format_table(rows()))
