"""Remove/re-create storms on both real engines: every scrape unique, one reason and phase each.

Containers are force-removed and created again under the same names while the exposition is
scraped; whatever order the engine's events arrive in (and Podman's `remove` is not Docker's
`destroy`), no scrape may hold two series alike, and each live container has exactly one
`workload_container_reason` and exactly one phase at 1.
"""
from __future__ import annotations

import re
import uuid
from typing import Callable, Iterator

import pytest

from exporter.metrics import ContainerCollector, Exposition
from exporter.resilience import ResilienceRegistry
from exporter.sources.docker import DockerWatcher
from exporter.state import StateStore
from tests.harness import wait_until
from tests.integration.dockerd import IMAGE as DOCKER_IMAGE, PrivateDockerd
from tests.integration.podman import IMAGE as PODMAN_IMAGE, PrivatePodman
from tests.integration.test_podman_source import podman, unique_series  # noqa: F401 (fixture)

ROUNDS = 4
NAMES = 4


def storm(url: str, run: Callable[[str, str], object], remove: Callable[[str], object],
          ids: Callable[[str], str]) -> None:
    store = StateStore()
    exposition = Exposition([ContainerCollector(store)])
    watcher = DockerWatcher(store, ResilienceRegistry(), host="storm", base_url=url, reconnect_max_backoff=0.5)
    watcher.start()
    names = [f"storm-{uuid.uuid4().hex[:6]}-{i}" for i in range(NAMES)]
    try:
        wait_until(store.ready, timeout=30, message="the source synced")
        for round_ in range(ROUNDS):
            for name in names:
                remove(name)
                run(name, "sleep 300" if round_ % 2 else f"exit {round_}")
                body = exposition.render().decode()
                assert not unique_series(body), unique_series(body)
            want = {name: ids(name) for name in names}
            wait_until(lambda: all((r := next((r for r in store.records() if r.container == n), None)) is not None
                                   and r.container_id == want[n] for n in names),
                       timeout=60, interval=0.1, message=f"round {round_}: the latest containers in the store")
            for body in (exposition.render().decode(), exposition.render(openmetrics=True).decode()):
                assert not unique_series(body), unique_series(body)
                for name in names:
                    reasons = re.findall(rf'^workload_container_reason\{{[^}}]*container="{name}"[^}}]*\}} 1', body, re.M)
                    phases = re.findall(rf'^workload_container_phase\{{[^}}]*container="{name}"[^}}]*\}} 1', body, re.M)
                    assert len(reasons) == 1 and len(phases) == 1, (name, reasons, phases)
    finally:
        watcher.stop()
        for name in names:
            remove(name)


def test_docker_remove_recreate_storm_keeps_every_scrape_unique(dockerd: PrivateDockerd) -> None:
    storm(dockerd.url,
          run=lambda name, cmd: dockerd.run("--name", name, DOCKER_IMAGE, "sh", "-c", cmd),
          remove=lambda name: dockerd.cli("rm", "-f", name, check=False),
          ids=lambda name: dockerd.inspect(name)["Id"])


def test_podman_remove_recreate_storm_keeps_every_scrape_unique(podman: PrivatePodman) -> None:  # noqa: F811
    storm(podman.url,
          run=lambda name, cmd: podman.run("--name", name, PODMAN_IMAGE, "sh", "-c", cmd),
          remove=lambda name: podman.cli("rm", "-f", "-t", "0", name, check=False),
          ids=lambda name: podman.inspect(name)["Id"])
