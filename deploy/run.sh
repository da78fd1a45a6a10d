#!/usr/bin/env bash
# Run the exporter from a checkout: makes .venv on first use, installs the package, then execs
# `resilience-exporter` with the arguments given (none needed: zero-config start works).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.installed-run-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e .
  touch "$stamp"
fi
exec .venv/bin/resilience-exporter "$@"
