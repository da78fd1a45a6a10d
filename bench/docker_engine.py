"""Benchmarks on a real private dockerd (root needed): scrape vs list+inspect polling, and
event -> metric latency.

- scrape: /metrics render with N containers tracked from events, vs what a polling exporter
  does per scrape (list all containers, inspect each), against the same engine.
- latency: wall time from the engine's event timestamp (timeNano) to the store change that the
  next scrape renders, for container start/die events, plus the render of that scrape.
"""
from __future__ import annotations

import statistics
import subprocess
import time

from bench.common import Row
from exporter.metrics import ContainerCollector, Exposition
from exporter.resilience import ResilienceRegistry
from exporter.sources.docker import DockerWatcher
from exporter.state import StateStore
from tests.integration.dockerd import IMAGE, PrivateDockerd


def _create_many(engine: PrivateDockerd, n: int) -> None:
    client = engine.client()
    have = len(client.containers(all=True, filters={"label": "bench=scrape"}))
    for i in range(have, n):
        client.create_container(IMAGE, command=["true"], name=f"bench-{i}", labels={"bench": "scrape"},
                                host_config=client.create_host_config(network_mode="none"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def rows(n_containers: int = 1000, n_latency: int = 200) -> list[Row]:
    engine = PrivateDockerd()
    engine.start()
    try:
        engine.build_testbox()
        started = time.perf_counter()
        _create_many(engine, n_containers)
        create_time = time.perf_counter() - started
        store = StateStore()
        exposition = Exposition([ContainerCollector(store)])
        watcher = DockerWatcher(store, ResilienceRegistry(), host="bench", base_url=engine.url)
        changes: dict[str, list[tuple[float, str]]] = {}
        store.subscribe(lambda key, rec: rec is not None and changes.setdefault(key, []).append(
            (time.time(), rec.phase.value)))
        watcher.start()
        deadline = time.monotonic() + 600
        while not store.ready() or len(store) < n_containers:
            if time.monotonic() > deadline:
                raise TimeoutError("initial sync")
            time.sleep(0.1)
        exposition.render()
        ours = min(_timed(exposition.render) for _ in range(30))

        client = engine.client()

        def poll() -> None:
            for c in client.containers(all=True):
                client.inspect_container(c["Id"])

        peer = min(_timed(poll) for _ in range(3))

        # latency: run short-lived containers; each start and die event is timed to its store change
        latencies: list[float] = []
        renders: list[float] = []
        for i in range(n_latency // 2):
            cid = client.create_container(IMAGE, command=["true"], name=f"lat-{i}",
                                          host_config=client.create_host_config(network_mode="none"))["Id"]
            since = time.time()
            client.start(cid)
            client.wait(cid, timeout=30)
            deadline = time.monotonic() + 10
            while not any(phase == "terminated" for _, phase in changes.get(cid, [])):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no die seen for {cid[:12]}")
                time.sleep(0.005)
            renders.append(_timed(exposition.render))
            for event in client.events(since=since, until=time.time(), decode=True,
                                       filters={"container": cid, "event": ["start", "die"]}):
                want = "running" if event["Action"] == "start" else "terminated"
                at = event["timeNano"] / 1e9
                seen = next(t for t, phase in changes[cid] if phase == want)
                latencies.append(max(0.0, seen - at))
            client.remove_container(cid, force=True)
        watcher.stop()
    finally:
        engine.close()
    p50, p99 = statistics.median(latencies) * 1e3, _percentile(latencies, 0.99) * 1e3
    return [
        Row(f"scrape {n_containers} containers vs list+inspect per scrape (real dockerd)", ours * 1e3, peer * 1e3,
            "ms", "list + inspect each", "<= 3 ms and >= 100x faster", ours <= 0.003 and peer / ours >= 100),
        Row(f"event -> store change p50 (real dockerd, {len(latencies)} events)", p50, None, "ms", "", "(informative)"),
        Row(f"event -> store change p99 (real dockerd, {len(latencies)} events)", p99, None, "ms", "", "p99 <= 20 ms",
            p99 <= 20),
        Row("scrape render right after each event, p99", _percentile(renders, 0.99) * 1e3, None, "ms", "",
            "(informative)"),
        Row(f"setup: docker create x{n_containers} (vfs)", create_time, None, "s", "", "(informative)"),
    ]


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    from bench.common import format_table

    print(format_table(rows()))
