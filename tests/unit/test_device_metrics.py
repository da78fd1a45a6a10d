"""Device families: the fleet's role_agent_* names, bounded failure types, probe and textfile families."""
from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import ConfigError, load, read_file
from exporter.device.failures import FailureTypes
from exporter.device.status import AgentRun, AgentStatus, ProbeResult, ProbeStatus
from exporter.metrics import Exposition, ResilienceCollector
from exporter.metrics.exposition import render_collectors
from exporter.metrics.device import (AGENT_FAMILIES, AgentCollector, ProbeCollector, TextfileCollector)
from exporter.resilience import ResilienceRegistry

FLEET_ALERT_NAMES = {
    "role_agent_last_run_success", "role_agent_last_run_timestamp_seconds", "role_agent_last_run_duration_seconds",
    "role_agent_last_exit_code", "role_agent_runs_total", "role_agent_consecutive_failures",
    "role_agent_last_failure_info",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_agent_families_keep_the_names_the_fleet_alerts_on() -> None:
    assert {f.name for f in AGENT_FAMILIES} == FLEET_ALERT_NAMES | {"role_agent_interval_seconds"}


def test_interval_is_exported_once_scheduled_so_alerts_need_not_assume_one() -> None:
    status = AgentStatus("edge", "pi-1")
    assert all(name != "role_agent_interval_seconds" for name, _ in samples(render_collectors([AgentCollector(status)]).decode()))
    status.set_interval(600.0)  # the scheduler does this
    got = samples(render_collectors([AgentCollector(status)]).decode())
    assert got[("role_agent_interval_seconds", (("agent", "edge"), ("host", "pi-1")))] == 600.0


@pytest.mark.parametrize(("cron", "seconds"), [
    ("*/5 * * * *", 300), ("0 3 * * *", 86_400), ("0 9-17 * * 1-5", 64 * 3600), ("* * * * 1-5", 2 * 86_400 + 60),
    ("0 0 1 * *", 31 * 86_400),    # monthly, from Nov 23: Dec 1 -> Jan 1 (its first gap, past the 8 days)
    ("0 0 1 1 *", 365 * 86_400)])  # yearly: never 0, which would make the alert fire at once
def test_cron_interval_is_its_longest_gap(cron: str, seconds: float) -> None:
    from datetime import datetime, timezone

    from exporter.device.schedule import build_trigger, trigger_interval

    monday = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
    assert trigger_interval(build_trigger(every=1, cron=cron), monday) == seconds


def test_interval_includes_jitter_and_counts_real_seconds_across_dst() -> None:
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    from apscheduler.triggers.cron import CronTrigger

    from exporter.device.schedule import build_trigger, trigger_interval

    assert trigger_interval(build_trigger(every=420, jitter=30)) == 450  # a run may start up to every + jitter later
    berlin = CronTrigger.from_crontab("0 3 * * *", timezone=ZoneInfo("Europe/Berlin"))
    before_dst_ends = datetime(2026, 10, 20, tzinfo=timezone.utc)  # 2026-10-25: a 25-hour day in Berlin
    assert trigger_interval(berlin, before_dst_ends) == 25 * 3600


def test_failed_then_successful_runs_become_series() -> None:
    status = AgentStatus("edge", "pi-1")
    text = render_collectors([AgentCollector(status)]).decode()
    assert "role_agent_last_run_success{" not in text  # absent until the first run
    assert samples(text)[("role_agent_runs_total", (("agent", "edge"), ("host", "pi-1"), ("result", "failure")))] == 0
    status.record_run(AgentRun(10.0, 12.5, 2.5, 3, "compose_failed"))
    status.record_run(AgentRun(20.0, 21.0, 1.0, 2, "inventory_missing"))
    got = samples(render_collectors([AgentCollector(status)]).decode())
    host = (("agent", "edge"), ("host", "pi-1"))
    assert got[("role_agent_last_run_success", host)] == 0
    assert got[("role_agent_last_exit_code", host)] == 2
    assert got[("role_agent_consecutive_failures", host)] == 2
    assert got[("role_agent_last_run_timestamp_seconds", host)] == 21.0
    assert got[("role_agent_last_failure_info", (("agent", "edge"), ("failure_type", "inventory_missing"), ("host", "pi-1")))] == 1
    assert ("role_agent_last_failure_info", (("agent", "edge"), ("failure_type", "compose_failed"), ("host", "pi-1"))) not in got
    status.record_run(AgentRun(30.0, 30.5, 0.5, 0, None))
    status.record_skipped()
    got = samples(render_collectors([AgentCollector(status)]).decode())
    assert got[("role_agent_last_run_success", host)] == 1 and got[("role_agent_consecutive_failures", host)] == 0
    assert got[("role_agent_runs_total", (("agent", "edge"), ("host", "pi-1"), ("result", "skipped")))] == 1
    assert got[("role_agent_last_failure_info", (("agent", "edge"), ("failure_type", "inventory_missing"), ("host", "pi-1")))] == 1


def test_failure_types_come_from_the_map_or_exit_n_so_labels_stay_bounded() -> None:
    types = FailureTypes({2: "inventory_missing", 3: "compose_failed", 4: "rollback_failed"})
    assert [types.of(c) for c in (0, 2, 3, 4, 124, 137, 127, 9, 255)] == [
        None, "inventory_missing", "compose_failed", "rollback_failed", "timeout", "killed", "not_found",
        "exit_9", "exit_255"]
    assert FailureTypes({124: "deadline"}).of(124) == "deadline"  # the configured map wins
    assert len({types.of(c) for c in range(256)}) == 256
    with pytest.raises(ValueError, match=r"^exit_codes\[5\]: failure type must be"):
        FailureTypes({5: "has space"})
    assert "inventory" in FailureTypes.remedy("inventory_missing") and FailureTypes.remedy("exit_9")


def test_probe_and_textfile_families() -> None:
    status = ProbeStatus()
    status.add_target("api")
    text = render_collectors([ProbeCollector(status)]).decode()
    assert "resilience_probe_success{" not in text
    status.record("api", ProbeResult(True, 0.25, 1.0, 200), "success")
    status.record("api", ProbeResult(False, 0.0, 2.0), "rejected")

    class Writer:
        errors_total = 3
        collisions_total = 2

    got = samples(render_collectors([ProbeCollector(status), TextfileCollector([Writer()])]).decode())
    assert got[("resilience_probe_success", (("target", "api"),))] == 0
    assert got[("resilience_probe_duration_seconds", (("target", "api"),))] == 0.0
    assert got[("resilience_probe_checks_total", (("result", "rejected"), ("target", "api")))] == 1
    assert got[("resilience_exporter_textfile_write_errors_total", ())] == 3
    assert got[("resilience_exporter_textfile_collisions_total", ())] == 2


def test_textfile_text_has_help_and_type_for_every_family_and_no_process_families() -> None:
    registry = ResilienceRegistry()
    registry.breaker("agent:edge")
    collectors = [AgentCollector(AgentStatus("edge", "h")), ResilienceCollector(registry)]
    text = render_collectors(collectors).decode()
    names = Exposition(collectors).names()
    for name in names:
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text
    assert "process_" not in text and "python_" not in text
    assert "resilience_exporter_scrape_duration_seconds" not in text
    for line in text.splitlines():  # no timestamps: a sample line is exactly "name{labels} value"
        if not line.startswith("#"):
            assert len(line.rsplit("} ", 1)[-1].split()) == 1 if "}" in line else len(line.split()) == 2


def test_agent_and_probe_config_sections(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("agent:\n  command: [/opt/fleet/agent/role-agent.sh, --log-json]\n  every: 5m\n"
                 "  exit_codes: {2: inventory_missing, 9: disk_full}\n"
                 "textfile:\n  directory: /var/lib/node_exporter/textfile_collector\n"
                 "probes:\n  - {name: api, url: 'http://127.0.0.1:8080/health', interval: 10s}\n")
    config = load(file=f)
    assert config.agent.command == ["/opt/fleet/agent/role-agent.sh", "--log-json"] and config.agent.every == 300
    assert config.agent.exit_codes == {2: "inventory_missing", 9: "disk_full"}
    assert config.probes[0].interval == 10 and config.probes[0].expected_status == 200
    assert load(flags={"agent.command": ["a.sh", "--x"]}).agent.command == ["a.sh", "--x"]
    f.write_text("probes:\n  - {name: api, url: 'ftp://x'}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: probes\[0\]: url: expected an http:// or https:// URL"):
        read_file(f)
    f.write_text("probes:\n  - {name: api, url: 'http://a'}\n  - {name: api, url: 'http://b'}\n")
    with pytest.raises(ConfigError, match=r"probes: names must be unique"):
        read_file(f)
    f.write_text("agent:\n  cron: every minute\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: agent: cron: expected 5 cron fields"):
        read_file(f)
    f.write_text("agent:\n  exit_codes: {5: 'disk full'}\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: agent: exit_codes\[5\]: failure type must be"):
        read_file(f)
    f.write_text("probes:\n  - {name: api, url: 'http://a', timout: 5s}\n")
    with pytest.raises(ConfigError, match=r"probes\[0\]\.timout: unknown key \(did you mean 'timeout'\?\)"):
        read_file(f)
