"""deploy/fleet/ stays true: the device config validates, vmagent accepts its scrape config and
unit flags, vmalert accepts the pack rendered from the centre's site file with its unit's flags,
VictoriaMetrics knows every flag of its unit."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from exporter import cli
from tests.harness import require_binary
from tests.integration.test_deploy import exec_start

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "deploy" / "fleet"


def test_the_device_config_validates(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text((FLEET / "device" / "config.yaml").read_text().replace("DEVICE", "edge-7"))
    assert cli.check_config(str(config)) == 0


def test_vmagent_accepts_the_device_scrape_config_and_unit_flags(tmp_path: Path) -> None:
    scrape = tmp_path / "vmagent.yml"
    scrape.write_text((FLEET / "device" / "vmagent.yml").read_text().replace("DEVICE", "edge-7"))
    for job in yaml.safe_load(scrape.read_text())["scrape_configs"]:
        assert job["honor_labels"] is True and job["static_configs"][0]["labels"] == {"host": "edge-7",
                                                                                      "instance": "edge-7"}
    args = exec_start(FLEET / "device" / "vmagent.service")
    assert args[0] == "/usr/bin/vmagent"
    flags = [a for a in args[1:] if not a.startswith(("-promscrape.config=", "-remoteWrite.tmpDataPath="))]
    out = subprocess.run([require_binary("vmagent"), *flags, f"-promscrape.config={scrape}",
                          f"-remoteWrite.tmpDataPath={tmp_path / 'buf'}", "-dryRun"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_vmalert_accepts_the_centres_render_and_unit_flags(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "exporter", "alerts", "render", "--config",
                          str(FLEET / "central" / "alertpack.yaml"), "--out", str(tmp_path / "pack")],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "keep_firing_for:" not in "".join(p.read_text() for p in (tmp_path / "pack").glob("*.rules.yml"))
    args = exec_start(FLEET / "central" / "vmalert.service")
    assert args[0] == "/usr/bin/vmalert" and "-rule=/etc/resilience/alerts/*.rules.yml" in args
    flags = [a for a in args[1:] if not a.startswith("-rule=")]
    out = subprocess.run([require_binary("vmalert"), *flags, f"-rule={tmp_path / 'pack'}/*.rules.yml", "-dryRun"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "error" not in out.stderr.lower(), out.stdout + out.stderr


def test_victoria_metrics_knows_every_flag_of_its_unit() -> None:
    args = exec_start(FLEET / "central" / "victoria-metrics.service")
    assert args[0] == "/usr/bin/victoria-metrics"
    known = subprocess.run([require_binary("victoria-metrics"), "-help"], capture_output=True, text=True,
                           timeout=30).stdout
    for flag in args[1:]:
        assert f"  {flag.split('=')[0]} " in known, flag


def test_the_grafana_datasource_points_at_the_store() -> None:
    (source,) = yaml.safe_load((FLEET / "central" / "grafana-datasource.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"].endswith(":8428")
