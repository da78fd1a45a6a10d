"""The fleet at scale (issue 19): N simulated devices push to one central VictoriaMetrics.

Each device is a real vmagent with deploy/fleet/device/vmagent.yml unchanged (15 s scrape) and the
flags of vmagent.service, scraping an HTTP endpoint that serves what a real exporter served: the
/metrics of `resilience-exporter serve` watching 10 Kubernetes pods of its node (fake API server),
with a role agent and two probes, captured once and given each device's host. The centre runs
VictoriaMetrics, vmalert (evaluation 15 s) and Alertmanager with the pack rendered from
deploy/fleet/central/alertpack.yaml, unchanged. Terminal image errors start on random devices at
spread times (a distinct image each, so each is its own Slack message); latency is failure start
-> Slack payload. `python -m bench.fleet --devices 100 --seconds 600`.
"""
from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
import yaml

from bench.common import Row
from tests.integration.engines_monitoring import Alertmanager, SlackReceiver, StaticMetrics, temp_root
from tests.integration.fake_kube import FakeKubeApi, load_pod
from tests.integration.fleet import FLEET, ROOT, Exporter, VictoriaMetrics, VMAgent, VMAlert, cpu_seconds, kubeconfig, \
    rss_bytes

SOURCE = "bench-src"


def capture_exporter_metrics(root: Path) -> str:
    """/metrics of a real exporter: 10 pods (2 containers each) on its node, an agent, two probes."""
    api = FakeKubeApi().start()
    fixtures = ["running"] * 7 + ["crash-loop-backoff", "image-pull-backoff", "oom-killed"]
    for i, fixture in enumerate(fixtures):
        api.add(load_pod(fixture, name=f"app-{i}", node=SOURCE))
    exporter = None
    try:
        exporter = Exporter(root, {"host": SOURCE, "docker": {"enabled": "false"},
                                   "kubernetes": {"enabled": True, "node": SOURCE,
                                                  "kubeconfig": str(kubeconfig(root / "kubeconfig", api.url))},
                                   "agent": {"command": ["true"], "name": "edge", "every": "1s"},
                                   "probes": [{"name": "api", "url": "http://127.0.0.1:9/", "interval": "1s"},
                                              {"name": "stream", "url": "http://127.0.0.1:9/s", "interval": "1s"}]})
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:  # until the agent has run and the pods are listed
            text = requests.get(f"http://{exporter.address}/metrics", timeout=10).text
            if "role_agent_last_run_success{" in text and text.count("workload_container_info{") >= 20:
                break
            time.sleep(0.5)
        return text
    finally:
        if exporter is not None:
            exporter.close()
        api.close()


class SimulatedDevice(StaticMetrics):
    """The exporter's captured /metrics under the device's host, plus a failure that can be started."""

    def __init__(self, host: str, text: str) -> None:
        self.host = host
        super().__init__(text.replace(f'host="{SOURCE}"', f'host="{host}"'))

    def fail(self, image: str) -> None:
        self.body += (f'workload_container_terminal{{source="docker",host="{self.host}",namespace="",pod="",'
                      f'container="",image="{image}",reason="ErrImageNeverPull"}} 1\n').encode()


def _vmagent_metric(agent: VMAgent, name: str) -> float:
    try:
        return agent.metric(name)
    except requests.RequestException:
        return 0.0


def _vm_metric(store: VictoriaMetrics, name: str) -> float:
    text = requests.get(f"{store.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def measure(devices: int = 100, seconds: float = 600, failures: int = 20, log: Any = print) -> dict[str, float]:
    root = temp_root("re-bench-fleet-")
    parts: list[Any] = []
    sims: list[SimulatedDevice] = []
    agents: list[VMAgent] = []
    try:
        (root / "source").mkdir()
        text = capture_exporter_metrics(root / "source")
        site = root / "alertpack.yaml"
        shutil.copy(FLEET / "central" / "alertpack.yaml", site)
        out = subprocess.run([sys.executable, "-m", "exporter", "alerts", "render", "--config", str(site),
                              "--out", str(root / "pack")], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert out.returncode == 0, out.stderr
        store = VictoriaMetrics(root)
        parts.append(store)
        slack = SlackReceiver()
        am = Alertmanager(root, slack_url=slack.url, alerts=root / "pack")
        parts.append(am)
        vmalert = VMAlert(root, rules=sorted((root / "pack").glob("*.rules.yml")), store=store.url,
                          alertmanager=am.url, evaluation_interval="15s")
        parts.append(vmalert)
        sims = [SimulatedDevice(f"dev-{i:03d}", text) for i in range(devices)]

        def start(sim: SimulatedDevice) -> VMAgent:
            (root / sim.host).mkdir()
            return VMAgent(root / sim.host, host=sim.host, targets=[sim.address],
                           remote_write=f"{store.url}/api/v1/write", scrape_interval="15s")

        with ThreadPoolExecutor(8) as pool:
            agents = list(pool.map(start, sims))
        log(f"{devices} devices pushing; warming up 60 s")
        time.sleep(60)  # a benchmark's fixed window: every agent has scraped and pushed several times
        t0 = time.monotonic()
        cpu0, vmalert_cpu0 = cpu_seconds(store), cpu_seconds(vmalert)
        rows0 = _vm_metric(store, 'vm_rows_inserted_total{type="promremotewrite"}')
        bytes0 = sum(_vmagent_metric(a, "vmagent_remotewrite_bytes_sent_total") for a in agents)
        starts: dict[str, float] = {}
        rng = random.Random(19)
        for n, sim in enumerate(rng.sample(sims, min(failures, devices))):
            due = t0 + (n + 0.5) * (seconds - 120) / failures
            time.sleep(max(0.0, due - time.monotonic()))
            image = f"bench/app-{n:02d}:1"
            sim.fail(image)
            starts[image] = time.time()
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        elapsed = time.monotonic() - t0
        cpu, vmalert_cpu = cpu_seconds(store) - cpu0, cpu_seconds(vmalert) - vmalert_cpu0
        rows = _vm_metric(store, 'vm_rows_inserted_total{type="promremotewrite"}') - rows0
        sent = sum(_vmagent_metric(a, "vmagent_remotewrite_bytes_sent_total") for a in agents) - bytes0
        series = float(store.query('count({host=~"dev-.*"})')[0]["value"][1])
        latencies = []
        for image, started in starts.items():
            msg = slack.find(lambda m, image=image: image in m.title)
            latencies.append(msg.received - started if msg else float("inf"))
        latencies.sort()
        log(f"Slack messages received: {len(slack.messages)}; image alerts delivered "
            f"{sum(1 for x in latencies if x != float('inf'))}/{len(latencies)}; titles: "
            f"{sorted(m.title for m in slack.messages)}")
        return {
            "devices": devices, "seconds": elapsed,
            "series_per_device": series / devices,
            "samples_per_s_per_device": rows / elapsed / devices,
            "rw_bytes_per_s_per_device": sent / elapsed / devices,
            "central_cpu_cores": cpu / elapsed, "vmalert_cpu_cores": vmalert_cpu / elapsed,
            "central_rss_mib": rss_bytes(store) / 2**20, "vmalert_rss_mib": rss_bytes(vmalert) / 2**20,
            "vmagent_rss_mib": statistics.mean(rss_bytes(a) for a in agents) / 2**20,
            "alert_p50_s": latencies[len(latencies) // 2],
            "alert_p95_s": latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))],
            "alerts_delivered": sum(1 for x in latencies if x != float("inf")), "alerts_started": len(latencies),
        }
    finally:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda a: a.close(), agents))
        for sim in sims:
            sim.close()
        for part in reversed(parts):
            part.close()
        shutil.rmtree(root, ignore_errors=True)


def rows(devices: int = 100, seconds: float = 600) -> list[Row]:
    got = measure(devices, seconds)
    n = f"fleet ({devices} devices, {got['seconds']:.0f} s)"
    return [
        Row(f"{n}: series per device", got["series_per_device"], None, "series"),
        Row(f"{n}: samples/s per device", got["samples_per_s_per_device"], None, "samples/s"),
        Row(f"{n}: remote-write bytes/s per device", got["rw_bytes_per_s_per_device"], None, "B/s"),
        Row(f"{n}: vmagent RSS per device", got["vmagent_rss_mib"], None, "MiB"),
        Row(f"{n}: central VictoriaMetrics CPU", got["central_cpu_cores"], None, "cores"),
        Row(f"{n}: central VictoriaMetrics RSS", got["central_rss_mib"], None, "MiB"),
        Row(f"{n}: vmalert CPU", got["vmalert_cpu_cores"], None, "cores"),
        Row(f"{n}: vmalert RSS", got["vmalert_rss_mib"], None, "MiB"),
        Row(f"{n}: alert latency p50 (failure -> Slack)", got["alert_p50_s"], None, "s", goal="<= 60 s",
            met=got["alert_p50_s"] <= 60),
        Row(f"{n}: alert latency p95 (failure -> Slack)", got["alert_p95_s"], None, "s", goal="<= 90 s",
            met=got["alert_p95_s"] <= 90),
        Row(f"{n}: alerts delivered", got["alerts_delivered"], got["alerts_started"], "alerts", "started",
            goal="all", met=got["alerts_delivered"] == got["alerts_started"]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args()
    from bench.common import format_table

    table = rows(args.devices, args.seconds)
    print(format_table(table))
    return 0 if all(r.met is not False for r in table) else 1


if __name__ == "__main__":
    raise SystemExit(main())
