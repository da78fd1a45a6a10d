"""The Docker source against a real private dockerd: the kubelet vocabulary for plain containers."""
from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from exporter.metrics import ContainerCollector, Exposition
from exporter.resilience import ResilienceRegistry
from exporter.sources.docker import DockerWatcher
from exporter.sources.docker.lifecycle import INFERRED_OOM
from exporter.state import ContainerRecord, Health, Phase, Reason, StateStore
from tests.harness import wait_until
from tests.integration.dockerd import AFTER_STOP_RESTARTING, IMAGE, PrivateDockerd


class Harness:
    def __init__(self, dockerd: PrivateDockerd) -> None:
        self.dockerd = dockerd
        self.store = StateStore()
        self.registry = ResilienceRegistry()
        self.exposition = Exposition([ContainerCollector(self.store)])
        self.watcher = DockerWatcher(self.store, self.registry, host="test-host", base_url=dockerd.url,
                                     reconnect_max_backoff=1.0)
        self.names: list[str] = []
        self.seen: list[ContainerRecord] = []
        self.store.subscribe(lambda key, rec: rec is not None and self.seen.append(rec))

    def name(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.names.append(name)
        return name

    def record(self, name: str) -> ContainerRecord | None:
        return next((r for r in self.store.records() if r.container == name), None)

    def wait_record(self, name: str, predicate, message: str, timeout: float = 30.0) -> ContainerRecord:  # type: ignore[no-untyped-def]
        def check() -> ContainerRecord | None:
            r = self.record(name)
            return r if r is not None and predicate(r) else None
        return wait_until(check, timeout=timeout, message=f"{name}: {message} (now {self.record(name)})")

    def close(self) -> None:
        self.watcher.stop()
        for name in self.names:
            self.dockerd.cli("rm", "-f", name, check=False)


@pytest.fixture
def harness(dockerd: PrivateDockerd) -> Iterator[Harness]:
    h = Harness(dockerd)
    h.watcher.start()
    wait_until(lambda: h.store.ready(), message="docker source synced", timeout=30, interval=0.05)
    yield h
    h.close()


def test_crash_loop_is_reported_within_three_restarts_and_counts_match_the_engine(harness: Harness) -> None:
    name = harness.name("crash")
    harness.dockerd.run("--name", name, "--restart", "always", IMAGE, "sh", "-c", "exit 3")
    harness.wait_record(name, lambda r: r.reason is Reason.CRASH_LOOP_BACK_OFF, "CrashLoopBackOff")
    first = next(r for r in harness.seen if r.container == name and r.reason is Reason.CRASH_LOOP_BACK_OFF)
    assert first.restarts <= 3
    assert first.failures[Reason.ERROR] >= 2 and first.failures[Reason.CRASH_LOOP_BACK_OFF] == 1
    assert first.next_retry_at is not None and first.next_retry_at > first.last_terminated_at  # type: ignore[operator]
    assert first.last_exit_code == 3 and first.last_terminated_reason is Reason.ERROR
    harness.dockerd.stop_restarting(name)
    state = wait_until(lambda: (s := harness.dockerd.inspect(name))["State"]["Status"] == "exited" and s,
                     message="the container to exit once its policy is no", timeout=30, interval=0.05)
    record = harness.wait_record(
        name, lambda r: (r.restarts, r.last_exit_code) == (state["RestartCount"], state["State"]["ExitCode"]),
        f"restarts/exit equal to docker inspect {state['RestartCount']}/{state['State']['ExitCode']}",
        timeout=AFTER_STOP_RESTARTING)
    assert record.restarts >= 2


def test_memory_hog_is_oom_killed_once_with_exit_137(harness: Harness) -> None:
    name = harness.name("oom")
    harness.dockerd.run("--name", name, "-m", "8m", "--memory-swap", "8m", IMAGE,
                        "sh", "-c", 'x=a; while true; do x="$x$x"; done')
    r = harness.wait_record(name, lambda r: r.phase is Phase.TERMINATED, "terminated")
    assert r.reason is Reason.OOM_KILLED and r.last_terminated_reason is Reason.OOM_KILLED
    assert r.oom_kills == 1 and r.failures[Reason.OOM_KILLED] == 1 and r.last_exit_code == 137
    # dockerd under load may lose the OOM (no `oom` event, OOMKilled false): then it was inferred
    # (or the settle tick read the kernel's count between the kill and the exit)
    assert (harness.dockerd.inspect(name)["State"]["OOMKilled"] is True or r.message == INFERRED_OOM
            or harness.watcher.kernel_ooms == 1), r


def test_failing_health_check_is_unhealthy_and_a_fixed_one_becomes_healthy(harness: Harness) -> None:
    bad, good = harness.name("unhealthy"), harness.name("healthy")
    common = ("--health-interval", "1s", "--health-retries", "1", "--health-timeout", "2s")
    harness.dockerd.run("--name", bad, "--health-cmd", "exit 1", *common, IMAGE, "sleep", "300")
    harness.dockerd.run("--name", good, "--health-cmd", "test -f /tmp/ok", *common, IMAGE, "sleep", "300")
    r = harness.wait_record(bad, lambda r: r.reason is Reason.UNHEALTHY, "Unhealthy")
    assert r.health is Health.UNHEALTHY and r.failures[Reason.UNHEALTHY] == 1 and r.phase is Phase.RUNNING
    harness.wait_record(good, lambda r: r.health is Health.UNHEALTHY, "unhealthy before the fix")
    harness.dockerd.cli("exec", good, "touch", "/tmp/ok")
    r = harness.wait_record(good, lambda r: r.health is Health.HEALTHY, "healthy after the fix")
    assert r.reason is Reason.RUNNING


def test_bad_entrypoint_is_a_start_failure(harness: Harness) -> None:
    name = harness.name("badentry")
    result = harness.dockerd.cli("run", "-d", "--network", "none", "--name", name, IMAGE, "/nonexistent", check=False)
    assert result.returncode != 0
    r = harness.wait_record(name, lambda r: r.reason is Reason.START_FAILURE, "StartFailure")
    assert r.last_exit_code == 127 and r.failures[Reason.START_FAILURE] == 1
    assert "nonexistent" in r.message


def test_command_not_found_exit_127_is_a_start_failure(harness: Harness) -> None:
    name = harness.name("notfound")
    harness.dockerd.run("--name", name, IMAGE, "sh", "-c", "no-such-command")
    r = harness.wait_record(name, lambda r: r.phase is Phase.TERMINATED, "terminated")
    assert r.reason is Reason.START_FAILURE and r.last_exit_code == 127


def test_exit_zero_is_completed_and_removal_drops_every_series(harness: Harness) -> None:
    name = harness.name("done")
    harness.dockerd.run("--name", name, IMAGE, "true")
    r = harness.wait_record(name, lambda r: r.phase is Phase.TERMINATED, "terminated")
    assert r.reason is Reason.COMPLETED and r.last_exit_code == 0 and not r.failures
    assert f'container="{name}"' in harness.exposition.render().decode()
    harness.dockerd.cli("rm", name)
    wait_until(lambda: harness.record(name) is None, message="record removed", timeout=30, interval=0.05)
    assert f'container="{name}"' not in harness.exposition.render().decode()


def test_containers_existing_before_start_are_listed_and_inspected(dockerd: PrivateDockerd) -> None:
    h = Harness(dockerd)
    name = h.name("before")
    dockerd.run("--name", name, IMAGE, "sh", "-c", "exit 5")
    wait_until(lambda: dockerd.inspect(name)["State"]["Status"] == "exited", message="exited",
               timeout=30, interval=0.05)
    try:
        h.watcher.start()
        r = h.wait_record(name, lambda r: True, "listed")
        assert r.reason is Reason.ERROR and r.last_exit_code == 5 and r.phase is Phase.TERMINATED
        assert r.failures[Reason.ERROR] == 1 and r.image == IMAGE and r.host == "test-host"
        assert h.store.sources()[0].up and h.store.ready()
    finally:
        h.close()


def test_compose_labels_fill_namespace_and_pod_and_other_labels_stay_out(harness: Harness) -> None:
    name = harness.name("compose")
    harness.dockerd.run("--name", name, "--label", "com.docker.compose.project=shop",
                        "--label", "com.docker.compose.service=web", "--label", "secret=hunter2", IMAGE, "sleep", "300")
    r = harness.wait_record(name, lambda r: r.reason is Reason.RUNNING, "running")
    assert (r.namespace, r.pod) == ("shop", "web")
    assert "hunter2" not in harness.exposition.render().decode()
