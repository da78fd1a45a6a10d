"""The README's run command on this checkout: zero-config start, metrics, clear logs, clean stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import requests

from tests.harness import wait_until

ROOT = Path(__file__).resolve().parents[2]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def test_readme_run_command_starts_with_no_config_and_serves_metrics(tmp_path: Path) -> None:
    assert port_free(10099), "the default port 10099 is taken on this machine"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RESILIENCE_EXPORTER_")}
    env.pop("DOCKER_HOST", None)
    log = (tmp_path / "stderr.log").open("w+")
    proc = subprocess.Popen(["bash", str(ROOT / "deploy" / "run.sh")], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)
    try:
        text = wait_until(lambda: requests.get("http://127.0.0.1:10099/metrics", timeout=2).text,
                          timeout=120, message="the exporter to serve /metrics on :10099")
        assert 'resilience_exporter_build_info{version="0.1.0"' in text
        for family in ("circuit_breaker_state", "circuit_breaker_transitions_total", "circuit_breaker_calls_total",
                       "retry_calls_total", "retry_budget_exhausted_total", "resilience_errors_total"):
            assert f"# TYPE {family} " in text
        assert proc.poll() is None
        log.seek(0)
        lines = log.read()
        assert "level=warn" in lines and "no Docker or Kubernetes source is configured or reachable" in lines
        assert "msg=listening" in lines and "address=0.0.0.0:10099" in lines
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    log.seek(0)
    assert "msg=stopped" in log.read()


def test_python_dash_m_version_and_bad_config_exit_code(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "exporter", "--version"], capture_output=True, text=True, timeout=30)
    revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert out.returncode == 0 and out.stdout.strip() == f"resilience-exporter 0.1.0 (revision {revision})"
    bad = tmp_path / "c.yaml"
    bad.write_text("web:\n  listen_address: 127.0.0.1:99999\n")
    out = subprocess.run([sys.executable, "-m", "exporter", "--config", str(bad)], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f'resilience-exporter: {bad}: web.listen_address: expected an address like ":10099" or '
        f'"127.0.0.1:10099", got \'127.0.0.1:99999\'']
