"""A fleet on loopback, for the fleet end-to-end test and benchmark: device stacks (the exporter
and its own vmagent pushing over remote_write, through a link that can be cut) and the central
side (VictoriaMetrics, vmalert with a rendered alert pack), with the files of deploy/fleet/ where
a file exists; only addresses, paths and intervals are the test's."""
from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.harness import free_port, require_binary
from tests.integration.engines_monitoring import _Process

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "deploy" / "fleet"


class VictoriaMetrics(_Process):
    """The central store, single node; queries see samples 1 s after they arrive (default 30 s).
    `staleness`: how long a silent device's last samples still answer (deploy/fleet: 15m, longer
    than device_offline_after, so its alerts stay until DeviceOffline inhibits them)."""

    def __init__(self, root: Path, *, staleness: str = "15m") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([require_binary("victoria-metrics"), f"-storageDataPath={root / 'vm-data'}",
                          f"-httpListenAddr=127.0.0.1:{self.port}", "-retentionPeriod=1d", "-loggerLevel=WARN",
                          "-search.latencyOffset=1s", "-search.disableCache",
                          f"-search.maxStalenessInterval={staleness}"],
                         f"{self.url}/health", root, "victoria-metrics")

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('error')}")
        return list(body["data"]["result"])

    def export(self, match: str, start: float, end: float) -> list[tuple[dict[str, str], dict[float, float]]]:
        """Raw samples of the series matching `match`: (labels, {timestamp in seconds: value})."""
        r = requests.get(f"{self.url}/api/v1/export", params={"match[]": match, "start": f"{start:.3f}",
                                                               "end": f"{end:.3f}"}, timeout=30)
        r.raise_for_status()
        out = []
        for line in filter(None, r.text.splitlines()):
            row = yaml.safe_load(line)  # JSON lines
            out.append((row["metric"], {t / 1000: v for t, v in sorted(zip(row["timestamps"], row["values"]))}))
        return out


class VMAlert(_Process):
    """vmalert evaluating `rules` against the store, sending to Alertmanager, writing ALERTS back."""

    def __init__(self, root: Path, *, rules: list[Path], store: str, alertmanager: str,
                 evaluation_interval: str = "2s") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__([require_binary("vmalert"), *[f"-rule={p}" for p in rules], f"-datasource.url={store}",
                          f"-notifier.url={alertmanager}", f"-remoteWrite.url={store}", f"-remoteRead.url={store}",
                          f"-evaluationInterval={evaluation_interval}", f"-httpListenAddr=127.0.0.1:{self.port}",
                          "-loggerLevel=WARN"],
                         f"{self.url}/health", root, "vmalert")

    def alerts(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"])


class Link:
    """A TCP relay standing for a device's uplink: `cut()` refuses and drops every connection
    (a VPN down), `restore()` listens again on the same port.

    The first listener binds port 0: the kernel picks a free port as it binds, so there is no
    moment between choosing the port and taking it in which it could become some connection's
    local port ('Address already in use': the fleet's setup failed so in two CI runs with the
    port picked first by free_port)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.listener: socket.socket | None = None
        self.port = 0
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        self.port = int(listener.getsockname()[1])
        listener.listen(16)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            listener, self.listener = self.listener, None
            conns, self.conns = self.conns, set()
        if listener is not None:
            # shutdown first: a close alone leaves the socket listening in the kernel while the
            # accepting thread is blocked on it (connections still accepted, the port still taken)
            _close(listener)
            listener.close()
        for conn in conns:
            _close(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            with self.lock:
                if self.listener is not listener:
                    _close(client), _close(server)
                    return
                self.conns |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src), _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def vmagent_scrape_config(host: str, targets: list[str], scrape_interval: str) -> dict[str, Any]:
    """deploy/fleet/device/vmagent.yml with the device's name and its targets' addresses."""
    config = yaml.safe_load((FLEET / "device" / "vmagent.yml").read_text())
    config["global"]["scrape_interval"] = scrape_interval
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[:1] if job["job_name"] == "resilience-exporter" else targets[1:],
                                  "labels": {"host": host, "instance": host}}]
    config["scrape_configs"] = [j for j in config["scrape_configs"] if j["static_configs"][0]["targets"]]
    return config


class VMAgent(_Process):
    """A device's push agent: scrapes the device's targets, remote-writes through `remote_write`,
    buffering on disk (bounded) while it cannot."""

    def __init__(self, root: Path, *, host: str, targets: list[str], remote_write: str,
                 scrape_interval: str = "2s") -> None:
        self.port = free_port()
        (root / "vmagent.yml").write_text(yaml.safe_dump(vmagent_scrape_config(host, targets, scrape_interval)))
        super().__init__([require_binary("vmagent"), f"-promscrape.config={root / 'vmagent.yml'}",
                          f"-remoteWrite.url={remote_write}", f"-remoteWrite.tmpDataPath={root / 'buffer'}",
                          "-remoteWrite.maxDiskUsagePerURL=64MB", f"-httpListenAddr=127.0.0.1:{self.port}",
                          "-loggerLevel=ERROR", "-promscrape.suppressScrapeErrors", "-memory.allowedBytes=16MB"],
                         f"http://127.0.0.1:{self.port}/health", root, "vmagent")

    def metric(self, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name + "{") or line.startswith(name + " "))


class Exporter(_Process):
    """`resilience-exporter serve` as its own process with a config file."""

    def __init__(self, root: Path, config: dict[str, Any]) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = {**config, "web": {"listen_address": self.address}}
        (root / "exporter.yml").write_text(yaml.safe_dump(config))
        super().__init__([sys.executable, "-m", "exporter", "--config", str(root / "exporter.yml"), "serve"],
                         f"http://{self.address}/readyz", root, "exporter", timeout=180)  # 20 starting on 2 cores

    def rss_bytes(self) -> int:
        return _rss(self.proc.pid)


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def rss_bytes(process: _Process) -> int:
    return _rss(process.proc.pid)


def cpu_seconds(process: _Process) -> float:
    fields = Path(f"/proc/{process.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks (USER_HZ = 100)


class Device:
    """One device: its exporter (own --host, own agent, Kubernetes pods of its node) and its vmagent
    pushing to the centre through its own Link."""

    def __init__(self, root: Path, host: str, *, store: tuple[str, int], exporter_config: dict[str, Any],
                 scrape_interval: str = "2s") -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.host, self.root = host, root
        self.link = Link(store)
        self.exporter: Exporter | None = None
        self.vmagent: VMAgent | None = None
        try:
            self.exporter = Exporter(root, {"host": host, **exporter_config})
            self.vmagent = VMAgent(root, host=host, targets=[self.exporter.address],
                                   remote_write=f"http://127.0.0.1:{self.link.port}/api/v1/write",
                                   scrape_interval=scrape_interval)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for part in (self.vmagent, self.exporter):
            if part is not None:
                part.close()
        self.link.cut()


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fleet",
        "clusters": [{"name": "fleet", "cluster": {"server": server}}],
        "users": [{"name": "fleet", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "fleet", "context": {"cluster": "fleet", "user": "fleet"}}]}))
    return path


def run_quiet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60, cwd=ROOT)
