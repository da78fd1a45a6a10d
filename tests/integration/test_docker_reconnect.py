"""dockerd goes away while containers crash; after reconnect the counts equal the engine's."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from exporter.state import Reason
from tests.harness import wait_until
from tests.integration.dockerd import AFTER_STOP_RESTARTING, IMAGE, PrivateDockerd
from tests.integration.test_docker_source import Harness

TRIALS = 5


def runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_engine_restarts_during_a_crash_storm_lose_and_double_count_nothing(dockerd: PrivateDockerd) -> None:
    h = Harness(dockerd)
    data = Path(tempfile.mkdtemp(prefix="re-runs-", dir="/tmp"))
    name = h.name("storm")
    # sh is PID 1: the engine's SIGTERM at shutdown is ignored, so every run writes its line and exits 3.
    dockerd.run("--name", name, "--restart", "always", "-v", f"{data}:/data", IMAGE,
                "sh", "-c", "echo run >> /data/runs; sleep 0.3; exit 3")
    h.watcher.start()
    try:
        wait_until(lambda: h.watcher.syncs == 1, message="initial sync", timeout=30, interval=0.05)
        for trial in range(TRIALS):
            before, syncs = runs(data / "runs"), h.watcher.syncs
            wait_until(lambda: runs(data / "runs") >= before + 2, message=f"trial {trial}: two more crashes",
                       timeout=30, interval=0.05)
            dockerd.restart()
            wait_until(lambda: h.watcher.syncs > syncs and h.store.sources()[0].up, timeout=60,
                       message=f"trial {trial}: reconnected and relisted", interval=0.05)
            wait_until(lambda: h.record(name).restarts == dockerd.inspect(name)["RestartCount"],  # type: ignore[union-attr]
                       message=f"trial {trial}: restarts equal the engine's", timeout=30, interval=0.05)
        dockerd.stop_restarting(name)
        state = wait_until(lambda: (s := dockerd.inspect(name))["State"]["Status"] == "exited" and s,
                           message="final exit", timeout=30, interval=0.05)
        total_runs = runs(data / "runs")
        record = h.wait_record(
            name, lambda r: r.failures.get(Reason.ERROR, 0) >= total_runs and r.restarts == state["RestartCount"],
            f"{total_runs} exits counted", timeout=AFTER_STOP_RESTARTING)
        assert record.failures[Reason.ERROR] == total_runs  # each exit counted exactly once
        assert record.restarts == state["RestartCount"] and record.last_exit_code == state["State"]["ExitCode"] == 3
        assert total_runs >= 2 * TRIALS
    finally:
        h.close()
        shutil.rmtree(data, ignore_errors=True)
