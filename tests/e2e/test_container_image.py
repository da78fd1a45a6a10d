"""The Dockerfile, built offline on the test dockerd from a locally made bookworm+python3 base.

The base comes from debootstrap (Debian's own mirror, the only network this needs) imported
with `docker import`; the wheels are built from this checkout. The image then runs with the
test engine's socket mounted and is scraped like Prometheus would.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import requests

from tests.conftest import free_port, require_binary, wait_until
from tests.integration.dockerd import IMAGE, PrivateDockerd

ROOT = Path(__file__).resolve().parents[2]
BASE = "local/bookworm-python3:1"
CACHE = Path(os.environ.get("RESILIENCE_TEST_CACHE", "/var/cache/resilience-exporter-tests"))
MAX_OVER_BASE = 120 * 1024 * 1024


def base_image(dockerd: PrivateDockerd, tmp: Path) -> None:
    if dockerd.cli("image", "inspect", BASE, check=False).returncode == 0:
        return
    tarball = CACHE / "bookworm-python3.tar"
    if not tarball.exists():
        debootstrap = require_binary("debootstrap")
        rootfs = tmp / "rootfs"
        subprocess.run([debootstrap, "--variant=minbase", "--include=python3", "bookworm", str(rootfs),
                        "http://deb.debian.org/debian"], check=True, capture_output=True, timeout=900)
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball.with_suffix(".tmp"), "w") as tar:
            tar.add(rootfs, arcname=".")
        tarball.with_suffix(".tmp").rename(tarball)
    with open(tarball, "rb") as data:
        subprocess.run(["docker", "import", "-", BASE], stdin=data, check=True, capture_output=True, timeout=600,
                       env={**os.environ, "DOCKER_HOST": dockerd.url})


def test_image_builds_offline_runs_non_root_and_serves_metrics(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    base_image(dockerd, tmp_path)
    context = tmp_path / "context"
    context.mkdir()
    shutil.copy2(ROOT / "Dockerfile", context / "Dockerfile")
    shutil.copy2(ROOT / ".dockerignore", context / ".dockerignore")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", str(ROOT),
                    "-w", str(context / "wheels")], check=True, capture_output=True, timeout=900)
    build = dockerd.cli("build", "--build-arg", f"BASE_IMAGE={BASE}", "-t", "resilience-exporter:test", str(context),
                        timeout=900)
    assert build.returncode == 0
    sizes = {ref: int(dockerd.cli("image", "inspect", "-f", "{{.Size}}", ref).stdout)
             for ref in (BASE, "resilience-exporter:test")}
    over_base = sizes["resilience-exporter:test"] - sizes[BASE]
    print(f"\nimage size: {sizes['resilience-exporter:test'] / 2**20:.1f} MiB, "
          f"{over_base / 2**20:.1f} MiB over the base ({sizes[BASE] / 2**20:.1f} MiB)")
    assert over_base <= MAX_OVER_BASE
    config = dockerd.client().inspect_image("resilience-exporter:test")["Config"]
    assert config["User"] == "10001:10001" and config["Healthcheck"]["Test"][0] == "CMD"

    port = free_port()
    dockerd.run("--name", "img-watched", IMAGE, "sh", "-c", "exit 4")
    socket_group = str(os.stat(dockerd.socket).st_gid)  # as documented: --group-add "$(stat -c %g docker.sock)"
    exporter = dockerd.cli("run", "-d", "--name", "img-exporter", "--network", "host", "--group-add", socket_group,
                           "-v", f"{dockerd.socket}:/var/run/docker.sock:ro", "--health-interval", "1s",
                           "-e", f"RESILIENCE_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:{port}",
                           "resilience-exporter:test", "--host", "img").stdout.strip()
    try:
        text = wait_until(lambda: (t := requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)
                          and 'container="img-watched"' in t and "workload_container_last_exit_code{" in t and t,
                          timeout=90, message="metrics from the container")
        assert 'resilience_exporter_source_up{source="docker"} 1' in text
        assert 'workload_container_last_exit_code{source="docker",host="img",namespace="",pod="",container="img-watched"' in text
        wait_until(lambda: dockerd.inspect(exporter)["State"]["Health"]["Status"] == "healthy", timeout=60,
                   message="HEALTHCHECK healthy")
        assert dockerd.cli("exec", exporter, "id", "-u").stdout.strip() == "10001"
        probe = dockerd.cli("exec", exporter, "python3", "-c", "import kubernetes.client, kubernetes.watch; print('ok')")
        assert probe.stdout.strip() == "ok"  # the slimmed image keeps the client the Kubernetes source uses
    finally:
        logs = dockerd.cli("logs", "img-exporter", check=False)
        dockerd.cli("rm", "-f", "img-exporter", "img-watched", check=False)
        print(logs.stderr[-2000:])

