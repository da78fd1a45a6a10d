"""`python -m bench [name ...]`: run benchmarks and print one side-by-side table.

Names: resilience (breaker vs pybreaker, retry vs tenacity), library (decorators and keyed
breakers at 10,000 keys vs pybreaker and tenacity, keyed-breaker memory), scrape (cached exposition vs
client_python), prometheus_scrape (~10 min: scrape_duration_seconds as a real
Prometheus records it for ours, client_python and a pre-gzipped floor, 1,000 and 10,000
containers, unchanged and 10 % churning), docker_events (event ingest vs json.loads), docker_engine (real dockerd, root:
scrape vs list+inspect polling, event -> metric latency), textfile (SIGKILLed textfile writers
vs naive writes, read by node_exporter), kube (pod list + 50k watch events through the official
client from the fake API server, vs the client's own model deserialization; scrape of 10k containers), detection (root, ~2 min:
failure -> Slack payload through real Prometheus and Alertmanager with the shipped alert timings),
footprint (root, ~2.5 min: RSS with 1,000 containers tracked; idle CPU with 100 idle containers
on a private dockerd), image_footprint (root, ~2.5 min: RSS of the image built from the Dockerfile,
run as documented against a private dockerd holding 0 and 1,000 containers), soak (~1.5 min: 10k container churn without leaks, 100k-event burst without
loss, 60 s of hypothesis fuzzing; `python -m bench.soak --seconds 600` fuzzes longer),
dockerd_kill (root, ~2-3 min: dockerd SIGKILLed and restarted 20 times in a crash storm, counters
equal the engine's), kube_storm (5 min: watch drops and 410 Gone every few seconds under pod
churn, 0 stale pods), http_attack (~4 min: issue 16's attacks on the HTTP server, ours vs the
server before the hardening vs cheroot: idle-connection flood under ulimit -n 1024, 50
new-connection scrapers, a silent TLS client; scrape latency and RSS), fleet (~11 min: 100
simulated devices, each a real vmagent, pushing to a central VictoriaMetrics + vmalert +
Alertmanager; `python -m bench.fleet --devices N --seconds S` for other sizes).
Peers come from the optional `bench` dependency group: pip install -e '.[bench]'.
"""
from __future__ import annotations

import argparse
import importlib
import platform
import os

from bench.common import format_table

SUITES = ("resilience", "library", "scrape", "prometheus_scrape", "docker_events", "docker_engine", "textfile", "kube", "detection",
          "footprint", "image_footprint", "soak", "dockerd_kill", "kube_storm", "http_attack", "oom", "fleet")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("suites", nargs="*", metavar="SUITE", help=f"any of {', '.join(SUITES)} (default: all)")
    args = parser.parse_args()
    rows = []
    for name in args.suites or SUITES:
        rows.extend(importlib.import_module(f"bench.{name}").rows())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(format_table(rows))
    return 0 if all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
