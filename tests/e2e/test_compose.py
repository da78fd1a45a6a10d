"""deploy/compose/ on a fresh engine: `docker-compose config` accepts it, `up` starts the exporter
as uid 10001 with a fresh named volume it can write, and node_exporter serves the textfile.

Debian ships docker-compose 1.29 (no compose plugin); it reads the same Compose file. The test
engine cannot pull prom/node-exporter, so NODE_EXPORTER_IMAGE is Debian's node_exporter on the
local bookworm base; every other line of the file is used as written, and README's block runs as
written with `docker-compose` for `docker compose` and the test engine's socket path.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.harness import free_port, require_binary, wait_until
from tests.e2e import images
from tests.integration.dockerd import IMAGE, PrivateDockerd
from tests.readme import shell_blocks, substituted

COMPOSE_DIR = images.ROOT / "deploy" / "compose"
PROJECT = "re17compose"
NODE_EXPORTER = "local/node-exporter:test"


def compose(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([require_binary("docker-compose"), "-p", PROJECT, *args], cwd=COMPOSE_DIR, env=env,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def node_exporter_image(dockerd: PrivateDockerd, tmp: Path) -> str:
    """Debian's node_exporter binary on the bookworm base, started like prom/node-exporter."""
    context = tmp / "node-exporter"
    context.mkdir()
    shutil.copy2(require_binary("prometheus-node-exporter"), context / "node_exporter")
    (context / "Dockerfile").write_text(f"FROM {images.base_ref(images.HOST_ARCH)}\n"
                                        "COPY node_exporter /bin/node_exporter\n"
                                        'ENTRYPOINT ["/bin/node_exporter"]\n')
    dockerd.cli("build", "-q", "-t", NODE_EXPORTER, str(context), timeout=600)
    return NODE_EXPORTER


@pytest.fixture
def stack_env(dockerd: PrivateDockerd, exporter_image: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, "DOCKER_HOST": dockerd.url, "DOCKER_GID": str(os.stat(dockerd.socket).st_gid),
           "DOCKER_SOCKET": str(dockerd.socket), "RESILIENCE_EXPORTER_IMAGE": exporter_image,
           "NODE_EXPORTER_IMAGE": node_exporter_image(dockerd, tmp_path),
           "RESILIENCE_EXPORTER_PORT": str(free_port()), "NODE_EXPORTER_PORT": str(free_port())}
    yield env
    down = compose(env, "down", "-v", check=False)
    print(down.stdout[-1000:], down.stderr[-1000:])


def test_compose_config_is_valid_and_asks_for_the_socket_group(stack_env: dict[str, str]) -> None:
    config = compose(stack_env, "config").stdout
    assert "- textfile:/var/lib/prometheus/node-exporter:rw" in config  # the exporter writes here
    assert "- textfile:/var/lib/prometheus/node-exporter:ro" in config  # node_exporter reads
    assert f"- {stack_env['DOCKER_SOCKET']}:/var/run/docker.sock:ro" in config
    without = {k: v for k, v in stack_env.items() if k != "DOCKER_GID"}
    refused = compose(without, "config", check=False)
    assert refused.returncode != 0 and "DOCKER_GID" in refused.stderr


def test_compose_up_writes_the_textfile_node_exporter_serves(dockerd: PrivateDockerd, stack_env: dict[str, str]) -> None:
    dockerd.run("--name", "compose-watched", IMAGE, "sh", "-c", "exit 3")
    try:
        (block,) = shell_blocks("Docker Compose on a device")  # as written, with Debian's docker-compose
        block = substituted(block, {"docker compose": f"{require_binary('docker-compose')} -p {PROJECT}",
                                    "/var/run/docker.sock": stack_env["DOCKER_SOCKET"]})
        readme_env = {k: v for k, v in stack_env.items() if k != "DOCKER_GID"}  # the block sets it
        up = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=images.ROOT, env=readme_env,
                            capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        node = f"http://127.0.0.1:{stack_env['NODE_EXPORTER_PORT']}/metrics"
        text = wait_until(lambda: (t := requests.get(node, timeout=5).text) and 'container="compose-watched"' in t
                          and t, timeout=120, interval=0.5, message="the exporter's textfile served by node_exporter")
        assert "node_textfile_scrape_error 0" in text
        # node_exporter sorts the labels; host is config.yaml's, the exit code the container's
        assert re.search(r'^workload_container_last_exit_code\{container="compose-watched",host="pi-livingroom",'
                         r'[^}]*source="docker"[^}]*\} 3$', text, re.M), text  # writer= follows source=
        exporter = requests.get(f"http://127.0.0.1:{stack_env['RESILIENCE_EXPORTER_PORT']}/metrics", timeout=5).text
        assert 'resilience_exporter_source_up{source="docker"} 1' in exporter
        owners = dockerd.cli("run", "--rm", "-v", f"{PROJECT}_textfile:/t:ro", IMAGE, "sh", "-c",
                             "stat -c '%u:%g %n' /t /t/*").stdout.splitlines()
        assert owners == ["10001:10001 /t", "10001:10001 /t/resilience_exporter.prom"]
    finally:
        dockerd.cli("rm", "-f", "compose-watched", check=False)
        print(compose(stack_env, "logs", "--no-color", check=False).stdout[-3000:])
