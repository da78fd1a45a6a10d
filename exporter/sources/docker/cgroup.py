"""OOM kills the engine did not report, read from each running container's memory cgroup.

The engine learns of an OOM kill from containerd, which loses some under load: a child process
killed while the main process lives on then leaves no trace in the API at all (no `oom` event,
`State.OOMKilled` false, no exit). The kernel's own counter does not lose them: `oom_kill` in
the container cgroup's `memory.oom_control` (cgroup v1) or `memory.events` (v2) — what cAdvisor
reads too. The runtime makes a new cgroup for each run, so a non-zero counter means an OOM kill
in the current run.

Only where the exporter sees the host's cgroup tree: on the host, or in a container with it
mounted read-only and `docker.cgroup_root` pointing there. Paths are those of the engines'
cgroup drivers (cgroupfs and systemd; Docker and Podman); a container found under none of them
is not read (its OOM kills are still counted from the engine).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

# Where each engine and cgroup driver puts a container's cgroup, relative to the memory
# controller's root (v1: <root>/memory, v2: <root> itself).
LAYOUTS = ("docker/{id}", "system.slice/docker-{id}.scope",
           "libpod_parent/libpod-{id}", "machine.slice/libpod-{id}.scope")
FILES = {"v1": "memory.oom_control", "v2": "memory.events"}


class OomKillCounter:
    """The kernel's count of OOM kills in a container's current cgroup, by container id."""

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        if (root / "memory").is_dir():
            self.base, self.file = root / "memory", FILES["v1"]
        else:
            self.base, self.file = root, FILES["v2"]
        self._paths: dict[str, Path] = {}
        visible = (self.base / self.file).is_file() or any(
            (self.base / layout.split("/")[0]).is_dir() for layout in LAYOUTS)
        if not visible:
            log.info("container cgroups not visible: OOM kills are counted from the engine only",
                     extra={"fields": {"cgroup_root": str(root)}})

    def read(self, cid: str) -> tuple[int, float] | None:
        """(OOM kills, when the cgroup was made) of the container's current run; None when its
        cgroup is not found (not running, or a layout not known here). Read every settle tick for
        every running container, so it is a few system calls: one open, one read, and a stat only
        when there is a kill to place."""
        path = self._paths.get(cid)
        if path is None:
            path = next((p for p in (self.base / layout.format(id=cid) / self.file for layout in LAYOUTS)
                         if p.is_file()), None)
            if path is None:
                return None
            self._paths[cid] = path
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                text = os.read(fd, 4096)
            finally:
                os.close(fd)
            at = text.find(b"oom_kill ")
            if at < 0:
                return None
            kills = int(text[at + 9:text.find(b"\n", at)])
            # Each run gets a new cgroup directory, made with its files.
            return kills, (path.parent.stat().st_mtime if kills else 0.0)
        except (OSError, ValueError):  # the run ended and its cgroup went with it
            return None

    def forget(self, keep: set[str]) -> None:
        """Drop the paths of containers no longer tracked."""
        for cid in [cid for cid in self._paths if cid not in keep]:
            del self._paths[cid]

    def forget_one(self, cid: str) -> None:
        self._paths.pop(cid, None)
