"""The scrape as Prometheus sees it: `scrape_duration_seconds` of ours, client_python and a floor.

One real Prometheus (Debian's, on loopback) scrapes three targets at once, each its own process
serving the same synthetic containers (bench.scrape.synthetic): ours (the exporter's HTTP server
and exposition), client_python (the same samples in Gauge/Counter objects behind its
`start_http_server`), and the floor: our first body pre-gzipped once, served from memory by a
trivial server, i.e. what Prometheus itself spends fetching, decompressing, parsing and appending
those samples. Prometheus negotiates gzip as it always does. Each case runs for `--seconds`
after every target has been scraped twice; the churn case changes 10 % of the containers (a new
failure each) once per scrape interval in ours and in client_python.

    python -m bench prometheus_scrape        # 1,000 and 10,000 containers, unchanged and churn
    python -m bench.prometheus_scrape --seconds 60 --containers 1000
"""
from __future__ import annotations

import argparse
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.common import Row
from bench.scrape import stock_registry, synthetic
from tests.harness import free_port
from tests.integration.engines_monitoring import Prometheus, temp_root

TARGETS = ("ours", "client_python", "floor")
GOALS = {(1000, False): 1.2, (10000, False): 1.3, (1000, True): 1.5, (10000, True): 1.5}
CHURN = 0.10


def _ours(n: int, port: int, churn_every: float | None) -> None:
    from exporter.metrics import ContainerCollector, Exposition
    from exporter.state import Reason, StateStore
    from exporter.web.server import ExporterHTTPServer

    records = synthetic(n)
    store = StateStore()
    for rec in records:
        store.put(rec)
    exposition = Exposition([ContainerCollector(store)])
    exposition.render_gzip()  # as after start-up: the first scrape renders every container
    server = ExporterHTTPServer(("127.0.0.1", port), exposition, telemetry_path="/metrics", ready=lambda: True)
    if churn_every:
        def churn() -> None:
            rng = random.Random(1)
            current = {r.key: r for r in records}
            while True:
                time.sleep(churn_every)
                for key in rng.sample(sorted(current), int(n * CHURN)):
                    rec = current[key]
                    current[key] = rec = rec.with_failure(Reason.ERROR, 1)  # a value moves, no new series
                    store.put(rec)
        threading.Thread(target=churn, daemon=True).start()
    server.serve_forever()


def _client_python(n: int, port: int, churn_every: float | None) -> None:
    from prometheus_client import start_http_server

    registry = stock_registry(synthetic(n))
    start_http_server(port, addr="127.0.0.1", registry=registry)
    rng = random.Random(1)
    counters = [m for m in registry._names_to_collectors.values() if m._type == "counter"]  # noqa: SLF001
    while True:
        time.sleep(churn_every or 3600)
        if churn_every:  # a new failure on 10 % of the containers: one counter child each
            for metric in counters:
                children = list(metric._metrics.values())  # noqa: SLF001
                for child in rng.sample(children, int(len(children) * CHURN)):
                    child.inc()


def _floor(n: int, port: int) -> None:
    from exporter.metrics import ContainerCollector, Exposition
    from exporter.state import StateStore

    store = StateStore()
    for rec in synthetic(n):
        store.put(rec)
    body = zlib.compress(Exposition([ContainerCollector(store)]).render(), 1, wbits=31)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def _listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    """Each target listens once its samples are built (a 10,000-container scrape of client_python
    takes longer than any HTTP readiness timeout here, so readiness is the open port)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"target on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"port {port}: not listening after {timeout}s")


def measure(n: int, *, churn: bool, seconds: float) -> dict[str, dict[str, float]]:
    """{target: {mean, max, samples, scrapes}} of `scrape_duration_seconds` over `seconds`."""
    interval = 1 if n <= 1000 else 2
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports = {t: free_port() for t in TARGETS}
    root = temp_root("bench-prom-scrape-")
    prometheus = None
    try:
        for target, port in ports.items():
            args = [sys.executable, "-m", "bench.prometheus_scrape", "--serve", target, "--containers", str(n),
                    "--port", str(port)] + (["--churn-every", str(interval)] if churn else [])
            with open(root / f"{target}.log", "wb") as log:
                procs[target] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        for target, port in ports.items():  # building 10,000 containers' objects takes a while
            _listening(port, procs[target])
        prometheus = Prometheus(root, targets={t: [f"127.0.0.1:{p}"] for t, p in ports.items()}, alertmanager=None,
                                rule_files=[], scrape_interval=f"{interval}s", evaluation_interval="10s",
                                params={t: {"scrape_timeout": f"{interval}s"} for t in TARGETS})
        deadline = time.monotonic() + 120
        while True:  # two scrapes of each target (ours and the floor successful) before the window opens
            got = prometheus.query(f"count_over_time(up[{interval * 30}s]) >= 2 and (up == 1 or up{{job='client_python'}})")
            if len(got) == len(TARGETS):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{n} containers: not every target up after 120 s: {got}")
            time.sleep(0.5)
        time.sleep(seconds)
        window = f"[{int(seconds)}s]"
        out: dict[str, dict[str, float]] = {t: {} for t in TARGETS}
        for key, expr in (("mean", f"avg_over_time(scrape_duration_seconds{window})"),
                          ("max", f"max_over_time(scrape_duration_seconds{window})"),
                          ("scrapes", f"count_over_time(scrape_duration_seconds{window})"),
                          ("up", f"avg_over_time(up{window})"),
                          ("samples", "scrape_samples_scraped")):
            for series in prometheus.query(expr):
                out[series["metric"]["job"]][key] = float(series["value"][1])
        return out
    finally:
        if prometheus is not None:
            prometheus.close()
        for proc in procs.values():
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def rows(seconds: float = 60, sizes: tuple[int, ...] = (1000, 10000)) -> list[Row]:
    out = []
    for n in sizes:
        for churn in (False, True):
            got = measure(n, churn=churn, seconds=seconds)
            ours, peer, floor = (got[t] for t in TARGETS)
            case = f"Prometheus scrape, {n:,} containers ({int(ours.get('samples', 0)):,} samples)" + \
                (", 10 % changing per scrape" if churn else ", unchanged")
            goal = GOALS[(n, churn)]
            ok = ours.get("up") == 1 and floor.get("up") == 1
            out += [
                Row(f"{case}: mean scrape_duration_seconds", ours["mean"] * 1e3, floor["mean"] * 1e3, "ms",
                    "floor: same bytes pre-gzipped", f"<= {goal}x", ok and ours["mean"] / floor["mean"] <= goal),
                Row(f"{case}: max", ours["max"] * 1e3, floor["max"] * 1e3, "ms", "floor", "(informative)", None),
                Row(f"{case}: client_python mean", peer["mean"] * 1e3, floor["mean"] * 1e3, "ms", "floor",
                    "(informative)", None),
                Row(f"{case}: client_python max", peer["max"] * 1e3, floor["max"] * 1e3, "ms", "floor",
                    "(informative)", None),
                Row(f"{case}: scrapes, ours (up 100 %) / client_python (up {peer.get('up', 0):.0%})",
                    ours.get("scrapes", 0), peer.get("scrapes", 0), "", "client_python", "ours all up", ok),
            ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prometheus_scrape", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", choices=TARGETS, help="(internal) serve one target")
    parser.add_argument("--port", type=int)
    parser.add_argument("--churn-every", type=float)
    parser.add_argument("--containers", type=int, action="append")
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    if args.serve:
        n = args.containers[0]
        if args.serve == "ours":
            _ours(n, args.port, args.churn_every)
        elif args.serve == "client_python":
            _client_python(n, args.port, args.churn_every)
        else:
            _floor(n, args.port)
        return
    from bench.common import format_table

    print(format_table(rows(args.seconds, tuple(args.containers or (1000, 10000)))))


if __name__ == "__main__":
    main()
