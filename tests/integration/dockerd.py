"""A private dockerd started and stopped by the test suite, and a busybox image made locally.

overlay2 storage where the kernel and the file system under /tmp allow it (what production
engines use; vfs copies the whole image for every container and build step: the image build took
183 s on vfs and 28 s on overlay2 here), else vfs; no iptables, no bridge: it runs beside any
other engine on the machine and needs no network. Images cannot be pulled here, so `testbox:1`
is imported from a rootfs holding the static busybox and its applet links.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

from exporter.sources.docker.lifecycle import RESTART_OVERDUE
from exporter.sources.docker.watcher import SETTLE_EVERY
from tests.harness import require_binary, wait_until

IMAGE = "testbox:1"


#: What `docker update` says when the container exited while it ran.
EXITED_MEANWHILE = ("container not running", "cannot update a stopped container")
#: How long after `stop_restarting` the exporter may take to show the engine's restart count: an
#: update that lost the race still switched dockerd's restart monitor to "no" while HostConfig says
#: "always", so the restart the exporter expects never comes and no event says so; the settle loop
#: asks the engine once it is RESTART_OVERDUE, checking every SETTLE_EVERY.
AFTER_STOP_RESTARTING = RESTART_OVERDUE + SETTLE_EVERY + 30


def overlay_usable() -> bool:
    """overlayfs in the kernel, and /tmp (the data root) on a file system it can sit on."""
    if "overlay" not in Path("/proc/filesystems").read_text():
        return False
    mount = Path("/tmp")
    while not os.path.ismount(mount):
        mount = mount.parent
    types = {fields[1]: fields[2] for fields in map(str.split, Path("/proc/mounts").read_text().splitlines())}
    return types.get(str(mount)) not in ("overlay", "aufs")


class PrivateDockerd:
    def __init__(self, storage: str | None = None) -> None:
        """`storage`: the storage driver (default overlay2 where usable, else vfs)."""
        self.storage = storage or ("overlay2" if overlay_usable() else "vfs")
        self.dockerd = require_binary("dockerd")
        self.busybox = require_binary("busybox")
        require_binary("docker")
        self.root = Path(tempfile.mkdtemp(prefix="re-dockerd-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.url = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "dockerd.log"

    # -- process ---------------------------------------------------------------------------
    def start(self) -> None:
        # Its own mount namespace with a resolv.conf naming 127.0.0.1, where nothing answers:
        # DNS failures stay on loopback and are immediate.
        resolv = self.root / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        args = [self.dockerd, f"--storage-driver={self.storage}", "--iptables=false", "--ip6tables=false", "--bridge=none",
                f"--data-root={self.root / 'data'}", f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'dockerd.pid'}", "-H", self.url]
        script = f'mount --bind "{resolv}" /etc/resolv.conf && exec "$@"'
        command = [require_binary("unshare"), "--mount", "--propagation", "private", "sh", "-c", script, "dockerd", *args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ping, timeout=60, message=f"dockerd on {self.socket} (log: {self.log})")

    def ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited with {self.proc.returncode}; see {self.log}")
        try:
            return bool(self.client().ping())
        except Exception:
            return False

    def stop(self) -> None:
        """Graceful stop (SIGTERM); bench/dockerd_kill.py has the kill -9 path and its caveats."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        try:
            if self.proc is not None and self.ping():
                for c in self.client().containers(all=True):
                    try:
                        self.client().remove_container(c["Id"], force=True)
                    except docker.errors.APIError as exc:  # e.g. "did not receive an exit event": the
                        # engine, its shims and its data root go below anyway; a test already passed
                        print(f"dockerd teardown: cannot remove {c['Names']}: {exc}", file=sys.stderr)
        finally:
            self.stop()
            subprocess.run(["pkill", "-9", "-f", f"{self.root / 'exec'}"], check=False)
            shutil.rmtree(self.root, ignore_errors=True)

    # -- clients ---------------------------------------------------------------------------
    def client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, version="auto", timeout=30)

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.url}
        result = subprocess.run(["docker", *args], env=env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
        return result

    def build_testbox(self) -> str:
        """Import `testbox:1` (static busybox + applet links) unless it exists."""
        if self.cli("image", "inspect", IMAGE, check=False).returncode == 0:
            return IMAGE
        rootfs = busybox_rootfs(self.root / "rootfs", self.busybox)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        env = {**os.environ, "DOCKER_HOST": self.url}
        subprocess.run(["docker", "import", "-c", "ENV PATH=/bin", "-", IMAGE], stdin=tar.stdout, env=env,
                       check=True, capture_output=True, timeout=120)
        tar.wait(timeout=60)
        return IMAGE

    def run(self, *args: str) -> str:
        """`docker run -d --network none ...`; returns the container id."""
        return self.cli("run", "-d", "--network", "none", *args).stdout.strip()

    def stop_restarting(self, name: str, timeout: float = 30) -> None:
        """Set a restarting container's policy to `no`, so its next exit is its last.

        An update that reaches the runtime just as the container exits fails with "container not
        running" or "cannot update a stopped container" (the engine's race: it updates the live
        cgroup too; 1 in 300-600 updates of a container exiting every 20 ms here); tried again
        until it lands. Any other error fails at once.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = self.cli("update", "--restart", "no", name, check=False)
            if result.returncode == 0:
                return
            if not any(race in result.stderr for race in EXITED_MEANWHILE) or time.monotonic() > deadline:
                raise AssertionError(f"docker update --restart no {name} failed: {result.stderr}")
            time.sleep(0.05)  # the container is between exit and restart: the next try finds it settled

    def inspect(self, cid: str) -> dict:
        return self.client().inspect_container(cid)


def busybox_rootfs(rootfs: Path, busybox: str) -> Path:
    """A root filesystem of the static busybox and its applet links (what `testbox:1` holds)."""
    (rootfs / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (rootfs / "bin" / applet).exists():
            (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "tmp").mkdir(exist_ok=True)
    return rootfs


def require_root() -> None:
    import pytest

    from tests.harness import IN_CI

    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the Docker tests need root to run a private dockerd")
        pytest.skip("the Docker tests need root to run a private dockerd")


