"""The alert pack: the committed alerts/ is the default render, and a site's render (its own
selectors, runbook and dashboard URLs) passes promtool, its unit tests, and carries its links into
Slack through a real Prometheus and Alertmanager, firing only on the series its selector names."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from exporter.alertpack import PackConfig, PackConfigError, load_config, render_pack
from tests.harness import require_binary, wait_until
from tests.integration.engines_monitoring import (ALERTS, Alertmanager, Prometheus, SlackReceiver, StaticMetrics,
                                                  rule_files_for_test, temp_root)

ROOT = Path(__file__).resolve().parents[2]

SITE = {
    "selectors": {"exporter": 'job="edge-exporter",team="fleet"',
                  "textfile": 'writer=~"role_agent_.+|resilience_exporter",team="fleet"'},
    "runbook_url": "https://wiki.example.org/ops/resilience/{alertname}?from=alert",
    "dashboard_url": "https://grafana.ops.example.org:3000/",
    "test_labels": {"exporter": {"job": "edge-exporter", "team": "fleet"},
                    "textfile": {"job": "node", "writer": "role_agent_edge", "team": "fleet"}},
}


def test_committed_alerts_are_a_fresh_render_of_the_defaults() -> None:
    rendered = render_pack(PackConfig())
    stale = [name for name, text in rendered.items() if (ALERTS / name).read_text() != text]
    assert not stale, f"alerts/ differs from a fresh render: {stale}; run `resilience-exporter alerts render --out alerts`"
    committed = {str(p.relative_to(ALERTS)) for p in ALERTS.rglob("*.yml") if p.name != "prometheus.example.yml"}
    committed |= {str(p.relative_to(ALERTS)) for p in ALERTS.rglob("*.tmpl")}
    assert committed == set(rendered), "alerts/ holds files the pack does not render (or misses some)"


def test_no_placeholder_links_remain_in_a_site_render(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(SITE))
    for name, text in render_pack(load_config(site)).items():
        assert "github.com/fleet" not in text and "grafana.example.com" not in text, name


@pytest.mark.parametrize("content,error", [
    ("runbook_url: https://wiki/x\n", "runbook_url: must contain {alertname}"),
    ("selector: x\n", "unknown setting 'selector'"),
    ("selectors: {kube: 'job=\"x\"'}\n", "selectors.kube: unknown kind"),
    ("dashboard_url: 3\n", "dashboard_url: expected a non-empty string"),
    ("device_offline_after: 5 minutes\n", 'device_offline_after: expected a duration like "10m"'),
    ("rule_engine: thanos\n", "rule_engine: expected one of prometheus, vmalert"),
    ("group_by: 'alertname; host'\n", "group_by: expected label names separated by commas"),
])
def test_a_bad_site_file_is_one_line_naming_the_file_and_key(tmp_path: Path, content: str, error: str) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(content)
    with pytest.raises(PackConfigError, match=r"site\.yaml: ") as exc:
        load_config(site)
    assert error in str(exc.value) and "\n" not in str(exc.value)


@pytest.fixture(scope="module")
def site_pack() -> Iterator[Path]:
    root = temp_root("re-pack-")
    (root / "site.yaml").write_text(yaml.safe_dump(SITE))
    out = subprocess.run([sys.executable, "-m", "exporter", "alerts", "render", "--config", str(root / "site.yaml"),
                          "--out", str(root / "pack")], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    yield root / "pack"
    shutil.rmtree(root, ignore_errors=True)


def test_site_render_passes_promtool_check_and_its_unit_tests(site_pack: Path) -> None:
    rules = sorted(map(str, site_pack.glob("*.rules.yml")))
    check = subprocess.run([require_binary("promtool"), "check", "rules", *rules], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0 and "WARNING" not in check.stdout + check.stderr, check.stdout + check.stderr
    tests = subprocess.run([require_binary("promtool"), "test", "rules",
                            *sorted(map(str, (site_pack / "tests").glob("*.yml")))],
                           capture_output=True, text=True, timeout=120, cwd=site_pack)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert 'job="edge-exporter",team="fleet"' in (site_pack / "containers.rules.yml").read_text()


def test_site_links_reach_slack_and_only_the_selected_series_fire(site_pack: Path) -> None:
    """Real Prometheus with the site's rules scrapes two targets serving an open breaker: the site's
    (job edge-exporter, team fleet) and another team's under the default job name. Only the site's
    fires; its Slack message carries the site's runbook and dashboard URLs."""
    for name in ("prometheus", "prometheus-alertmanager"):
        require_binary(name)
    root = temp_root("re-pack-stack-")
    breaker = ('# TYPE circuit_breaker_state gauge\n'
               'circuit_breaker_state{name="probe:site-%s"} 1\n')
    ours, theirs = StaticMetrics(breaker % "ours"), StaticMetrics(breaker % "theirs")
    slack = SlackReceiver()
    am = prom = None
    try:
        am = Alertmanager(root, slack_url=slack.url, alerts=site_pack,
                          timings={"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"})
        prom = Prometheus(root, targets={"edge-exporter": [ours.address], "resilience-exporter": [theirs.address]},
                          target_labels={"edge-exporter": {"team": "fleet"}},
                          alertmanager=f"127.0.0.1:{am.port}",
                          rule_files=rule_files_for_test(root / "rules", for_="1s", interval="1s", alerts=site_pack),
                          scrape_interval="1s", evaluation_interval="1s")
        msg = wait_until(lambda: slack.find(lambda m: "probe:site-ours" in m.title), timeout=60, interval=0.2,
                         message="the site's breaker alert in Slack")
        buttons = {a["text"]: a["url"] for a in msg.attachment["actions"]}
        assert buttons["Runbook"] == "https://wiki.example.org/ops/resilience/ResilienceCircuitBreakerOpen?from=alert"
        assert buttons["Dashboard"].startswith("https://grafana.ops.example.org:3000/d/resilience-breakers?")
        assert "*Runbook:* https://wiki.example.org/ops/resilience/ResilienceCircuitBreakerOpen?from=alert" in msg.text
        firing = [a["labels"].get("name") for a in prom.alerts() if a["labels"]["alertname"].startswith("Resilience")]
        assert firing == ["probe:site-ours"], firing
        assert not slack.find(lambda m: "site-theirs" in m.title)
    finally:
        for part in (prom, am):
            if part is not None:
                part.close()
        for server in (ours, theirs, slack):
            server.close()
        shutil.rmtree(root, ignore_errors=True)
