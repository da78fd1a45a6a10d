"""OOM kills only the kernel counted: the cgroup reader and what the Docker source makes of it
(the real engine and kernel: tests/integration/test_docker_oom.py)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.resilience import ResilienceRegistry
from exporter.sources.docker.cgroup import OomKillCounter
from exporter.sources.docker.watcher import DockerWatcher
from exporter.state import Phase, Reason, StateStore
from tests.unit.test_docker_events import CID, ev, limited

STARTED = 1767225600.5  # StartedAt of limited()


def plant(root: Path, relative: str, text: str, created: float) -> Path:
    """A cgroup directory holding one counter file, made at `created`."""
    directory = root / relative
    directory.mkdir(parents=True)
    path = directory / ("memory.oom_control" if relative.startswith("memory/") else "memory.events")
    path.write_text(text)
    os.utime(directory, (created, created))
    return path


@pytest.mark.parametrize("relative, text", [
    (f"memory/docker/{CID}", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),                     # v1, cgroupfs
    (f"memory/system.slice/docker-{CID}.scope", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),  # v1, systemd
    (f"system.slice/docker-{CID}.scope", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n"),             # v2, systemd
    (f"libpod_parent/libpod-{CID}", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n"),                  # v2, Podman
])
def test_the_counter_is_found_in_every_engine_layout(tmp_path: Path, relative: str, text: str) -> None:
    path = plant(tmp_path, relative, text, STARTED)
    counter = OomKillCounter(tmp_path)
    kills, created = counter.read(CID) or (None, None)
    assert kills == 2 and created == STARTED
    assert counter.read("d" * 64) is None                     # another container: no cgroup
    path.unlink()
    path.parent.rmdir()
    assert counter.read(CID) is None                          # its run ended: the cgroup is gone


def watched(tmp_path: Path) -> tuple[StateStore, DockerWatcher]:
    store = StateStore()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url="unix:///nonexistent",
                            cgroup_root=str(tmp_path))
    store.put(watcher.lifecycle.from_inspect(limited("always"), None))
    return store, watcher


def test_a_kill_only_the_kernel_counted_is_the_runs_one_oom_kill(tmp_path: Path) -> None:
    store, watcher = watched(tmp_path)
    counter = plant(tmp_path, f"docker/{CID}", "oom 0\noom_kill 0\n", STARTED - 0.2)
    watcher.settle()
    assert store.get(CID).oom_kills == 0                      # type: ignore[union-attr]
    counter.write_text("oom 1\noom_kill 1\n")                 # a child killed; the engine sent nothing
    watcher.settle()
    record = store.get(CID)
    assert record is not None and record.oom_kills == 1 and record.phase is Phase.RUNNING
    assert record.reason is Reason.RUNNING and not record.failures
    assert watcher.kernel_ooms == 1
    counter.write_text("oom 2\noom_kill 2\n")                 # one OOM kill per run, as from the engine
    watcher.settle()
    watcher.handle(ev("oom", STARTED + 5))                    # the engine's own report, late
    assert store.get(CID).oom_kills == 1                      # type: ignore[union-attr]
    watcher.handle(ev("die", STARTED + 6, exit_code=137))     # the main process: the same run's kill
    record = store.get(CID)
    assert record is not None and record.oom_kills == 1 and dict(record.failures) == {Reason.OOM_KILLED: 1}


def test_the_cgroup_of_a_run_whose_start_is_still_on_its_way_is_left_to_that_run(tmp_path: Path) -> None:
    store, watcher = watched(tmp_path)
    watcher.handle(ev("die", STARTED + 1, exit_code=1))       # restarted by its policy
    watcher.handle(ev("start", STARTED + 1.2))
    # The run started at +1.2 exited and the next one, made at +2.2, had a child OOM-killed; the
    # engine's `die` and `start` for them are still on their way: not the known run's kill.
    plant(tmp_path, f"docker/{CID}", "oom_kill 1\n", STARTED + 2.2)
    watcher.settle()
    assert store.get(CID).oom_kills == 0                      # type: ignore[union-attr]
    watcher.handle(ev("die", STARTED + 2.0, exit_code=1))
    watcher.handle(ev("start", STARTED + 2.3))
    watcher.settle()
    record = store.get(CID)
    assert record is not None and record.oom_kills == 1 and record.phase is Phase.RUNNING


def test_off_without_a_cgroup_root(tmp_path: Path) -> None:
    plant(tmp_path, f"docker/{CID}", "oom_kill 1\n", STARTED - 0.2)
    store = StateStore()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url="unix:///nonexistent", cgroup_root="")
    store.put(watcher.lifecycle.from_inspect(limited(), None))
    watcher.settle()
    assert watcher.oom_counter is None and store.get(CID).oom_kills == 0  # type: ignore[union-attr]
