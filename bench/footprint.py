"""Footprint: resident memory with 1,000 containers tracked, and idle CPU on a real dockerd.

- RSS: a fresh interpreter builds the exporter (store, collectors, HTTP-side modules, the Docker
  SDK), fills the store with 1,000 records from inspect-shaped dicts, answers one scrape (gzip as
  Prometheus asks, and once plain text, which also keeps each family's text joined), drops the
  body and reads its own VmRSS; once Docker only, once with `kubernetes.client` imported as well;
  0 and 10,000 containers give the cost per container. Cluster mode: a fresh interpreter lists
  5,000 pods x 2 containers from the fake API server through the official client into the
  store and answers one gzip scrape. A bare
  interpreter's RSS is printed beside them (the floor no Python exporter can go under), and so
  are the floors of the libraries: `import docker` alone, and the runtime libraries a `serve`
  needs besides (client_python, orjson, http.server), each in a fresh interpreter. Only
  runtime dependencies count: test-only packages that a runtime library would import when
  present (kubernetes_validate) are hidden, as they are absent from `pip wheel .` and the image.
- RSS as a user's process holds it: `python -m exporter` watching a private dockerd with 1,000
  created containers, which it lists and inspects itself, after one gzip scrape; and with none.
  It holds more than the fill above (the socket's responses leave the allocators fuller).
- idle CPU: a real `python -m exporter` watching a private dockerd with 100 idle containers,
  scraped every 15 s like Prometheus; utime+stime from /proc/<pid>/stat over 60 s.

`python -m bench.footprint --python PATH` measures with another interpreter that has the package
installed, e.g. a venv of Debian's /usr/bin/python3 (the image's): `/usr/bin/python3 -m venv V &&
V/bin/pip install -e .`.
"""
from __future__ import annotations

import argparse
import os
from importlib import metadata
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import requests

from bench.common import Row
from tests.harness import free_port, wait_until
from tests.integration.dockerd import IMAGE, PrivateDockerd

ROOT = Path(__file__).resolve().parent.parent
# The interpreter every measured process runs: this one, or (`--python`) another with the package
# installed, e.g. a venv of Debian's /usr/bin/python3 (static libpython, as in the image's base).
PYTHON = sys.executable
SCRAPE_HEADERS = {"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
                  "Accept-Encoding": "gzip"}

# Counts the info series in a gzip body 64 KiB of text at a time: decompressing it whole would make
# the measuring process allocate and free one block of the full text (~20 MB for 10,000
# containers), which raises glibc's trim threshold and leaves that much heap resident, not ours.
_COUNT = """
import zlib
def info_series(gz, marker=b"workload_container_info{"):
    count, keep, view, at = 0, len(marker) - 1, memoryview(gz), 0
    tail, inflate = b"", zlib.decompressobj(wbits=31)
    while at < len(view):  # 16 KiB of input at a time: zlib never keeps a copy of the rest of the body
        feed = view[at:at + 16384]
        at += len(feed)
        while feed:
            text = tail + inflate.decompress(feed, 65536)
            feed = inflate.unconsumed_tail
            count += text.count(marker)
            tail = text[max(0, len(text) - keep):]  # too short for a marker; a split one is whole next time
            if inflate.eof:  # one gzip member ends (the body is one; several are read on): what
                # follows it is unused_data (unconsumed_tail may repeat it)
                view, at = memoryview(inflate.unused_data + bytes(view[at:])), 0
                inflate, feed = zlib.decompressobj(wbits=31), b""
    text = tail + inflate.flush()
    return count + text.count(marker)
"""

# Runs in a fresh interpreter: everything a Docker-only exporter imports, 1,000 records, one scrape.
_RSS_SCRIPT = _COUNT + """
import sys
for name in sys.argv[3].split(","):  # test-only packages a runtime library imports when present
    if name:
        sys.modules[name] = None  # import raises ImportError, as on a production install
from exporter.app import Exporter
from exporter.config import load
from exporter.sources.docker.watcher import DockerWatcher  # the Docker SDK and requests, as in production
from exporter.sources.docker.lifecycle import DockerLifecycle
from bench.docker_events import inspect
if sys.argv[2] == "kube":
    import kubernetes.client
app = Exporter(load(flags={"docker.enabled": "false"}))
lifecycle = DockerLifecycle("bench")
for i in range(int(sys.argv[1])):
    app.store.put(lifecycle.from_inspect(inspect(i), None))
if sys.argv[4] == "text":  # a plain-text scrape (curl): also keeps each family's text joined
    body = app.exposition.render()
    assert body.count(b"workload_container_info{") == int(sys.argv[1])
else:  # what Prometheus asks for: gzip (OpenMetrics), from the kept compressed blocks
    body = app.exposition.render_gzip(openmetrics=True)
    assert info_series(body) == int(sys.argv[1])
del body  # a response body lives for one request
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS:")))
"""

# Cluster mode: the Kubernetes source lists every pod from the fake API server (through the
# official client, as `serve` does) into a fresh exporter, which then answers one gzip scrape.
_CLUSTER_SCRIPT = _COUNT + """
import sys
for name in sys.argv[3].split(","):
    if name:
        sys.modules[name] = None
from kubernetes.client import ApiClient, Configuration, CoreV1Api
from exporter.app import Exporter
from exporter.config import load
from exporter.sources.kubernetes import KubernetesWatcher
app = Exporter(load(flags={"docker.enabled": "false"}))
registry = app.registry
configuration = Configuration()
configuration.host = sys.argv[1]
watcher = KubernetesWatcher(app.store, registry, host="bench", api_factory=lambda: ApiClient(configuration))
watcher._relist(CoreV1Api(ApiClient(configuration)), watcher.scopes[0])
assert len(app.store) == int(sys.argv[2]), len(app.store)
body = app.exposition.render_gzip(openmetrics=True)
assert info_series(body) == int(sys.argv[2])
del body
print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS:")))
"""


def test_only_imports() -> list[str]:
    """Modules of our test extras that runtime libraries import when installed: kubernetes.dynamic
    tries kubernetes_validate (jsonschema, referencing, rpds, attrs: ~3 MiB). A production install
    (`pip wheel .`, the image) has only the runtime dependencies, so the RSS script hides them."""
    runtime = [r.split(";")[0].strip().lower() for r in metadata.requires("resilience-exporter") or ()
               if "extra ==" not in r]
    assert not any(r.startswith("kubernetes-validate") for r in runtime), runtime
    return ["kubernetes_validate"]


def rss_mib(n_containers: int, variant: str, scrape: str = "gzip") -> float:
    """VmRSS (MiB) of a fresh interpreter tracking `n_containers` after one scrape; variant "docker"
    or "kube", scrape "gzip" (as Prometheus asks) or "text"."""
    out = subprocess.run([PYTHON, "-c", _RSS_SCRIPT, str(n_containers), variant,
                          ",".join(test_only_imports()), scrape], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return int(out.split()[-1]) / 1024


def cluster_rss_mib(n_pods: int) -> float:
    """VmRSS (MiB) of a fresh interpreter that listed `n_pods` pods of 2 containers from the fake
    API server (its own process) into the store and answered one gzip scrape."""
    from bench.kube import _pod
    from tests.integration.fake_kube import FakeKubeApi, load_pod

    api = FakeKubeApi().start()
    try:
        template = load_pod("running")
        for i in range(n_pods):
            api.add(_pod(template, i))
        out = subprocess.run([PYTHON, "-c", _CLUSTER_SCRIPT, api.url, str(2 * n_pods),
                              ",".join(test_only_imports())], cwd=ROOT,
                             capture_output=True, text=True, timeout=300, check=True).stdout
    finally:
        api.close()
    return int(out.split()[-1]) / 1024


def bare_rss_mib(*modules: str) -> float:
    """VmRSS (MiB) of a fresh interpreter, after importing `modules` (none: the bare interpreter)."""
    script = "".join(f"import {m}\n" for m in modules) + \
        'print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS:")))'
    return int(subprocess.run([PYTHON, "-c", script], capture_output=True, text=True, timeout=60,
                              check=True).stdout) / 1024


# What no code of ours can go under: the Docker SDK (requests, urllib3, ssl/OpenSSL, charset_normalizer),
# then the libraries every `serve` needs besides (client_python, orjson, the stdlib HTTP server).
DOCKER_SDK = ("docker",)
RUNTIME_LIBRARIES = ("docker", "prometheus_client", "orjson", "http.server")


def docker_containers_on(url: str) -> int:
    """How many Docker containers a running exporter's /metrics shows (its info series)."""
    return containers_in(requests.get(url, timeout=10).text)


def containers_in(text: str, source: str = "docker") -> int:
    return sum(1 for line in text.splitlines()
               if line.startswith("workload_container_info{") and f'source="{source}"' in line)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not exited 15 s later."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def listed_rss_mib(url: str, pid: Callable[[], int], expected: int, source: str = "docker") -> float:
    """VmRSS (MiB) of a serving exporter once `expected` containers of `source` are on its /metrics
    (it listed them itself) and it answered one scrape as Prometheus asks."""
    def listed() -> bool:
        text = requests.get(url, timeout=30).text
        return f'resilience_exporter_source_synced{{source="{source}"}} 1' in text and containers_in(text, source) == expected
    wait_until(listed, timeout=300, interval=1.0, message=f"the {source} source synced with {expected} containers on {url}")
    requests.get(url, headers=SCRAPE_HEADERS, timeout=30).raise_for_status()
    return process_rss_mib(pid())


def serve_rss(n_containers: int) -> tuple[float, float, float]:
    """(RSS MiB with none, RSS MiB with `n_containers`, setup s): `python -m exporter` as a user runs
    it, watching a private dockerd holding that many created (not started) containers, each a
    fresh start; unlike `rss_mib` the exporter lists and inspects them itself."""
    engine = PrivateDockerd()
    try:
        engine.start()
        engine.build_testbox()

        def measured(expected: int) -> float:
            exporter, url = serve(engine)
            try:
                return listed_rss_mib(url, lambda: exporter.pid, expected)
            finally:
                stop(exporter)

        empty = measured(0)
        setup = create_containers(engine, n_containers)
        return empty, measured(n_containers), setup
    finally:
        engine.close()


def serve(engine: PrivateDockerd) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m exporter` watching `engine`, as a user starts it, and its /metrics URL."""
    port = free_port()
    exporter = subprocess.Popen(
        [PYTHON, "-m", "exporter", "--web.listen-address", f"127.0.0.1:{port}", "--docker.host", engine.url],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return exporter, f"http://127.0.0.1:{port}/metrics"


def create_containers(engine: PrivateDockerd, n: int) -> float:
    """Create (not start) `n` containers on `engine`; returns the seconds it took."""
    client, started = engine.client(), time.perf_counter()
    for i in range(n):
        client.create_container(IMAGE, command=["true"], name=f"created-{i}",
                                host_config=client.create_host_config(network_mode="none"))
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (the fields after the parenthesised command name)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_rss_mib(pid: int) -> float:
    line = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def idle_cpu(n_containers: int = 100, seconds: float = 60.0, scrape_every: float = 15.0) -> tuple[float, float, float]:
    """(CPU % of one core over `seconds`, exporter RSS MiB, setup seconds) with `n_containers` idle."""
    engine = PrivateDockerd()
    exporter: subprocess.Popen[bytes] | None = None
    try:
        engine.start()
        engine.build_testbox()
        setup = time.perf_counter()
        client = engine.client()
        for i in range(n_containers):
            cid = client.create_container(IMAGE, command=["sleep", "3600"], name=f"idle-{i}",
                                          host_config=client.create_host_config(network_mode="none"))["Id"]
            client.start(cid)
        setup = time.perf_counter() - setup
        exporter, url = serve(engine)
        wait_until(lambda: docker_containers_on(url) >= n_containers, timeout=120, interval=0.5,
                   message=f"{n_containers} containers on /metrics")
        time.sleep(2)  # let the first sync's garbage settle before the window opens
        before, start = cpu_seconds(exporter.pid), time.monotonic()
        scrapes = 0
        while time.monotonic() - start < seconds and scrapes < 100:
            requests.get(url, headers=SCRAPE_HEADERS, timeout=10).raise_for_status()
            scrapes += 1
            next_at = start + scrapes * scrape_every
            time.sleep(max(0.0, min(next_at, start + seconds) - time.monotonic()))
        elapsed = time.monotonic() - start
        used = cpu_seconds(exporter.pid) - before
        return used / elapsed * 100, process_rss_mib(exporter.pid), setup
    finally:
        if exporter is not None:
            stop(exporter)
        engine.close()


def rows(n_containers: int = 1000, idle_seconds: float = 60.0, cluster_pods: int = 5000) -> list[Row]:
    docker_only = min(rss_mib(n_containers, "docker") for _ in range(3))
    docker_text = min(rss_mib(n_containers, "docker", "text") for _ in range(3))
    with_kube = min(rss_mib(n_containers, "kube") for _ in range(3))
    imports_only = min(rss_mib(0, "docker") for _ in range(3))
    ten_k = min(rss_mib(10 * n_containers, "docker") for _ in range(2))
    cluster = min(cluster_rss_mib(cluster_pods) for _ in range(2))
    bare = bare_rss_mib()
    sdk = min(bare_rss_mib(*DOCKER_SDK) for _ in range(3))
    libraries = min(bare_rss_mib(*RUNTIME_LIBRARIES) for _ in range(3))
    per_container = (ten_k - imports_only) * 1024 / (10 * n_containers)
    serve_empty, serve_full, serve_setup = serve_rss(n_containers)
    cpu, idle_rss, setup = idle_cpu(seconds=idle_seconds)
    return [
        Row(f"RSS tracking {n_containers:,} containers, Docker only, after a gzip scrape", docker_only, bare, "MiB",
            "bare python3 interpreter", "<= 36 MB", docker_only * 1.048576 <= 36),
        Row(f"RSS tracking {n_containers:,} containers, Docker only, after a plain-text scrape", docker_text, bare,
            "MiB", "bare python3 interpreter", "(informative)"),
        Row(f"RSS tracking {n_containers:,} containers, kubernetes client imported", with_kube, bare, "MiB",
            "bare python3 interpreter", "<= 60 MB", with_kube * 1.048576 <= 60),
        Row("RSS with 0 containers, Docker only (imports alone)", imports_only, bare, "MiB",
            "bare python3 interpreter", "(informative)"),
        Row("RSS of `import docker` alone (the SDK the Docker source uses)", sdk, bare, "MiB",
            "bare python3 interpreter", "(floor)"),
        Row("RSS of the runtime libraries alone (docker, prometheus_client, orjson, http.server)", libraries, bare,
            "MiB", "bare python3 interpreter", "(floor)"),
        Row(f"RSS tracking {10 * n_containers:,} containers, Docker only", ten_k, None, "MiB", "", "(informative)"),
        Row("RSS per Docker container (10,000 minus 0, / 10,000)", per_container, None, "KiB", "", "(informative)"),
        Row(f"RSS of `python -m exporter` that listed and inspected {n_containers:,} created containers itself",
            serve_full, serve_empty, "MiB", "the same tracking none", "<= 36 MB", serve_full * 1.048576 <= 36),
        Row("RSS per Docker container of that serve ((N - 0) / N)", (serve_full - serve_empty) * 1024 / n_containers,
            None, "KiB", "", "(informative)"),
        Row(f"setup: docker create x{n_containers:,}", serve_setup, None, "s", "", "(informative)"),
        Row(f"RSS cluster mode, {cluster_pods:,} pods x 2 containers listed from the fake API server", cluster,
            bare, "MiB", "bare python3 interpreter", "(informative)"),
        Row(f"idle CPU, 100 idle containers, {idle_seconds:.0f} s, scrape every 15 s", cpu, None, "% of a core",
            "", "<= 0.1 %", cpu <= 0.1),
        Row("RSS of that running exporter (100 containers)", idle_rss, None, "MiB", "", "(informative)"),
        Row("setup: docker create+start x100 sleep (the private engine's storage driver)", setup, None, "s", "", "(informative)"),
    ]


if __name__ == "__main__":
    from bench.common import format_table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter of the measured processes (with this package and its dependencies installed)")
    args = parser.parse_args()
    PYTHON = args.python
    print(format_table(rows(idle_seconds=args.idle_seconds)))
