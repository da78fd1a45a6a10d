#!/usr/bin/env python3
"""Render alerts/*.rules.yml into base/prometheusrule.yaml, the Prometheus Operator's form.

The rule files are the source of truth (promtool-tested in alerts/tests); this file is only
ever written by this script, and the test suite fails when the committed copy differs from a
fresh render. After changing alerts/:

    python3 deploy/kubernetes/prometheusrule.py          # rewrite base/prometheusrule.yaml
    python3 deploy/kubernetes/prometheusrule.py --check  # exit 1 if it is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
TARGET = Path(__file__).resolve().parent / "base" / "prometheusrule.yaml"
HEADER = ("# GENERATED from alerts/*.rules.yml by deploy/kubernetes/prometheusrule.py; do not edit.\n"
          "# The rules of every alerts/*.rules.yml file, as one PrometheusRule for the Prometheus Operator.\n")


class BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions) as `|` blocks, so the file reads like the source."""


BlockDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render(alerts: Path = ALERTS) -> str:
    """The PrometheusRule text for every rule group of alerts/*.rules.yml, in file order."""
    groups: list[dict[str, Any]] = []
    for path in sorted(alerts.glob("*.rules.yml")):
        document = yaml.safe_load(path.read_text()) or {}
        if not isinstance(document.get("groups"), list):
            raise SystemExit(f"{path}: expected a top-level 'groups' list of Prometheus rule groups")
        groups.extend(document["groups"])
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "resilience-exporter", "labels": {"app.kubernetes.io/name": "resilience-exporter"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(rule, Dumper=BlockDumper, sort_keys=False, width=120, allow_unicode=True)


def main(argv: list[str] | None = None, target: Path = TARGET) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file differs from a fresh render")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not target.exists() or target.read_text() != text:
            print(f"{target} is out of date with alerts/*.rules.yml: "
                  "run python3 deploy/kubernetes/prometheusrule.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
