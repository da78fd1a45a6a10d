"""The pull guard against a real dockerd and real local registries (open and htpasswd)."""
from __future__ import annotations

import socket
import threading
from typing import Iterator

import pytest

from exporter.resilience import FakeClock
from exporter.sources.docker.pullguard import DesiredImage, PullGuard
from exporter.state import ContainerRecord, Phase, Reason, StateStore
from tests.harness import free_port
from tests.integration.dockerd import IMAGE, PrivateDockerd
from tests.integration.registry import LocalRegistry

START = 1_800_000_000.0


@pytest.fixture(scope="module")
def registries(dockerd: PrivateDockerd) -> Iterator[tuple[LocalRegistry, LocalRegistry]]:
    open_registry = LocalRegistry(auth=False)
    auth_registry = LocalRegistry(auth=True, storage=open_registry.storage)
    pushed = f"{open_registry.address}/testbox:1"
    dockerd.cli("tag", IMAGE, pushed)
    dockerd.cli("push", pushed, timeout=120)
    dockerd.cli("rmi", pushed)
    try:
        yield open_registry, auth_registry
    finally:
        auth_registry.close()
        open_registry.close()


class Guarded:
    def __init__(self, dockerd: PrivateDockerd, *images: DesiredImage, **kw: object) -> None:
        self.clock = FakeClock(START)
        self.store = StateStore()
        self.guard = PullGuard(self.store, host="h", client_factory=dockerd.client, images=images,
                               clock=self.clock, **kw)  # type: ignore[arg-type]

    def run(self) -> None:
        self.guard.reconcile()
        assert self.guard.wait_idle(90)

    def record(self, ref: str) -> ContainerRecord:
        record = self.store.get(f"image:{ref}")
        assert record is not None, f"no record for {ref}"
        return record


def test_existing_tag_is_pulled(dockerd: PrivateDockerd, registries: tuple[LocalRegistry, LocalRegistry]) -> None:
    ref = f"{registries[0].address}/testbox:1"
    g = Guarded(dockerd, DesiredImage(ref))
    g.run()
    r = g.record(ref)
    assert r.reason is Reason.PULLED and r.phase is Phase.RUNNING and not r.terminal and r.image == ref
    assert dockerd.cli("image", "inspect", ref, check=False).returncode == 0
    dockerd.cli("rmi", ref)


def test_missing_tag_backs_off_on_the_kubelet_schedule_then_gives_up(
        dockerd: PrivateDockerd, registries: tuple[LocalRegistry, LocalRegistry]) -> None:
    ref = f"{registries[0].address}/testbox:nope"
    g = Guarded(dockerd, DesiredImage(ref), max_manifest_attempts=4)
    g.run()
    r = g.record(ref)
    assert (r.reason, r.retry_count, r.next_retry_at, r.terminal) == (Reason.ERR_IMAGE_PULL, 1, START + 10, False)
    assert "manifest unknown" in r.message or "not found" in r.message
    g.run()  # not due yet: no pull, the wait is ImagePullBackOff
    r = g.record(ref)
    assert (r.reason, r.retry_count) == (Reason.IMAGE_PULL_BACK_OFF, 1)
    delays = []
    for expected in (20, 40):
        g.clock.advance(r.next_retry_at - g.clock())  # type: ignore[operator]
        g.run()
        r = g.record(ref)
        assert r.reason is Reason.ERR_IMAGE_PULL
        delays.append(r.next_retry_at - g.clock())  # type: ignore[operator]
        assert delays[-1] == expected
    assert r.retry_count == 3 and r.failures[Reason.ERR_IMAGE_PULL] == 3 and r.failures[Reason.IMAGE_PULL_BACK_OFF] == 1
    g.clock.advance(40)
    g.run()
    r = g.record(ref)
    assert r.terminal and r.retry_count == 4 and r.next_retry_at is None and "after 4 attempts" in r.remedy
    g.clock.advance(3600)
    g.run()
    assert g.record(ref).retry_count == 4  # terminal: never retried


def test_malformed_reference_is_terminal_at_once_and_never_pulled(dockerd: PrivateDockerd) -> None:
    g = Guarded(dockerd, DesiredImage("INVALID//name"))
    g.run()
    r = g.record("INVALID//name")
    assert r.reason is Reason.INVALID_IMAGE_NAME and r.terminal and r.retry_count == 0
    assert g.guard.tracker.state("INVALID//name") is None


def test_registry_refusing_credentials_is_terminal_with_a_docker_login_remedy(
        dockerd: PrivateDockerd, registries: tuple[LocalRegistry, LocalRegistry]) -> None:
    ref = f"{registries[1].address}/testbox:1"
    g = Guarded(dockerd, DesiredImage(ref))
    g.run()
    r = g.record(ref)
    assert r.terminal and r.reason is Reason.ERR_IMAGE_PULL
    assert f"docker login {registries[1].address}" in r.remedy
    g.clock.advance(3600)
    g.run()
    assert g.record(ref).retry_count == 1


@pytest.mark.parametrize("ref", [f"127.0.0.1:{free_port()}/testbox:1", "nosuchhost.invalid/testbox:1"],
                         ids=["unreachable-host", "dns-failure"])
def test_unreachable_registry_and_dns_failure_are_transient(dockerd: PrivateDockerd, ref: str) -> None:
    g = Guarded(dockerd, DesiredImage(ref))
    g.run()
    r = g.record(ref)
    assert r.reason is Reason.ERR_IMAGE_PULL and not r.terminal and r.next_retry_at == START + 10
    assert any(m in r.message for m in ("connection refused", "no such host", "lookup"))


def test_absent_image_with_pull_policy_never_is_terminal(dockerd: PrivateDockerd) -> None:
    ref = "127.0.0.1:1/never-here:1"
    g = Guarded(dockerd, DesiredImage(ref, "Never"))
    g.run()
    r = g.record(ref)
    assert r.reason is Reason.ERR_IMAGE_NEVER_PULL and r.terminal and g.guard.tracker.state(ref) is None


def test_a_hanging_registry_does_not_hold_up_other_images(
        dockerd: PrivateDockerd, registries: tuple[LocalRegistry, LocalRegistry]) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def swallow() -> None:  # accept and never answer
        hole.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(hole.accept()[0])
            except OSError:
                continue

    threading.Thread(target=swallow, daemon=True).start()
    stuck = f"127.0.0.1:{hole.getsockname()[1]}/testbox:1"
    good = f"{registries[0].address}/testbox:1"
    g = Guarded(dockerd, DesiredImage(stuck), DesiredImage(good))
    try:
        g.guard.reconcile()
        from tests.harness import wait_until
        wait_until(lambda: (r := g.store.get(f"image:{good}")) is not None and r.reason is Reason.PULLED,
                   timeout=60, message="the good image pulled while the other hangs", interval=0.05)
        assert g.store.get(f"image:{stuck}") is None  # still in flight
    finally:
        stop.set()
        for conn in accepted:
            conn.close()
        hole.close()
        g.guard.wait_idle(60)
        g.guard.stop()
        dockerd.cli("rmi", good, check=False)


def test_images_of_existing_containers_can_be_guarded(dockerd: PrivateDockerd) -> None:
    g = Guarded(dockerd, images_from_containers=True)
    g.store.put(ContainerRecord(key="c1", container="web", source=__import__("exporter.state", fromlist=["Source"]).Source.DOCKER,
                                image=IMAGE))
    g.run()
    assert g.record(IMAGE).reason is Reason.PULLED
