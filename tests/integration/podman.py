"""A private Podman service (Docker-compatible API) started and stopped by the test suite.

Its own storage root, run root and socket under /tmp; vfs storage, cgroupfs, a file events
backend (no systemd or journald here). Containers run with `--network none` and the ulimits this
VM needs (`--ulimit nofile=1024:1024 --ulimit nproc=4096:4096`). `testbox:1` is imported from the
same static-busybox rootfs as the Docker tests'.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import docker

from tests.harness import require_binary, wait_until
from tests.integration.dockerd import busybox_rootfs

IMAGE = "localhost/testbox:1"
RUN_ARGS = ("--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096")


class PrivatePodman:
    def __init__(self) -> None:
        self.podman = require_binary("podman")
        self.busybox = require_binary("busybox")
        self.root = Path(tempfile.mkdtemp(prefix="re-podman-", dir="/tmp"))
        self.socket = self.root / "podman.sock"
        self.url = f"unix://{self.socket}"
        self.log = self.root / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _base(self) -> list[str]:
        return [self.podman, "--root", str(self.root / "storage"), "--runroot", str(self.root / "run"),
                "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--tmpdir", str(self.root / "tmp")]

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([*self._base(), "system", "service", "--time", "0", self.url],
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.root)
        wait_until(self.ping, timeout=60, message=f"podman service on {self.socket} (log: {self.log})")

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"podman service exited with {self.proc.returncode}; see {self.log}")
        try:
            return bool(self.client().ping())
        except Exception:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.proc = None

    def close(self) -> None:
        try:
            self.cli("rm", "-a", "-f", "-t", "0", check=False)
        finally:
            self.stop()
            subprocess.run([*self._base(), "system", "reset", "--force"], capture_output=True, check=False, timeout=120,
                           cwd=self.root)
            shutil.rmtree(self.root, ignore_errors=True)

    def client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, version="1.41", timeout=30)

    def cli(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([*self._base(), *args], capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if check and result.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} failed: {result.stderr}")
        return result

    def build_testbox(self) -> str:
        rootfs = busybox_rootfs(self.root / "rootfs", self.busybox)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run([*self._base(), "import", "--change", "ENV PATH=/bin", "-", "testbox:1"], stdin=tar.stdout,
                       check=True, capture_output=True, timeout=120, cwd=self.root)
        tar.wait(timeout=60)
        return IMAGE

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.cli("run", "-d", *RUN_ARGS, *args, check=check)

    def inspect(self, name: str) -> dict:
        return self.client().inspect_container(name)
