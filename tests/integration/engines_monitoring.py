"""Real Prometheus, Alertmanager and node_exporter on loopback, and a Slack webhook receiver,
for tests and the detection benchmark. Each is started with the shipped configuration (rule files,
alertmanager.yml, slack.tmpl); only timings are overridden, and only where the caller asks."""
from __future__ import annotations

import json
import re
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import requests
import yaml

from tests.harness import free_port, require_binary

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}; log:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s; log: {log}")


class _Process:
    def __init__(self, args: list[str], ready_url: str, root: Path, name: str, *, timeout: float = 30) -> None:
        self.log = root / f"{name}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_http(ready_url, self.proc, self.log, timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def rule_files_for_test(dest: Path, *, for_: str | None = None, interval: str | None = None,
                        alerts: Path = ALERTS) -> list[Path]:
    """Copies of the shipped (or a rendered pack's) rule files; only `for`/`keep_firing_for` and group
    intervals are replaced."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in sorted(alerts.glob("*.rules.yml")):
        text = f.read_text()
        if for_ is not None:
            text = re.sub(r"(?m)^(\s+)(for|keep_firing_for): \S+$", rf"\1\2: {for_}", text)
        if interval is not None:
            text = re.sub(r"(?m)^    interval: \S+\n", "", text)
            text = re.sub(r"(?m)^(  - name: .+)$", rf"\1\n    interval: {interval}", text)
        (dest / f.name).write_text(text)
        out.append(dest / f.name)
    return out


class Prometheus(_Process):
    def __init__(self, root: Path, *, targets: dict[str, list[str]], alertmanager: str | None,
                 rule_files: list[Path], scrape_interval: str = "10s", evaluation_interval: str = "10s",
                 keep: dict[str, str] | None = None, target_labels: dict[str, dict[str, str]] | None = None,
                 params: dict[str, dict[str, Any]] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval},
            "rule_files": [str(p) for p in rule_files],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": t}]} for job, t in targets.items()],
        }
        for scrape in config["scrape_configs"]:  # target_labels: job -> labels every target of it gets
            job = scrape["job_name"]
            if target_labels and job in target_labels:
                scrape["static_configs"][0]["labels"] = target_labels[job]
            if params and job in params:  # e.g. blackbox_exporter's /probe?module=...&target=...
                scrape.update(params[job])
        for scrape in config["scrape_configs"]:  # keep: job -> regex of the metric names to keep
            if keep and scrape["job_name"] in keep:
                scrape["metric_relabel_configs"] = [{"source_labels": ["__name__"], "regex": keep[scrape["job_name"]],
                                                     "action": "keep"}]
        if alertmanager:
            config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        super().__init__([require_binary("prometheus"), f"--config.file={root / 'prometheus.yml'}",
                          f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.port}",
                          "--rules.alert.resend-delay=1s", "--log.level=warn"],
                         f"{self.url}/-/ready", root, "prometheus")

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('error')}")
        return list(body["data"]["result"]) if body["data"]["resultType"] in ("vector", "matrix") else \
            [body["data"]["result"]]

    def alerts(self) -> list[dict[str, Any]]:
        return list(requests.get(f"{self.url}/api/v1/alerts", timeout=10).json()["data"]["alerts"])


class Alertmanager(_Process):
    """The shipped alertmanager.yml, Slack webhook URL file pointed at `slack_url`; `timings` overrides
    group_wait/group_interval/repeat_interval on every route (tests only)."""

    def __init__(self, root: Path, *, slack_url: str, timings: dict[str, str] | None = None,
                 alerts: Path = ALERTS) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = yaml.safe_load((alerts / "alertmanager.yml").read_text())
        (root / "slack_webhook_url").write_text(slack_url + "\n")
        config["global"]["slack_api_url_file"] = str(root / "slack_webhook_url")
        config["templates"] = [str(alerts / "templates" / "*.tmpl")]
        if timings:
            for route in [config["route"], *config["route"].get("routes", [])]:
                for key, value in timings.items():
                    if key in route or route is config["route"]:
                        route[key] = value
        (root / "alertmanager.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        super().__init__([require_binary("prometheus-alertmanager"), f"--config.file={root / 'alertmanager.yml'}",
                          f"--storage.path={root / 'am'}", f"--web.listen-address=127.0.0.1:{self.port}",
                          "--cluster.listen-address=", "--log.level=warn"],
                         f"{self.url}/-/ready", root, "alertmanager")


class NodeExporter(_Process):
    def __init__(self, root: Path, textfile_dir: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        super().__init__([require_binary("prometheus-node-exporter"), f"--web.listen-address={self.address}",
                          "--collector.disable-defaults", "--collector.textfile",
                          f"--collector.textfile.directory={textfile_dir}"],
                         f"http://{self.address}/metrics", root, "node_exporter")


class StaticMetrics:
    """An HTTP server answering every GET with a Prometheus text body (`body`, which the caller
    may replace): another application, or a simulated device."""

    def __init__(self, text: str) -> None:
        self.body = text.encode()
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = metrics.body
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class BlackboxExporter(_Process):
    """blackbox_exporter with one module, `http_2xx`; Prometheus scrapes /probe?module=http_2xx&target=..."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        (root / "blackbox.yml").write_text(yaml.safe_dump(
            {"modules": {"http_2xx": {"prober": "http", "timeout": "2s", "http": {"preferred_ip_protocol": "ip4"}}}}))
        super().__init__([require_binary("prometheus-blackbox-exporter"), f"--config.file={root / 'blackbox.yml'}",
                          f"--web.listen-address={self.address}"], f"http://{self.address}/metrics", root, "blackbox")

    def scrape_config(self, target: str) -> dict[str, Any]:
        """Extra scrape settings of a Prometheus job probing `target` through this exporter."""
        return {"metrics_path": "/probe", "params": {"module": ["http_2xx"], "target": [target]}}


@dataclass
class SlackMessage:
    received: float  # time.time()
    payload: dict[str, Any]

    @property
    def attachment(self) -> dict[str, Any]:
        return dict(self.payload["attachments"][0])

    @property
    def title(self) -> str:
        return str(self.attachment.get("title", ""))

    @property
    def text(self) -> str:
        return str(self.attachment.get("text", ""))


@dataclass
class SlackReceiver:
    """An HTTP server standing in for Slack's incoming webhook: records every JSON payload."""

    messages: list[SlackMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    receiver.messages.append(SlackMessage(time.time(), json.loads(body)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def find(self, predicate: Callable[[SlackMessage], bool]) -> SlackMessage | None:
        return next((m for m in list(self.messages) if predicate(m)), None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def temp_root(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
