"""Any number of agents and `serve` share one textfile directory without a duplicate series, and a
write that would collide with another file there is logged once and counted."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import load
from exporter.app import Agent
from exporter.device.components import agent_textfile_name
from exporter.device.status import AgentRun, AgentStatus
from exporter.device.textfile import TextfileWriter
from exporter.metrics import ResilienceCollector
from exporter.metrics.device import AgentCollector, TextfileCollector
from exporter.metrics.textfile import collisions, render_textfile, with_label
from exporter.resilience import ResilienceRegistry


def series(text: bytes) -> list[tuple[str, frozenset[tuple[str, str]]]]:
    return [(s.name, frozenset(s.labels.items())) for f in text_string_to_metric_families(text.decode())
            for s in f.samples]


def test_with_label_puts_the_writer_first_on_every_sample_and_leaves_comments_alone() -> None:
    text = b'# HELP a A {x}.\n# TYPE a gauge\na 1\nb{name="x y",z="{"} 2\nc_total{} 3\n'
    assert with_label(text, "writer", "w") == (b'# HELP a A {x}.\n# TYPE a gauge\na{writer="w"} 1\n'
                                               b'b{writer="w",name="x y",z="{"} 2\nc_total{writer="w",} 3\n')
    assert [dict(labels)["writer"] for _, labels in series(with_label(text, "writer", "w"))] == ["w", "w", "w"]


def agent_file(name: str, host: str, success: bool) -> bytes:
    """What `agent --name NAME` writes: its families, its registry (breaker, budget), its writer's counters."""
    status = AgentStatus(name, host)
    status.record_run(AgentRun(1.7e9, 1.7e9 + 2, 2.0, 0 if success else 3, None if success else "exit_3", 1, ()))
    registry = ResilienceRegistry()
    registry.breaker(f"agent:{name}")
    collectors = [AgentCollector(status), ResilienceCollector(registry), TextfileCollector([])]
    return render_textfile(collectors, agent_textfile_name(name)[:-5])


def test_two_agents_and_serve_on_one_host_write_no_series_twice() -> None:
    files = {
        "role_agent_a.prom": agent_file("a", "pi-1", success=False),
        "role_agent_b.prom": agent_file("b", "pi-1", success=True),
        # serve runs its own agent (named like neither) and has the process-wide figures too
        "resilience_exporter.prom": render_textfile(
            [AgentCollector(AgentStatus("serve-agent", "pi-1")), ResilienceCollector(ResilienceRegistry()),
             TextfileCollector([])], "resilience_exporter"),
    }
    seen: dict[tuple[str, frozenset[tuple[str, str]]], str] = {}
    for filename, text in files.items():
        for s in series(text):
            assert s not in seen, f"{s} in {filename} and {seen[s]}"
            seen[s] = filename
    for filename, text in files.items():
        assert not collisions(text, {k: v for k, v in files.items() if k != filename}), filename
    failing = [dict(labels) for name, labels in seen if name == "role_agent_last_run_success"
               and dict(labels).get("agent") == "a"]
    assert failing == [{"agent": "a", "host": "pi-1", "writer": "role_agent_a"}]
    budget = {dict(labels)["writer"] for name, labels in seen if name == "retry_budget_exhausted_total"}
    assert budget == {"role_agent_a", "role_agent_b", "resilience_exporter"}


def test_collisions_name_the_file_the_duplicate_series_and_a_type_mismatch() -> None:
    ours = agent_file("a", "pi-1", success=False)
    old = b'# TYPE role_agent_last_run_success gauge\nrole_agent_last_run_success{writer="role_agent_a",host="pi-1",agent="a"} 1\n'
    typed = b"# TYPE retry_budget_exhausted_total gauge\nretry_budget_exhausted_total 1\n"
    found = collisions(ours, {"copy.prom": old, "app.prom": typed, "fine.prom": b"backup_ok 1\n", "bad.prom": b"{{{\n"})
    assert found == ["app.prom: retry_budget_exhausted_total is a counter here and a gauge there",
                     'copy.prom: series role_agent_last_run_success{agent="a",host="pi-1",writer="role_agent_a"} '
                     "in both files"]


def test_writer_logs_a_collision_once_counts_every_colliding_write_and_shows_the_count(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load(flags={"textfile.directory": str(tmp_path), "agent.command": ["true"], "agent.name": "a"})
    writer = Agent(config).device.textfile
    assert isinstance(writer, TextfileWriter)
    assert writer.write() and writer.collisions_total == 0
    (tmp_path / "copy.prom").write_bytes(writer.path.read_bytes())  # e.g. a copy someone left behind
    with caplog.at_level(logging.INFO, logger="exporter.device.textfile"):
        assert writer.write() and writer.write()
    assert writer.collisions_total == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].fields["collisions"].startswith("copy.prom: series role_agent_")  # type: ignore[attr-defined]
    text = writer.path.read_text()
    assert 'resilience_exporter_textfile_collisions_total{writer="role_agent_a"} 2' in text
    (tmp_path / "copy.prom").unlink()
    with caplog.at_level(logging.INFO, logger="exporter.device.textfile"):
        assert writer.write()
    assert writer.collisions_total == 2 and caplog.records[-1].getMessage().startswith("textfile no longer collides")
