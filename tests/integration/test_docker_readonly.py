"""Without the pull guard the exporter only reads from the engine: every request is a GET."""
from __future__ import annotations

from exporter.resilience import ResilienceRegistry
from exporter.sources.docker import DockerWatcher
from exporter.state import Reason, StateStore
from tests.harness import wait_until
from tests.integration.dockerd import IMAGE, PrivateDockerd
from tests.integration.recording_proxy import RecordingProxy


def test_watcher_sends_only_get_requests(dockerd: PrivateDockerd) -> None:
    proxy = RecordingProxy(dockerd.socket, dockerd.root / "proxy.sock")
    store = StateStore()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url=proxy.url)
    names = ["ro-crash", "ro-done", "ro-bad"]
    try:
        watcher.start()
        wait_until(store.ready, message="synced through the proxy", timeout=30, interval=0.05)
        dockerd.run("--name", names[0], "--restart", "on-failure:2", IMAGE, "sh", "-c", "exit 4")
        dockerd.run("--name", names[1], IMAGE, "true")
        dockerd.cli("run", "-d", "--network", "none", "--name", names[2], IMAGE, "/nonexistent", check=False)
        wait_until(lambda: {r.container: r.reason for r in store.records()}.get(names[2]) is Reason.START_FAILURE,
                 message="start failure seen (it needs an inspect)", timeout=30, interval=0.05)
        wait_until(lambda: {r.container: r.restarts for r in store.records()}.get(names[0]) == 2,
                 message="on-failure:2 restarts seen", timeout=30, interval=0.05)
        dockerd.cli("rm", "-f", names[1])
        wait_until(lambda: names[1] not in {r.container for r in store.records()}, message="removal seen",
                   timeout=30, interval=0.05)
    finally:
        watcher.stop()
        proxy.close()
        for name in names:
            dockerd.cli("rm", "-f", name, check=False)
    paths = {p.split("?")[0].split("/", 2)[-1] for _, p in proxy.requests}
    assert proxy.methods() == {"GET"}, proxy.requests
    assert any(p.endswith("events") for p in paths), proxy.requests
    assert any(p.endswith("containers/json") for p in paths), proxy.requests
