#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs the Debian test engines (when root), makes
# .venv, installs the package with its test extras, runs pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# binary -> the Debian package that ships it (kubectl may already come from another package)
declare -A ENGINES=(
  [dockerd]=docker.io [busybox]=busybox-static [promtool]=prometheus [prometheus]=prometheus
  [prometheus-alertmanager]=prometheus-alertmanager [amtool]=prometheus-alertmanager
  [prometheus-node-exporter]=prometheus-node-exporter [docker-registry]=docker-registry
  [chromium]=chromium [openssl]=openssl [debootstrap]=debootstrap
  [prometheus-blackbox-exporter]=prometheus-blackbox-exporter [podman]=podman
  [victoria-metrics]=victoria-metrics [vmagent]=victoria-metrics [vmalert]=victoria-metrics
  [qemu-aarch64-static]=qemu-user-static [kubectl]=kubernetes-client
  [systemd-analyze]=systemd [docker-compose]=docker-compose
)

missing() {
  local out=()
  for b in "${!ENGINES[@]}"; do command -v "$b" >/dev/null 2>&1 || out+=("$b"); done
  echo "${out[*]:-}"
}

missing_packages() {
  local b pkgs=()
  for b in $(missing); do pkgs+=("${ENGINES[$b]}"); done
  printf '%s\n' "${pkgs[@]}" | sort -u | tr '\n' ' '
}

if [ -n "$(missing)" ] && [ "$(id -u)" = 0 ]; then
  pkgs=$(missing_packages)
  echo "tests/run.sh: installing test engines: $pkgs" >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $pkgs >/dev/null
fi
if [ -n "$(missing)" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "tests/run.sh: FATAL: engines missing under CI: $(missing) (run as root to install them)" >&2
    exit 1
  fi
  echo "tests/run.sh: WARNING: engines missing: $(missing); their tests will be skipped" >&2
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi
exec .venv/bin/python -m pytest "$@"
