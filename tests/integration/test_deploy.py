"""Deployment examples stay true: every command line parses, every config validates."""
from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

from exporter import cli
from exporter.config import load
from tests.harness import require_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def exec_start(unit: Path) -> list[str]:
    text = unit.read_text().replace("\\\n", " ")  # continuation lines
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_systemd_units_run_real_commands_with_real_flags() -> None:
    exporter = exec_start(DEPLOY / "systemd" / "resilience-exporter.service")
    assert exporter[0].endswith("/resilience-exporter")
    args = cli.build_parser().parse_args(exporter[1:])
    assert args.command is None and args.config == "/etc/resilience-exporter/config.yaml"
    assert load(flags=cli._flag_values(args)).web.listen_address == ":10099"
    agent = exec_start(DEPLOY / "systemd" / "role-agent.service")
    split = agent.index("--")
    args = cli.build_parser().parse_args(agent[1:split])
    assert args.command == "agent" and args.mode == "run-once"
    assert agent[split + 1:] == ["/opt/fleet/agent/role-agent.sh", "--log-json"]
    assert "OnUnitActiveSec=5min" in (DEPLOY / "systemd" / "role-agent.timer").read_text()


def test_compose_sidecar_config_validates_and_shares_the_textfile_volume() -> None:
    assert cli.check_config(str(DEPLOY / "compose" / "config.yaml")) == 0
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
    exporter, node = compose["services"]["resilience-exporter"], compose["services"]["node-exporter"]
    assert "${DOCKER_SOCKET:-/var/run/docker.sock}:/var/run/docker.sock:ro" in exporter["volumes"]
    textfile_dir = load(file=DEPLOY / "compose" / "config.yaml").textfile.directory
    assert f"textfile:{textfile_dir}" in exporter["volumes"]
    assert f"--collector.textfile.directory={textfile_dir}" in node["command"]
    assert exporter["user"] == "10001:10001"
    assert textfile_dir == "/var/lib/prometheus/node-exporter"  # Debian's, as in the image and the units


def test_prometheus_example_passes_promtool() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
