"""In a real monitoring stack: no lost signal, no false page. One real Prometheus with the shipped
rules scrapes our exporter (`serve`, whose engine is unreachable and whose probe target is down),
a real blackbox_exporter probing a closed port, another application's /metrics, and a real
node_exporter whose textfile directory holds two agents' files from one host (one failing, one
succeeding, written by the real `agent run-once` command), the `serve` textfile and another
application's file with names other exporters use. Only `for` and evaluation intervals are
shortened."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import yaml

from tests.harness import free_port, require_binary, running_exporter, wait_until
from tests.integration.engines_monitoring import (BlackboxExporter, NodeExporter, Prometheus, StaticMetrics,
                                                  rule_files_for_test, temp_root)

ROOT = Path(__file__).resolve().parents[2]
HOST = "pi-1"
OUR_WRITERS = {"role_agent_a", "role_agent_b", "resilience_exporter"}

# Another application beside us: blackbox_exporter's, generic and our breaker names, all failing.
OTHER_APP = """\
# HELP probe_success Whether the NAS answered.
# TYPE probe_success gauge
probe_success{target="nas"} 0
# TYPE errors_total counter
errors_total{code="EIO"} 12
# TYPE circuit_breaker_state gauge
circuit_breaker_state{name="payments"} 1
# TYPE backup_last_success_timestamp_seconds gauge
backup_last_success_timestamp_seconds 0
"""


class Stack:
    def __init__(self) -> None:
        for name in ("prometheus", "prometheus-node-exporter", "prometheus-blackbox-exporter"):
            require_binary(name)
        self.root = temp_root("re-neighbours-")
        self._stack = ExitStack()
        self.textfiles = self.root / "textfile"
        self.textfiles.mkdir()
        (self.textfiles / "backup.prom").write_text(OTHER_APP)
        self.agent_runs = {name: self.run_agent(name, command)
                           for name, command in (("a", ["sh", "-c", "echo 'compose failed' >&2; exit 3"]),
                                                 ("b", ["true"]))}
        self.parts: list[Any] = []
        self.other_app = StaticMetrics(OTHER_APP)
        self.parts.append(self.other_app)
        self.blackbox = BlackboxExporter(self.root)
        self.parts.append(self.blackbox)
        self.node = NodeExporter(self.root, self.textfiles)
        self.parts.append(self.node)
        port = free_port()
        config = {
            "host": HOST, "web": {"listen_address": f"127.0.0.1:{port}"},
            # our own failures: an engine that is not there, a probe target that is down
            "docker": {"enabled": "true", "host": f"unix://{self.root}/no-docker.sock", "reconnect_max_backoff": "1s"},
            "resilience": {"breaker_failure_threshold": 3, "breaker_open_timeout": "1m"},
            "probes": [{"name": "dead", "url": f"http://127.0.0.1:{free_port()}/", "interval": "200ms",
                        "timeout": "1s", "attempts": 1}],
            "textfile": {"directory": str(self.textfiles), "interval": "1s"},
        }
        (self.root / "exporter.yml").write_text(yaml.safe_dump(config))
        self.exporter = self._stack.enter_context(running_exporter(file=self.root / "exporter.yml"))
        self.closed_url = f"http://127.0.0.1:{free_port()}/"
        self.prometheus = Prometheus(
            self.root, targets={"resilience-exporter": [f"127.0.0.1:{port}"], "node": [self.node.address],
                                "blackbox": [self.blackbox.address], "other-app": [self.other_app.address]},
            params={"blackbox": self.blackbox.scrape_config(self.closed_url)}, alertmanager=None,
            rule_files=rule_files_for_test(self.root / "rules", for_="2s", interval="1s"),
            scrape_interval="1s", evaluation_interval="1s")
        self.parts.append(self.prometheus)

    def run_agent(self, name: str, command: list[str]) -> subprocess.CompletedProcess[str]:
        """`resilience-exporter --host pi-1 agent run-once --name NAME --textfile-dir DIR -- COMMAND`."""
        return subprocess.run([sys.executable, "-m", "exporter", "--host", HOST, "agent", "run-once", "--name", name,
                               "--textfile-dir", str(self.textfiles), "--", *command],
                              capture_output=True, text=True, timeout=60, cwd=ROOT)

    def node_text(self) -> str:
        return requests.get(f"http://{self.node.address}/metrics", timeout=5).text

    def firing(self) -> list[dict[str, str]]:
        return [a["labels"] for a in self.prometheus.alerts() if a["state"] == "firing"]

    def close(self) -> None:
        self._stack.close()  # the exporter
        for part in reversed(self.parts):
            part.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    s = Stack()
    try:
        yield s
    finally:
        s.close()


def test_both_agents_reach_node_exporter_without_a_duplicate(stack: Stack) -> None:
    assert [stack.agent_runs[n].returncode for n in ("a", "b")] == [3, 0]
    assert sorted(p.name for p in stack.textfiles.glob("*.prom")) == [
        "backup.prom", "resilience_exporter.prom", "role_agent_a.prom", "role_agent_b.prom"]
    def with_serve() -> str | None:
        text = stack.node_text()
        return text if 'writer="resilience_exporter"' in text else None

    text = wait_until(with_serve, timeout=20, message="serve's textfile in node_exporter's scrape")
    assert f'role_agent_last_run_success{{agent="a",host="{HOST}",writer="role_agent_a"}} 0' in text
    assert f'role_agent_last_run_success{{agent="b",host="{HOST}",writer="role_agent_b"}} 1' in text
    assert 'retry_budget_exhausted_total{writer="role_agent_a"} 0' in text  # process-level, one per writer
    assert 'retry_budget_exhausted_total{writer="resilience_exporter"} 0' in text
    assert 'circuit_breaker_state{name="payments"} 1' in text  # the other application's, untouched
    assert "node_textfile_scrape_error 0" in text
    assert 'resilience_exporter_textfile_collisions_total{writer="resilience_exporter"} 0' in text
    for _ in range(3):  # node_exporter logs duplicates when it gathers: let it gather a few times
        stack.node_text()
    log = stack.node.log.read_text()
    assert not re.search(r"collected before|duplicate|inconsistent", log, re.I), log[-2000:]
    got = wait_until(lambda: stack.prometheus.query('role_agent_last_run_success{job="node"}'), timeout=30,
                     message="the agents' series in Prometheus")
    assert sorted((r["metric"]["agent"], r["value"][1]) for r in got) == [("a", "0"), ("b", "1")]


def test_our_alerts_fire_for_the_failing_agent_and_our_own_failures(stack: Stack) -> None:
    expected = {("ResilienceAgentConvergeFailing", "agent", "a"), ("ResilienceProbeFailing", "target", "dead"),
                ("ResilienceCircuitBreakerOpen", "name", "probe:dead"), ("ResilienceSourceDown", "source", "docker"),
                ("ResilienceSourceErrors", "source", "docker")}

    def missing() -> set[tuple[str, str, str]]:
        firing = stack.firing()
        return {e for e in expected if not any(a["alertname"] == e[0] and a.get(e[1]) == e[2] for a in firing)}

    try:
        wait_until(lambda: not missing(), timeout=90, interval=0.5, message="our alerts to fire")
    except AssertionError:
        raise AssertionError(f"not firing: {missing()}; firing: {stack.firing()}") from None
    converge = [a for a in stack.firing() if a["alertname"] == "ResilienceAgentConvergeFailing"]
    assert [(a["agent"], a["host"], a["writer"]) for a in converge] == [("a", HOST, "role_agent_a")]


def test_nothing_fires_for_blackbox_exporter_or_the_other_application(stack: Stack) -> None:
    """Runs after ours fired (rules evaluate every 1s, `for` 2s): theirs had the same chance."""
    assert stack.prometheus.query('probe_success{job="blackbox"} == 0'), "the blackbox probe should be failing"
    assert stack.prometheus.query('circuit_breaker_state{job="node",name="payments"} == 1')
    assert stack.prometheus.query('errors_total{job="other-app"}')
    foreign = [a for a in stack.prometheus.alerts()
               if a["labels"].get("job") != "resilience-exporter" and a["labels"].get("writer") not in OUR_WRITERS]
    assert not foreign, foreign
    assert not [a for a in stack.prometheus.alerts() if a["labels"].get("agent") == "b"]
