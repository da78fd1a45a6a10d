"""The arm64 image (Raspberry Pi) built on this amd64 machine, and its Python run under qemu.

Same Dockerfile as amd64: an arm64 bookworm base from `debootstrap --foreign`, wheels fetched for
manylinux2014_aarch64, the build stage on the amd64 base. The check runs the image's own
filesystem (exported from the test dockerd) with `qemu-aarch64-static` named explicitly, so no
binfmt_misc registration is needed: `python3 -m exporter --version`, then a zero-config start with
the test engine's socket bind-mounted where Docker's is, scraped once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import requests

from tests.harness import free_port, require_binary, wait_until
from tests.e2e import images
from tests.e2e.test_container_image import assert_labels_and_version
from tests.integration.dockerd import IMAGE, PrivateDockerd

TAG = "resilience-exporter:test-arm64"


def run_arm64(rootfs: Path, socket: str, *args: str, env: dict[str, str], **kwargs: object) -> subprocess.Popen[str]:
    """The image's command as its user (plus the socket's group, like --group-add), in its own
    filesystem with the engine's socket at /var/run/docker.sock, each instruction through qemu."""
    (rootfs / "run" / "docker.sock").touch()
    script = ('mount --bind "$0" "$1/run/docker.sock" && exec chroot --userspec=10001:10001 --groups="$2" "$1" '
              '/usr/bin/qemu-aarch64-static "${@:3}"')
    command = [require_binary("unshare"), "--mount", "--propagation", "private", "bash", "-c", script, socket,
               str(rootfs), str(os.stat(socket).st_gid), *args]
    return subprocess.Popen(command, env=env, text=True, **kwargs)  # type: ignore[call-overload]


@pytest.mark.skipif(images.HOST_ARCH != "amd64", reason="cross-builds arm64 from an amd64 machine")
def test_arm64_image_builds_here_and_its_python_runs_the_exporter(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    qemu = require_binary("qemu-aarch64-static")
    started = time.monotonic()
    images.build(dockerd, "arm64", TAG, tmp_path)
    print(f"\narm64 image built in {time.monotonic() - started:.0f} s "
          f"(bases cached in {images.CACHE})")
    inspected = dockerd.client().inspect_image(TAG)
    assert inspected["Architecture"] == "arm64"
    config = inspected["Config"]
    assert config["User"] == "10001:10001" and config["Entrypoint"] == ["python3", "-m", "exporter"]

    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    container = dockerd.cli("create", TAG).stdout.strip()
    try:
        exported = subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE,
                                    env={**os.environ, "DOCKER_HOST": dockerd.url})
        with tarfile.open(fileobj=exported.stdout, mode="r|") as tar:
            tar.extractall(rootfs, filter="fully_trusted")
        assert exported.wait(timeout=300) == 0
    finally:
        dockerd.cli("rm", container, check=False)
    shutil.copy2(qemu, rootfs / "usr/bin/qemu-aarch64-static")
    env = dict(item.split("=", 1) for item in config["Env"])

    socket = str(dockerd.socket)
    machine = run_arm64(rootfs, socket, "/usr/bin/python3", "-c", "import platform; print(platform.machine())",
                        env=env, stdout=subprocess.PIPE)
    assert machine.communicate(timeout=120)[0].strip() == "aarch64"
    version = run_arm64(rootfs, socket, "/usr/bin/python3", "-m", "exporter", "--version", env=env, stdout=subprocess.PIPE)
    assert_labels_and_version(config, version.communicate(timeout=300)[0])

    dockerd.run("--name", "arm64-watched", IMAGE, "sh", "-c", "exit 4")
    port = free_port()
    log = tmp_path / "exporter.log"
    with open(log, "w") as output:
        exporter = run_arm64(rootfs, socket, "/usr/bin/python3", "-m", "exporter", "--web.listen-address",
                             f"127.0.0.1:{port}", env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        text = wait_until(lambda: (t := requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
                          and 'container="arm64-watched"' in t and t, timeout=180, interval=0.5,
                          message=f"a scrape of the arm64 exporter showing arm64-watched (log: {log})")
        assert 'resilience_exporter_build_info{version="0.1.0",python_version="3.11.' in text
        assert 'resilience_exporter_source_up{source="docker"} 1' in text
        assert 'workload_container_last_exit_code{source="docker",host=' in text
    finally:
        dockerd.cli("rm", "-f", "arm64-watched", check=False)
        exporter.terminate()
        exporter.wait(timeout=60)
        print(log.read_text()[-2000:])
