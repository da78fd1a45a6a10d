"""The Dockerfile, built offline on the test dockerd from a locally made bookworm+python3 base.

The base comes from debootstrap (Debian's own mirror, the only network this needs); the wheels
are built from this checkout (tests/e2e/images.py). The image then runs with the test engine's
socket mounted and is scraped like Prometheus would.
"""
from __future__ import annotations

import os
import re
from typing import Any

import requests

from tests.harness import free_port, wait_until
from tests.e2e import images
from tests.integration.dockerd import IMAGE, PrivateDockerd

MAX_OVER_BASE = 120 * 1024 * 1024


def test_image_builds_offline_runs_non_root_and_serves_metrics(dockerd: PrivateDockerd, exporter_image: str) -> None:
    base = images.base_ref(images.HOST_ARCH)
    sizes = {ref: int(dockerd.cli("image", "inspect", "-f", "{{.Size}}", ref).stdout) for ref in (base, exporter_image)}
    over_base = sizes[exporter_image] - sizes[base]
    print(f"\nimage size: {sizes[exporter_image] / 2**20:.1f} MiB, "
          f"{over_base / 2**20:.1f} MiB over the base ({sizes[base] / 2**20:.1f} MiB)")
    assert over_base <= MAX_OVER_BASE
    config = dockerd.client().inspect_image(exporter_image)["Config"]
    assert config["User"] == "10001:10001" and config["Healthcheck"]["Test"][0] == "CMD"
    assert_labels_and_version(config, dockerd.cli("run", "--rm", exporter_image, "--version", timeout=300).stdout)

    port = free_port()
    dockerd.run("--name", "img-watched", IMAGE, "sh", "-c", "exit 4")
    socket_group = str(os.stat(dockerd.socket).st_gid)  # as documented: --group-add "$(stat -c %g docker.sock)"
    exporter = dockerd.cli("run", "-d", "--name", "img-exporter", "--network", "host", "--group-add", socket_group,
                           "-v", f"{dockerd.socket}:/var/run/docker.sock:ro", "--health-interval", "1s",
                           "-e", f"RESILIENCE_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:{port}",
                           exporter_image, "--host", "img").stdout.strip()
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



def assert_labels_and_version(config: dict[str, Any], version_output: str) -> None:
    """OCI labels set at build time, and `--version` naming the same commit the label does."""
    labels = config["Labels"]
    revision = labels["org.opencontainers.image.revision"]
    # the commit it was built from: this checkout's HEAD then, so HEAD now or one of its ancestors
    assert re.fullmatch(r"[0-9a-f]{40}", revision) and images.is_ancestor_of_head(revision)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"])
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "0.1.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert version_output.strip() == f"resilience-exporter 0.1.0 (revision {revision})"
