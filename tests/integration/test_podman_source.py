"""The Docker source pointed at Podman's Docker-compatible API (`podman system service`).

Podman filters events on its own names (`died`, `remove`) and renames them on output, sends no
`oom` event, answers a `since`+`until` replay with nothing and shows a failed start only as a
`cleanup` of a never-started container: the same reasons and counters must come out anyway.
"""
from __future__ import annotations

import re
import uuid
from typing import Iterator

import pytest

from exporter.metrics import ContainerCollector, Exposition
from exporter.metrics.selfmetrics import SelfCollector
from exporter.resilience import ResilienceRegistry
from exporter.sources.docker import DockerWatcher
from exporter.state import ContainerRecord, Phase, Reason, StateStore
from tests.integration.dockerd import require_root
from tests.integration.podman import IMAGE, PrivatePodman
from tests.harness import wait_until

HOG = ("sh", "-c", 'x=a; while true; do x="$x$x"; done')
SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s", re.M)


@pytest.fixture(scope="module")
def podman() -> Iterator[PrivatePodman]:
    require_root()
    engine = PrivatePodman()
    try:
        engine.start()
        engine.build_testbox()
        yield engine
    finally:
        engine.close()


class Harness:
    def __init__(self, engine: PrivatePodman) -> None:
        self.engine = engine
        self.store = StateStore()
        self.exposition = Exposition([ContainerCollector(self.store), SelfCollector(self.store)])
        self.watcher = DockerWatcher(self.store, ResilienceRegistry(), host="pm", base_url=engine.url,
                                     reconnect_max_backoff=0.5)
        self.names: list[str] = []

    def name(self, prefix: str) -> str:
        self.names.append(f"{prefix}-{uuid.uuid4().hex[:6]}")
        return self.names[-1]

    def record(self, name: str) -> ContainerRecord | None:
        return next((r for r in self.store.records() if r.container == name), None)

    def wait_record(self, name: str, predicate, message: str, timeout: float = 60) -> ContainerRecord:  # type: ignore[no-untyped-def]
        return wait_until(lambda: (r := self.record(name)) is not None and predicate(r) and r, timeout=timeout,
                          interval=0.1, message=f"{name}: {message} (now {self.record(name)})")

    def close(self) -> None:
        self.watcher.stop()
        for name in self.names:
            self.engine.cli("rm", "-f", "-t", "0", name, check=False)


@pytest.fixture
def harness(podman: PrivatePodman) -> Iterator[Harness]:
    h = Harness(podman)
    h.watcher.start()
    wait_until(h.store.ready, timeout=30, message="the podman source synced")
    yield h
    h.close()


def unique_series(text: str) -> list[str]:
    """Series (name + labels) that appear more than once in an exposition."""
    seen: dict[str, int] = {}
    for match in SERIES.finditer(text):
        key = match.group(1) + (match.group(2) or "")
        seen[key] = seen.get(key, 0) + 1
    return [k for k, n in seen.items() if n > 1]


def test_the_engine_is_detected_and_exported(harness: Harness) -> None:
    assert harness.watcher.engine == "podman"
    text = harness.exposition.render().decode()
    assert re.search(r'resilience_exporter_source_engine_info\{source="docker",engine="podman",version="4\.', text)


def test_crash_loop_is_crashloopbackoff_with_podmans_restart_count(harness: Harness) -> None:
    name = harness.name("pm-crash")
    harness.engine.run("--name", name, "--restart", "on-failure:5", IMAGE, "sh", "-c", "exit 3")
    r = harness.wait_record(name, lambda r: r.reason is Reason.CRASH_LOOP_BACK_OFF, "CrashLoopBackOff")
    assert r.failures[Reason.ERROR] >= 2 and r.last_exit_code == 3
    engine = wait_until(lambda: (s := harness.engine.inspect(name))["State"]["Status"] == "exited" and s,
                        timeout=60, interval=0.2, message="the restarts to run out")
    assert engine["RestartCount"] == 5
    r = harness.wait_record(name, lambda r: r.restarts == engine["RestartCount"] and r.phase is Phase.TERMINATED,
                            f"restarts equal to Podman's RestartCount {engine['RestartCount']}")
    assert r.failures[Reason.ERROR] == 6 and r.failures[Reason.CRASH_LOOP_BACK_OFF] == 1


def test_oom_kill_is_inferred_as_podman_sends_no_oom_event(harness: Harness) -> None:
    name = harness.name("pm-oom")
    harness.engine.run("--name", name, "-m", "8m", "--memory-swap", "8m", IMAGE, *HOG)
    r = harness.wait_record(name, lambda r: r.phase is Phase.TERMINATED, "terminated")
    assert harness.engine.inspect(name)["State"]["OOMKilled"] is False  # Podman does not say so
    assert r.reason is Reason.OOM_KILLED and r.oom_kills == 1 and dict(r.failures) == {Reason.OOM_KILLED: 1}
    # Inferred from the exit, unless the settle tick read the kernel's count between kill and exit.
    assert ("inferred" in r.message or harness.watcher.kernel_ooms == 1) and r.last_exit_code == 137


def test_missing_entrypoint_is_a_start_failure(harness: Harness) -> None:
    name = harness.name("pm-bad")
    assert harness.engine.run("--name", name, IMAGE, "/nonexistent", check=False).returncode != 0
    r = harness.wait_record(name, lambda r: r.reason is Reason.START_FAILURE, "StartFailure")
    assert r.failures[Reason.START_FAILURE] == 1 and r.phase is Phase.WAITING


def test_remove_and_recreate_with_the_same_names_leaves_no_stale_or_duplicate_series(harness: Harness) -> None:
    names = [harness.name("pm-same") for _ in range(3)]
    for round_ in range(3):
        for name in names:
            harness.engine.run("--replace", "--name", name, IMAGE, "sh", "-c", f"exit {round_}")
        ids = {name: harness.engine.inspect(name)["Id"] for name in names}
        wait_until(lambda: all((r := harness.record(n)) is not None and r.container_id == ids[n]
                               and r.phase is Phase.TERMINATED for n in names),
                   timeout=60, interval=0.1, message=f"round {round_}: the re-created containers only")
        text = harness.exposition.render().decode()
        assert not unique_series(text), unique_series(text)
        for name in names:
            assert len(re.findall(rf'^workload_container_reason\{{[^}}]*container="{name}"', text, re.M)) == 1
    assert sum(1 for r in harness.store.records() if r.container in names) == len(names)


def test_a_service_restart_mid_stream_keeps_counters_equal_to_the_engine(harness: Harness) -> None:
    name = harness.name("pm-restart")
    harness.engine.run("--name", name, "--restart", "on-failure:4", IMAGE, "sh", "-c", "sleep 1; exit 5")
    harness.wait_record(name, lambda r: r.failures.get(Reason.ERROR, 0) >= 1, "a first failure")
    harness.engine.stop()   # the service goes away; conmon keeps the container's restarts going
    wait_until(lambda: not harness.store.sources()[0].up, timeout=30, message="the source to go down")
    harness.engine.start()
    engine = wait_until(lambda: (s := harness.engine.inspect(name))["State"]["Status"] == "exited" and s,
                        timeout=60, interval=0.2, message="the restarts to run out")
    assert engine["RestartCount"] == 4 and engine["State"]["ExitCode"] == 5
    harness.wait_record(name, lambda r: (r.restarts, r.failures.get(Reason.ERROR, 0), r.last_exit_code) == (4, 5, 5),
                        "restarts 4 and 5 exits counted once, as the engine ran them")
