"""Footprint of the shipped image: the RSS a user's `docker stats`-minded eye sees.

`python -m bench footprint` measures a fresh interpreter of this checkout's venv that fills the
store from inspect-shaped dicts; this suite measures the product as shipped: the image built
from the Dockerfile as the README says (Debian bookworm's python3, the wheels only), run as
documented (`--network host`, the engine's socket mounted read-only) against a private dockerd
holding N containers, listed and inspected by the exporter itself at start, scraped once as
Prometheus asks (gzip, OpenMetrics), then the VmRSS of the container's python3 process (PID 1 in
the container, read from the host's /proc). Once with no container and once with N, each a
fresh start of the exporter; the containers are created, not started (a started container holds
a shim and a process per container: 1,000 of them would measure the engine, not us). Cluster
mode too: the image listing 5,000 pods x 2 from the fake API server through a mounted kubeconfig,
after one gzip scrape.
Root: it runs its own dockerd and builds the image (~1 min on overlay2 with the base cached).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.common import Row
from bench.footprint import create_containers, listed_rss_mib
from tests.e2e import images
from tests.harness import free_port
from tests.integration.dockerd import PrivateDockerd

TAG = "resilience-exporter:bench"


def exporter_rss(engine: PrivateDockerd, expected: int, *run_args: str, source: str = "docker") -> float:
    """Start the image (`run_args` before it: mounts, environment), wait until `expected` containers of
    `source` are on /metrics (for Docker itself among them), scrape once with gzip, read the process's
    VmRSS (MiB); the exporter is removed afterwards."""
    port = free_port()
    group = str(os.stat(engine.socket).st_gid)
    name = f"bench-exporter-{port}"
    cid = engine.cli("run", "-d", "--name", name, "--network", "host", "--group-add", group,
                     "-v", f"{engine.socket}:/var/run/docker.sock:ro",
                     "-e", f"RESILIENCE_EXPORTER_WEB_LISTEN_ADDRESS=127.0.0.1:{port}", *run_args,
                     TAG, "--host", "bench").stdout.strip()
    def pid() -> int:
        pid = engine.inspect(cid)["State"]["Pid"]
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        assert comm.startswith("python3"), comm  # the ENTRYPOINT's python3, not a wrapper
        return int(pid)
    try:
        return listed_rss_mib(f"http://127.0.0.1:{port}/metrics", pid, expected, source)
    finally:
        engine.cli("rm", "-f", name, check=False)


def cluster_rss(engine: PrivateDockerd, n_pods: int, workdir: Path) -> float:
    """RSS (MiB) of the image in cluster mode, listing `n_pods` pods x 2 containers from the fake API
    server (this process) through a kubeconfig."""
    from bench.kube import _pod
    from tests.integration.fake_kube import FakeKubeApi, load_pod
    from tests.integration.fleet import kubeconfig

    api = FakeKubeApi().start()
    try:
        template = load_pod("running")
        for i in range(n_pods):
            api.add(_pod(template, i))
        config = kubeconfig(workdir / "kubeconfig", api.url)
        config.chmod(0o644)  # the image runs as uid 10001 (the file is mounted alone: its directory is not read)
        cluster = ("-v", f"{config}:/etc/resilience-exporter/kubeconfig:ro",
                   "-e", "RESILIENCE_EXPORTER_DOCKER_ENABLED=false", "-e", "RESILIENCE_EXPORTER_KUBERNETES_ENABLED=true",
                   "-e", "RESILIENCE_EXPORTER_KUBERNETES_KUBECONFIG=/etc/resilience-exporter/kubeconfig")
        return exporter_rss(engine, 2 * n_pods, *cluster, source="kubernetes")
    finally:
        api.close()


def rows(n_containers: int = 1000, cluster_pods: int = 5000) -> list[Row]:
    engine = PrivateDockerd()
    try:
        engine.start()
        engine.build_testbox()
        with TemporaryDirectory(prefix="re-bench-image-") as workdir:
            images.build(engine, images.HOST_ARCH, TAG, Path(workdir))
            cluster = cluster_rss(engine, cluster_pods, Path(workdir))
        empty = exporter_rss(engine, 1)  # itself
        setup = create_containers(engine, n_containers)
        full = exporter_rss(engine, n_containers + 1)
    finally:
        engine.close()
    per_container = (full - empty) * 1024 / n_containers
    return [
        Row(f"image RSS tracking {n_containers:,} containers (Debian python3, after a gzip scrape)", full, empty,
            "MiB", "the same image tracking none", "<= 36 MB", full * 1.048576 <= 36),
        Row("image RSS per Docker container ((N - 0) / N)", per_container, None, "KiB", "", "(informative)"),
        Row(f"setup: docker create x{n_containers:,}", setup, None, "s", "", "(informative)"),
        Row(f"image RSS in cluster mode, {cluster_pods:,} pods x 2 from the fake API server, after a gzip scrape",
            cluster, None, "MiB", "", "(informative)"),
    ]


if __name__ == "__main__":
    from bench.common import format_table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--containers", type=int, default=1000)
    print(format_table(rows(parser.parse_args().containers)))
