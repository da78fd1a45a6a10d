"""Failure -> Slack payload with the shipped (production) timings, on real components (root).

A private dockerd, the exporter (Docker source with the pull guard, one HTTP probe), Prometheus
with the shipped rule files unchanged and the intervals of alerts/prometheus.example.yml, and
Alertmanager with the shipped alertmanager.yml and Slack template posting to a local receiver.
All failures start at once; each row is the time from its start to the first Slack payload.
Peers: the kubernetes-mixin `for` of the matching alert (KubePodCrashLooping 15m,
KubeContainerWaiting 1h), a floor its pipeline cannot beat.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

import requests
import yaml

from bench.common import Row
from exporter.app import Exporter
from exporter.config import load
from tests.integration.dockerd import IMAGE, PrivateDockerd
from tests.harness import free_port
from tests.integration.engines_monitoring import ALERTS, Alertmanager, Prometheus, SlackReceiver, temp_root

HOST = "bench-host"
GOALS = {"terminal": 30.0, "crash": 90.0, "oom": 60.0, "breaker": 60.0}


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


def _production_intervals() -> tuple[str, str]:
    example = yaml.safe_load((ALERTS / "prometheus.example.yml").read_text())["global"]
    return example["scrape_interval"], example["evaluation_interval"]


def measure(timeout: float = 300) -> dict[str, float]:
    """Seconds from each failure's start to its Slack payload (breaker: also from the breaker opening)."""
    root = temp_root("re-detection-")
    engine = PrivateDockerd()
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    parts: list = []
    exporter = None
    try:
        engine.start()
        engine.build_testbox()
        guarded = "bench/guarded:1"
        engine.cli("tag", IMAGE, guarded)
        port = free_port()
        config = {"host": HOST, "web": {"listen_address": f"127.0.0.1:{port}"},
                  "docker": {"host": engine.url,
                             "pull_guard": {"enabled": True, "images": [{"image": guarded, "pull_policy": "Never"}]}},
                  "probes": [{"name": "upstream", "url": f"http://127.0.0.1:{upstream.server_address[1]}/"}]}
        (root / "exporter.yml").write_text(yaml.safe_dump(config))
        exporter = Exporter(load(file=root / "exporter.yml"))
        exporter.start()
        slack = SlackReceiver()
        parts.append(slack)
        alertmanager = Alertmanager(root, slack_url=slack.url)
        parts.append(alertmanager)
        scrape, evaluation = _production_intervals()
        prometheus = Prometheus(root, targets={"resilience-exporter": [f"127.0.0.1:{port}"]},
                                alertmanager=f"127.0.0.1:{alertmanager.port}",
                                rule_files=sorted(ALERTS.glob("*.rules.yml")),
                                scrape_interval=scrape, evaluation_interval=evaluation)
        parts.append(prometheus)
        metrics = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 120
        while not (prometheus.query('up{job="resilience-exporter"} == 1') and
                   'resilience_probe_success{target="upstream"} 1' in requests.get(metrics, timeout=5).text):
            if time.monotonic() > deadline:
                raise TimeoutError("the stack did not settle")
            time.sleep(0.5)

        tag = str(int(time.time()))
        crash, hog = f"crashy-{tag}", f"hog-{tag}"
        starts: dict[str, float] = {}
        starts["terminal"] = time.time()
        engine.cli("rmi", guarded)  # only untags: testbox:1 keeps the layers
        starts["crash"] = time.time()
        engine.run("--name", crash, "--restart", "always", IMAGE, "sh", "-c", "exit 3")
        starts["oom"] = time.time()
        engine.run("--name", hog, "-m", "8m", "--memory-swap", "8m", IMAGE, "sh", "-c", 'x=a; while true; do x="$x$x"; done')
        starts["breaker"] = time.time()
        upstream.shutdown()
        upstream.server_close()

        needles = {"terminal": f"ErrImageNeverPull {guarded}@{HOST}", "crash": f"CrashLoopBackOff {crash}@{HOST}",
                   "oom": f"OOMKilled {hog}@{HOST}", "breaker": "CircuitOpen probe:upstream@"}
        got: dict[str, float] = {}
        breaker_open = None
        deadline = time.monotonic() + timeout
        while len(got) < len(needles) and time.monotonic() < deadline:
            if breaker_open is None and 'circuit_breaker_state{name="probe:upstream"} 1' in requests.get(metrics, timeout=5).text:
                breaker_open = time.time()
            for key, needle in needles.items():
                if key not in got and (m := slack.find(lambda m: m.title.startswith("[FIRING") and needle in m.title)):
                    got[key] = m.received - starts[key]
            time.sleep(0.2)
        if breaker_open is not None and "breaker" in got:
            got["breaker_from_open"] = got["breaker"] + starts["breaker"] - breaker_open
        missing = [key for key in needles if key not in got]
        if missing:  # say where each missing alert got lost: exporter, Prometheus or Alertmanager
            text = requests.get(metrics, timeout=5).text
            exported = [line for line in text.splitlines() if hog in line or crash in line]
            alerts = [a["labels"].get("alertname") for a in prometheus.alerts()]
            states = engine.cli("inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}",
                                hog, crash, check=False).stdout
            print(f"detection: no Slack payload for {missing}; Slack got {[m.title for m in slack.messages]}; "
                  f"Prometheus alerts {alerts}; exporter: {exported}; engine: {states}", file=sys.stderr)
        return got
    finally:
        if exporter is not None:
            exporter.stop()
        for part in reversed(parts):
            part.close()
        engine.close()
        shutil.rmtree(root, ignore_errors=True)


def rows() -> list[Row]:
    got = measure()
    nan = float("nan")
    spec = [("terminal image error -> Slack", "terminal", 3600.0, "KubeContainerWaiting for"),
            ("crash loop -> Slack", "crash", 900.0, "KubePodCrashLooping for"),
            ("OOM kill -> Slack", "oom", None, ""),
            ("probe down -> breaker open -> Slack", "breaker", None, "")]
    out = []
    for name, key, peer, peer_name in spec:
        value = got.get(key, nan)
        goal = GOALS[key] if key != "breaker" else None
        out.append(Row(f"detection: {name}", value, peer, "s", peer_name,
                       f"<= {goal:.0f} s" if goal else "-", (value <= goal) if goal else None))
    value = got.get("breaker_from_open", nan)
    out.append(Row("detection: breaker open -> Slack", value, None, "s", "", f"<= {GOALS['breaker']:.0f} s",
                   value <= GOALS["breaker"]))
    return out


def repeat(runs: int, *, log: Callable[[str], None] = print) -> dict[str, list[float]]:
    """`runs` independent measurements (a fresh engine and stack each); per scenario the times
    of the runs that delivered, and one line per run as it ends."""
    times: dict[str, list[float]] = {key: [] for key in (*GOALS, "breaker_from_open")}
    for i in range(runs):
        got = measure()
        for key, value in got.items():
            times[key].append(value)
        log(f"run {i + 1}/{runs}: " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(got.items())))
    return times


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection", description=__doc__)
    parser.add_argument("--runs", type=int, default=1, help="independent runs; p50/p95/max per scenario")
    args = parser.parse_args()
    if args.runs == 1:
        from bench.common import format_table

        print(format_table(rows()))
        return 0
    times = repeat(args.runs)
    print(f"{'scenario':<18} {'delivered':>9} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'goal':>7}")
    for key, values in times.items():
        goal = GOALS.get(key, GOALS["breaker"])
        if values:
            print(f"{key:<18} {len(values):>5}/{args.runs:<3} {percentile(values, 50):>7.1f} "
                  f"{percentile(values, 95):>7.1f} {max(values):>7.1f} {goal:>7.0f}")
        else:
            print(f"{key:<18} {0:>5}/{args.runs:<3}")
    return 0 if all(len(v) == args.runs for v in times.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
