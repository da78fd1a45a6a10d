"""Alerts to Slack and dashboards, end to end on real components: a private dockerd, the whole
exporter (Docker source with the pull guard, an in-process role agent, a probe, the textfile),
node_exporter reading the textfile, Prometheus with the shipped rule files (only `for` and the
evaluation interval shortened) and Alertmanager with the shipped config and Slack template (only
group_wait/group_interval shortened), posting to a local Slack webhook receiver."""
from __future__ import annotations

import shutil
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from tests.harness import free_port, require_binary, running_exporter, wait_until
from tests.integration.dockerd import IMAGE, PrivateDockerd, require_root
from tests.integration.engines_monitoring import (Alertmanager, NodeExporter, Prometheus, SlackMessage,
                                                  SlackReceiver, rule_files_for_test, temp_root)
from tests.integration.test_grafana_dashboards import queries_without_data

HOST = "e2e-host"


class Stack:
    def __init__(self, dockerd: PrivateDockerd) -> None:
        for name in ("prometheus", "prometheus-alertmanager", "prometheus-node-exporter"):
            require_binary(name)
        self.root = temp_root("re-alerting-")
        self._stack = ExitStack()
        self.dockerd = dockerd
        tag = uuid.uuid4().hex[:6]
        self.crash, self.oom = f"crashy-{tag}", f"hog-{tag}"
        self.missing = f"e2e/missing-{tag}:1"
        self.agent_ok = self.root / "agent-ok"
        agent = self.root / "agent.sh"
        agent.write_text(f"#!/bin/sh\n[ -f {self.agent_ok} ] && exit 0\necho 'compose failed' >&2\nexit 3\n")
        agent.chmod(0o755)
        textfiles = self.root / "textfile"
        textfiles.mkdir()
        self.exporter_port = free_port()
        config = {
            "host": HOST, "web": {"listen_address": f"127.0.0.1:{self.exporter_port}"},
            "docker": {"host": dockerd.url, "pull_guard": {"enabled": True, "interval": "1s",
                                                           "images": [{"image": self.missing, "pull_policy": "Never"}]}},
            "agent": {"command": [str(agent)], "name": "e2e", "every": "2s", "transient_failures": [],
                      "breaker_failure_threshold": 1000},
            "textfile": {"directory": str(textfiles), "interval": "2s"},
            "probes": [{"name": "dead", "url": f"http://127.0.0.1:{free_port()}/", "interval": "1s",
                        "timeout": "1s", "attempts": 1}],
        }
        (self.root / "exporter.yml").write_text(yaml.safe_dump(config))
        self.slack = SlackReceiver()
        self.alertmanager = Alertmanager(self.root, slack_url=self.slack.url,
                                         timings={"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1h"})
        self.node = NodeExporter(self.root, textfiles)
        rules = rule_files_for_test(self.root / "rules", for_="2s", interval="1s")
        self.prometheus = Prometheus(self.root, targets={"resilience-exporter": [f"127.0.0.1:{self.exporter_port}"],
                                                         "node": [self.node.address]},
                                     # The exporter is scraped directly: keep only node_exporter's own
                                     # textfile families from the device's node_exporter, no duplicates.
                                     keep={"node": "node_textfile_.+"},
                                     alertmanager=f"127.0.0.1:{self.alertmanager.port}", rule_files=rules,
                                     scrape_interval="1s", evaluation_interval="1s")
        self.exporter = self._stack.enter_context(running_exporter(file=self.root / "exporter.yml"))

    def close(self) -> None:
        self._stack.close()  # the exporter
        for part in (self.prometheus, self.alertmanager, self.node):
            part.close()
        self.slack.close()
        for name in (self.crash, self.oom):
            self.dockerd.cli("rm", "-f", name, check=False)
        self.dockerd.cli("rmi", self.missing, check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def message(self, status: str, needle: str, timeout: float) -> SlackMessage:
        prefix = "[FIRING:" if status == "firing" else "[RESOLVED]"
        try:
            return wait_until(lambda: self.slack.find(lambda m: m.title.startswith(prefix) and needle in m.title),
                              timeout=timeout, interval=0.2, message=f"a {status} Slack message titled '{needle}'")
        except AssertionError as exc:  # what every part of the pipeline holds at the deadline
            raise AssertionError(f"{exc} (got: {[m.title for m in self.slack.messages]}; Prometheus alerts: "
                                 f"{[a['labels']['alertname'] for a in self.prometheus.alerts()]}; exporter: "
                                 f"{self.records()}; engine: {self.engine_states()})") from None

    def records(self) -> list[str]:
        return [f"{r.container}: {r.display_reason} oom_kills={r.oom_kills} failures={dict(r.failures)}"
                for r in self.exporter.store.records() if r.container in (self.crash, self.oom)]

    def engine_states(self) -> list[str]:
        return [self.dockerd.cli("inspect", "-f", "{{.Name}} {{.State.Status}} {{.State.ExitCode}} "
                                 "OOMKilled={{.State.OOMKilled}}", name, check=False).stdout.strip()
                for name in (self.crash, self.oom)]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    require_root()
    engine = PrivateDockerd()
    try:
        engine.start()
        engine.build_testbox()
        s = Stack(engine)
        try:
            yield s
        finally:
            s.close()
    finally:
        engine.close()


SCENARIOS = {  # title needle -> (remedy fragment, runbook)
    "crash": ("CrashLoopBackOff {crash}@" + HOST, "read its logs from the previous run", "ResilienceContainerCrashLooping"),
    "oom": ("OOMKilled {oom}@" + HOST, "raise the limit or reduce the process's memory use", "ResilienceContainerOOMKilled"),
    "image": ("ErrImageNeverPull {missing}@" + HOST, "load the image onto the host", "ResilienceContainerImageTerminal"),
    # Runs every 2s here, so the streak alert (which inhibits ConvergeFailing on the host) is the one sent.
    "agent": ("ConvergeFailedRepeatedly resilience-exporter@" + HOST, "read health.json", "ResilienceAgentConsecutiveFailures"),
    "breaker": ("CircuitOpen probe:dead@127.0.0.1:{port}", "the breaker closes by itself", "ResilienceCircuitBreakerOpen"),
}


def needle(stack: Stack, scenario: str) -> str:
    return SCENARIOS[scenario][0].format(crash=stack.crash, oom=stack.oom, missing=stack.missing, port=stack.exporter_port)


def test_each_failure_reaches_slack_with_reason_subject_and_remedy(stack: Stack) -> None:
    stack.dockerd.run("--name", stack.crash, "--restart", "always", IMAGE, "sh", "-c", "exit 3")
    stack.dockerd.run("--name", stack.oom, "-m", "8m", "--memory-swap", "8m", IMAGE,
                      "sh", "-c", 'x=a; while true; do x="$x$x"; done')
    for scenario, (_, remedy, alert) in SCENARIOS.items():
        msg = stack.message("firing", needle(stack, scenario), timeout=90)
        assert remedy in msg.text, (scenario, msg.text)
        assert f"docs/runbooks/{alert}.md" in msg.text
        buttons = {a["text"]: a["url"] for a in msg.attachment["actions"]}
        assert set(buttons) == {"Runbook", "Dashboard", "Silence"}, buttons
        assert buttons["Runbook"].endswith(f"/{alert}.md") and "/d/resilience-" in buttons["Dashboard"]
        assert "/#/silences/new?filter=" in buttons["Silence"]
    assert HOST in stack.slack.find(lambda m: stack.crash in m.title).text  # description names the host


def test_every_dashboard_query_returns_data_from_prometheus(stack: Stack) -> None:
    """Runs after the failures exist: every panel's query and every variable's values are non-empty."""
    def empty() -> list[str]:
        return queries_without_data(stack.prometheus.query)

    deadline = time.monotonic() + 60
    while (bad := empty()) and time.monotonic() < deadline:
        time.sleep(2)
    assert not bad, "\n".join(bad)


def test_removing_the_failures_sends_resolved_messages(stack: Stack) -> None:
    stack.dockerd.cli("rm", "-f", stack.crash)
    stack.dockerd.cli("rm", "-f", stack.oom)
    stack.dockerd.cli("tag", IMAGE, stack.missing)
    stack.agent_ok.write_text("")
    for scenario in ("crash", "oom", "image", "agent"):
        msg = stack.message("resolved", needle(stack, scenario), timeout=60)
        assert msg.attachment["color"] == "good" and msg.text.startswith("*Resolved.*"), msg.text
