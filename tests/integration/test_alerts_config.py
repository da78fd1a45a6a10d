"""The shipped alerting config: rules pass promtool and the monitoring-mixins conventions, every
alert has a runbook and a promtool unit test, and the Alertmanager config routes, inhibits and
renders Slack messages as documented."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.harness import require_binary

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "alerts"
RULE_FILES = sorted(ALERTS.glob("*.rules.yml"))
RUNBOOK_BASE = "https://github.com/fleet/resilience-exporter/blob/main/docs/runbooks/"


def all_rules() -> list[dict]:
    return [rule for f in RULE_FILES for group in yaml.safe_load(f.read_text())["groups"] for rule in group["rules"]]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_promtool_check_rules_is_clean() -> None:
    out = run(require_binary("promtool"), "check", "rules", *map(str, RULE_FILES))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARNING" not in out.stdout + out.stderr


def test_promtool_unit_tests_pass() -> None:
    out = run(require_binary("promtool"), "test", "rules", *map(str, sorted((ALERTS / "tests").glob("*.yml"))))
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    tests = "".join(f.read_text() for f in (ALERTS / "tests").glob("*.yml"))
    for rule in all_rules():
        name = rule["alert"]
        blocks = re.findall(rf"alertname: {name}\n\s+exp_alerts:(.*?)(?=\n\s+- eval_time|\n\n|\Z)", tests, re.S)
        assert any(b.strip() == "[]" for b in blocks), f"{name}: no test that it stays quiet or resolves"
        assert any("exp_labels" in b or "*" in b for b in blocks), f"{name}: no test that it fires"


def test_rules_follow_the_monitoring_mixin_conventions() -> None:
    """What `mixtool lint` checks, plus ours: remedy and runbook_url on every alert."""
    for f in RULE_FILES:
        for group in yaml.safe_load(f.read_text())["groups"]:
            assert len(group["rules"]) <= 20, f"{f.name}: group {group['name']} has more than 20 rules"
    names = [r["alert"] for r in all_rules()]
    assert len(names) == len(set(names))
    for rule in all_rules():
        name, labels, notes = rule["alert"], rule["labels"], rule["annotations"]
        assert re.fullmatch(r"Resilience([A-Z][a-z0-9]*|[A-Z]+(?=[A-Z][a-z]|$))+", name) and len(name) <= 40, name
        assert labels["severity"] in ("critical", "warning", "info"), name
        assert notes["summary"].endswith(".") and "{{" not in notes["summary"], f"{name}: summary static sentence"
        assert "{{" in notes["description"] and "$labels" in notes["description"], f"{name}: templated description"
        assert notes["remedy"].strip(), name
        assert notes["runbook_url"] == f"{RUNBOOK_BASE}{name}.md", name


@pytest.mark.parametrize("rule", all_rules(), ids=lambda r: r["alert"])
def test_every_alert_has_a_runbook_with_the_four_sections(rule: dict) -> None:
    text = (ROOT / "docs" / "runbooks" / f"{rule['alert']}.md").read_text()
    positions = [text.find(f"\n## {s}\n") for s in ("Meaning", "Impact", "Diagnosis", "Mitigation")]
    assert all(p > 0 for p in positions) and positions == sorted(positions), rule["alert"]


def test_the_readme_lists_every_alert() -> None:
    readme = (ROOT / "README.md").read_text()
    for rule in all_rules():
        assert f"`{rule['alert']}`" in readme, rule["alert"]


# -- Alertmanager -----------------------------------------------------------------------------
def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return run(require_binary("amtool"), *args)


def test_amtool_check_config_is_clean() -> None:
    out = amtool("check-config", str(ALERTS / "alertmanager.yml"))
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr
    config = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    assert "slack_api_url_file" in config["global"] and "hooks.slack.com/services/" not in json.dumps(config)
    for receiver in config["receivers"]:
        for slack in receiver["slack_configs"]:
            assert slack["send_resolved"] is True
            assert [a["text"] for a in slack["actions"]] == ["Runbook", "Dashboard", "Silence"]


@pytest.mark.parametrize("labels,receiver", [
    ({"alertname": "ResilienceContainerImageTerminal", "severity": "critical", "host": "edge-1"}, "slack-critical"),
    ({"alertname": "ResilienceContainerCrashLooping", "severity": "critical", "host": "edge-1"}, "slack-critical"),
    ({"alertname": "ResilienceContainerOOMKilled", "severity": "warning", "host": "edge-1"}, "slack-warning"),
    ({"alertname": "ResilienceRetryBudgetExhausted", "severity": "info"}, "slack-warning"),
    ({"alertname": "SomethingElse"}, "slack-warning"),
])
def test_routes_send_critical_and_warning_to_their_channels(labels: dict[str, str], receiver: str) -> None:
    out = amtool("config", "routes", "test", "--config.file", str(ALERTS / "alertmanager.yml"),
                 "--verify.receivers", receiver, *[f"{k}={v}" for k, v in labels.items()])
    assert out.returncode == 0, out.stdout + out.stderr


def test_inhibitions_name_labels_both_sides_carry() -> None:
    """`equal` labels must be on the source and the target alerts, else nothing is inhibited."""
    by_name = {r["alert"]: r for r in all_rules()}
    config = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    metric_labels = {  # labels each rule's expression yields besides job/instance
        "ResilienceCircuitBreakerOpen": {"name", "target", "agent"}, "ResilienceProbeFailing": {"target"},
        "ResilienceAgentNotRunRecently": {"host"}, "ResilienceAgentConvergeFailing": {"host"},
        "ResilienceAgentConsecutiveFailures": {"host"}, "ResilienceDeviceOffline": {"host"},
    }
    for inhibit in config["inhibit_rules"]:
        sources = [n for n in by_name if _matches(inhibit["source_matchers"], n)]
        targets = [n for n in by_name if _matches(inhibit["target_matchers"], n)]
        assert sources and targets, inhibit
        # DeviceOffline exists only in a fleet, where the push agent puts `host` on every series.
        fleet = {"host"} if sources == ["ResilienceDeviceOffline"] else set()
        for name in sources + targets:
            carried = {"job", "instance"} | metric_labels.get(name, set()) | fleet
            assert set(inhibit["equal"]) <= carried, (name, inhibit["equal"])


def _matches(matchers: list[str], alertname: str) -> bool:
    for m in matchers:
        key, op, value = re.fullmatch(r'(\w+)(=~|!=|=)"(.*)"', m).groups()  # type: ignore[union-attr]
        if key != "alertname":
            continue
        ok = re.fullmatch(value, alertname) is not None if op == "=~" else alertname == value
        if ok == (op == "!="):
            return False
    return True


SAMPLE = {
    "receiver": "slack-critical", "status": "firing", "externalURL": "http://am.example:9093",
    "groupLabels": {"alertname": "ResilienceContainerImageTerminal", "host": "edge-1"},
    "commonLabels": {"alertname": "ResilienceContainerImageTerminal", "severity": "critical", "host": "edge-1",
                     "instance": "edge-1:10099", "image": "shop/web:1.4", "reason": "ErrImageNeverPull"},
    "commonAnnotations": {"summary": "A container image failure will not heal without a human.",
                          "remedy": "ErrImageNeverPull: load the image onto the host or change the pull policy.",
                          "runbook_url": RUNBOOK_BASE + "ResilienceContainerImageTerminal.md"},
    "alerts": [{"status": "firing", "labels": {"alertname": "ResilienceContainerImageTerminal"},
                "annotations": {"description": "ErrImageNeverPull for image shop/web:1.4 on host edge-1.",
                                "runbook_url": RUNBOOK_BASE + "ResilienceContainerImageTerminal.md"},
                "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"}],
}


def render(template: str, data: dict, tmp_path: Path) -> str:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    out = amtool("template", "render", "--template.glob", str(ALERTS / "templates" / "slack.tmpl"),
                 "--template.data", str(path), "--template.text", template)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_slack_template_renders_title_remedy_and_links(tmp_path: Path) -> None:
    title = render('{{ template "resilience.slack.title" . }}', SAMPLE, tmp_path)
    assert title == "[FIRING:1] ErrImageNeverPull shop/web:1.4@edge-1"
    text = render('{{ template "resilience.slack.text" . }}', SAMPLE, tmp_path)
    assert "*A container image failure will not heal without a human.*" in text
    assert "*Remedy:* ErrImageNeverPull: load the image" in text
    assert f"*Runbook:* {RUNBOOK_BASE}ResilienceContainerImageTerminal.md" in text
    assert "/d/resilience-containers?var-instance=edge-1:10099&var-host=edge-1" in text
    silence = render('{{ template "resilience.slack.silence" . }}', SAMPLE, tmp_path)
    assert silence.startswith("http://am.example:9093/#/silences/new?filter=%7B")
    assert "image%3D%22shop%2Fweb%3A1.4%22" in silence and silence.endswith("alertname%3D%22ResilienceContainerImageTerminal%22%7D")


def test_slack_template_renders_resolved_messages(tmp_path: Path) -> None:
    resolved = {**SAMPLE, "status": "resolved",
                "alerts": [{**SAMPLE["alerts"][0], "status": "resolved"}]}  # type: ignore[dict-item]
    assert render('{{ template "resilience.slack.title" . }}', resolved, tmp_path) == \
        "[RESOLVED] ErrImageNeverPull shop/web:1.4@edge-1"
    text = render('{{ template "resilience.slack.text" . }}', resolved, tmp_path)
    assert text.startswith("*Resolved.*") and "Remedy" not in text
    assert render('{{ template "resilience.slack.color" . }}', resolved, tmp_path) == "good"
