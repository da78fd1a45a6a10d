"""The agent runner with real shell scripts: exit codes, timeouts, overlaps, breaker, stderr, health.json."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from exporter.config import AgentConfig, load
from exporter.device.agent import AgentRunner
from exporter.device.health import HealthFile, health_document
from exporter.device.schedule import AgentScheduler, build_trigger
from exporter.device.status import AgentStatus
from exporter.resilience import CircuitState, FakeClock, ResilienceRegistry
from tests.harness import require_binary, running_exporter, wait_until
from tests.unit.test_device_health import assert_valid_health

ROOT = Path(__file__).resolve().parents[2]


def script(tmp_path: Path, body: str, name: str = "agent.sh") -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def pid_gone(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (no longer running either way)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


class Agent:
    """A runner over a real script with a fake clock for the breaker and retry back-off."""

    def __init__(self, tmp_path: Path, command: list[str], **settings: Any) -> None:
        base: dict[str, Any] = dict(command=command, name="edge", timeout=20, kill_grace=1, retry_backoff=1,
                                    breaker_failure_threshold=3, breaker_window=3600, breaker_open_timeout=600,
                                    stderr_lines=5, health_file=str(tmp_path / "health.json"))
        base.update(settings)
        self.config = AgentConfig(**base)
        self.clock = FakeClock(100.0)
        self.registry = ResilienceRegistry()
        self.status = AgentStatus("edge", "pi-1")
        self.runner = AgentRunner(self.config, self.status, self.registry, clock=self.clock, sleep=self.clock.sleep)
        self.health_path = Path(self.config.health_file)
        health = HealthFile(self.health_path, lambda: health_document(
            self.status.snapshot(), self.runner.breaker, self.runner.command))
        self.runner.after_run.append(health.write)

    def run(self) -> Any:
        snap = self.runner.run()
        assert_valid_health(self.health())
        return snap

    def health(self) -> dict[str, Any]:
        return json.loads(self.health_path.read_text())


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Agent]:
    return lambda body, **kw: Agent(tmp_path, [str(script(tmp_path, body)), "--log-json"], **kw)


def test_success_is_recorded_with_exit_code_zero_and_health_ok(make: Callable[..., Agent]) -> None:
    agent = make('[ "$1" = --log-json ] || exit 7\necho converged >&2\n')
    snap = agent.run()
    assert snap.last_run.success and snap.last_run.exit_code == 0 and snap.runs["success"] == 1
    doc = agent.health()
    assert (doc["status"], doc["exit_code"], doc["failure_type"], doc["stderr_tail"]) == ("ok", 0, None, ["converged"])
    assert doc["last_run_start"] <= doc["last_run_end"] and doc["breaker_state"] == "closed"


@pytest.mark.parametrize("code,failure_type", [(2, "inventory_missing"), (3, "compose_failed"),
                                               (4, "rollback_failed"), (9, "exit_9"), (124, "timeout")])
def test_each_mapped_exit_code_becomes_its_failure_type(make: Callable[..., Agent], code: int,
                                                        failure_type: str) -> None:
    agent = make(f"exit {code}\n", transient_failures=[])
    snap = agent.run()
    assert (snap.last_run.exit_code, snap.last_run.failure_type, snap.consecutive_failures) == (code, failure_type, 1)
    assert agent.health()["status"] == "failing" and agent.health()["failure_type"] == failure_type


def test_killed_by_sigkill_is_exit_137_killed(make: Callable[..., Agent]) -> None:
    agent = make("kill -9 $$\n")
    snap = agent.run()
    assert (snap.last_run.exit_code, snap.last_run.failure_type) == (137, "killed")


def test_timeout_kills_the_whole_process_group_and_leaves_no_orphan(make: Callable[..., Agent],
                                                                     tmp_path: Path) -> None:
    agent = make(f"""
        sleep 300 &
        echo $! > {tmp_path}/child.pid
        echo $$ > {tmp_path}/agent.pid
        echo started >&2
        sleep 300
        """, timeout=2)  # time to write both pids first, on a loaded machine too
    snap = agent.run()
    child, leader = int((tmp_path / "child.pid").read_text()), int((tmp_path / "agent.pid").read_text())
    assert (snap.last_run.exit_code, snap.last_run.failure_type) == (124, "timeout")
    assert snap.last_run.duration < 5
    wait_until(lambda: pid_gone(child) and pid_gone(leader), timeout=5, message="the agent's background sleep to die")
    doc = agent.health()
    assert doc["stderr_tail"][0] == "started" and "killed the agent's process group" in doc["stderr_tail"][-1]


def test_a_group_that_ignores_sigterm_is_killed_after_the_grace(make: Callable[..., Agent], tmp_path: Path) -> None:
    agent = make(f"""
        trap '' TERM
        sh -c 'trap "" TERM; echo $$ > {tmp_path}/child.pid; while :; do sleep 0.05; done' &
        while :; do sleep 0.05; done
        """, timeout=1.5, kill_grace=0.5)  # time to set both traps first, on a loaded machine too
    snap = agent.run()
    assert snap.last_run.failure_type == "timeout"
    child = int((tmp_path / "child.pid").read_text())
    wait_until(lambda: pid_gone(child), timeout=5, message="the TERM-ignoring child to be SIGKILLed")


def test_missing_command_is_not_found_127(tmp_path: Path) -> None:
    agent = Agent(tmp_path, [str(tmp_path / "nope.sh")])
    snap = agent.run()
    assert (snap.last_run.exit_code, snap.last_run.failure_type) == (127, "not_found")
    assert "cannot start" in agent.health()["stderr_tail"][0]


def test_stderr_tail_keeps_the_last_n_lines(make: Callable[..., Agent]) -> None:
    agent = make("for i in $(seq 1 50); do echo \"line $i\" >&2; done\necho out\nexit 3\n",
                 transient_failures=[], stderr_lines=5)
    agent.run()
    assert agent.health()["stderr_tail"] == [f"line {i}" for i in range(46, 51)]


def test_transient_failure_is_retried_with_the_policy_within_one_run(make: Callable[..., Agent],
                                                                     tmp_path: Path) -> None:
    agent = make(f"""
        n=$(cat {tmp_path}/n 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/n
        [ "$n" -ge 1 ] || exit 3
        """, transient_failures=["compose_failed"], max_attempts=3)
    snap = agent.run()
    assert snap.last_run.success and snap.last_run.attempts == 2 and snap.runs == {
        "success": 1, "failure": 0, "skipped": 0, "rejected": 0}
    assert len(agent.clock.sleeps) == 1 and 0 <= agent.clock.sleeps[0] <= 1
    retries = {s.name: s.kinds for s in agent.registry.retry_snapshots()}["agent:edge"]
    assert retries["successful_with_retry"] == 1


def test_breaker_opens_after_the_threshold_rejects_runs_then_half_opens(make: Callable[..., Agent],
                                                                        tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    agent = make(f"echo x >> {runs}\n[ -f {tmp_path}/fixed ] || exit 2\n")
    for _ in range(3):
        agent.run()
    assert agent.runner.breaker.state is CircuitState.OPEN
    snap = agent.run()  # not started
    assert len(runs.read_text().splitlines()) == 3 and snap.runs["rejected"] == 1
    doc = agent.health()
    assert doc["status"] == "circuit_open" and doc["breaker_state"] == "open"
    assert "circuit breaker agent:edge is open after 3 consecutive failures (last: inventory_missing)" in doc["reason"]
    agent.clock.advance(600)
    assert agent.runner.breaker.state is CircuitState.HALF_OPEN
    (tmp_path / "fixed").touch()
    snap = agent.run()  # the trial run succeeds and closes the breaker
    assert snap.last_run.success and agent.runner.breaker.state is CircuitState.CLOSED
    assert agent.health()["status"] == "ok" and snap.consecutive_failures == 0


def test_a_run_still_going_when_the_next_is_due_is_skipped_and_counted(make: Callable[..., Agent],
                                                                       tmp_path: Path) -> None:
    agent = make(f"""
        mkdir {tmp_path}/lock || {{ touch {tmp_path}/overlapped; exit 99; }}
        sleep 0.6
        rmdir {tmp_path}/lock
        """)
    scheduler = AgentScheduler(agent.runner, build_trigger(every=0.1))
    scheduler.start()
    try:
        # Read before the stop: a run the stop cancels counts as a failure ("cancelled"), rightly.
        snap = wait_until(lambda: (s := agent.status.snapshot()).runs["skipped"] >= 3 and s.runs["success"] >= 1 and s,
                          timeout=15, message="a skipped run and a finished one")
    finally:
        scheduler.stop()
    assert snap.runs["failure"] == 0 and not (tmp_path / "overlapped").exists()  # no two runs overlapped
    assert snap.next_run_at is not None


def test_stop_kills_a_run_in_progress(make: Callable[..., Agent], tmp_path: Path) -> None:
    agent = make(f"echo $$ > {tmp_path}/pid\nsleep 300\n", timeout=600)
    scheduler = AgentScheduler(agent.runner, build_trigger(every=3600))
    scheduler.start()
    pid = wait_until(lambda: int((tmp_path / "pid").read_text()), timeout=10, message="the agent to start")
    scheduler.stop()
    wait_until(lambda: pid_gone(pid), timeout=10, message="the agent to be killed on stop")
    assert agent.status.snapshot().last_run.failure_type == "cancelled"


def test_cron_expressions_are_validated() -> None:
    assert "*/5" in str(build_trigger(every=300, cron="*/5 * * * *"))
    with pytest.raises(ValueError, match=r"agent.cron: expected 5 cron fields"):
        build_trigger(every=300, cron="every five minutes")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_run_once_exits_with_the_agents_code_and_continues_counters(tmp_path: Path) -> None:
    agent = script(tmp_path, "echo 'inventory has no entry for pi-1' >&2\nexit 2\n")
    args = ["--host", "pi-1", "agent", "run-once", "--name", "edge", "--textfile-dir", str(tmp_path),
            "--health-file", str(tmp_path / "health.json"), "--", str(agent), "--log-json"]
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 2, first.stderr
    assert "failure_type=inventory_missing" in first.stderr
    second = cli(*args, cwd=tmp_path)
    assert second.returncode == 2
    doc = json.loads((tmp_path / "health.json").read_text())
    assert_valid_health(doc)
    assert doc["runs"]["failure"] == 2 and doc["consecutive_failures"] == 2 and doc["next_run"] is None
    assert doc["stderr_tail"] == ["inventory has no entry for pi-1"]
    prom = (tmp_path / "role_agent_edge.prom").read_text()
    assert 'role_agent_runs_total{writer="role_agent_edge",host="pi-1",agent="edge",result="failure"} 2' in prom
    assert 'circuit_breaker_state{writer="role_agent_edge",name="agent:edge"} 0' in prom
    assert "process_" not in prom
    assert "role_agent_interval_seconds{" not in prom  # a timer's schedule is not ours to know


def test_agent_without_a_command_explains_how_to_give_one(tmp_path: Path) -> None:
    out = cli("agent", "run-once", cwd=tmp_path)
    assert out.returncode == 2 and "give it after --" in out.stderr


def test_serve_runs_the_agent_in_process_and_metrics_pass_promtool(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    agent = script(tmp_path, "exit 3\n")
    config = load(flags={"web.listen_address": "127.0.0.1:0", "host": "pi-1", "agent.command": [str(agent)],
                         "agent.name": "edge", "agent.transient_failures": "",
                         "agent.health_file": str(tmp_path / "health.json"), "textfile.directory": str(tmp_path)})
    with running_exporter(config=config) as app:
        host, port = app.address
        def scraped() -> str | None:
            text = requests.get(f"http://{host}:{port}/metrics", timeout=5).text
            return text if 'role_agent_last_run_success{host="pi-1",agent="edge"} 0' in text else None

        text = wait_until(scraped, timeout=15, message="the in-process agent's first run on /metrics")
        assert 'circuit_breaker_state{name="agent:edge"} 0' in text
        assert 'role_agent_last_failure_info{host="pi-1",agent="edge",failure_type="compose_failed"} 1' in text
        result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
        assert result.returncode == 0 and result.stdout.strip() == b"" and result.stderr.strip() == b"", result
        def textfile() -> str | None:
            prom = (tmp_path / "resilience_exporter.prom").read_text()
            return prom if "role_agent_last_run_success" in prom else None

        prom = wait_until(textfile, timeout=10, message="the registry textfile")
        assert "resilience_exporter_build_info" in prom and "process_" not in prom
    assert json.loads((tmp_path / "health.json").read_text())["failure_type"] == "compose_failed"


def test_agent_command_runs_on_its_schedule_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    agent = script(tmp_path, f"echo run >> {tmp_path}/runs\n")
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--host", "pi-1", "agent", "--every", "200ms",
                             "--name", "edge", "--textfile-dir", str(tmp_path), "--", str(agent)],
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        def runs_in_textfile() -> bool:
            prom = (tmp_path / "role_agent_edge.prom").read_text()
            return 'role_agent_runs_total{writer="role_agent_edge",host="pi-1",agent="edge",result="success"} 3' in prom

        wait_until(runs_in_textfile, timeout=20, message="three scheduled runs in the textfile")
        assert ('role_agent_interval_seconds{writer="role_agent_edge",host="pi-1",agent="edge"} 0.2'
                in (tmp_path / "role_agent_edge.prom").read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert proc.stderr is not None
    log = proc.stderr.read()
    assert "msg=\"agent scheduled\"" in log and "msg=stopped" in log


def test_run_once_by_hand_beside_a_scheduled_agent_keeps_its_interval(tmp_path: Path) -> None:
    agent = script(tmp_path, "exit 0\n")  # the runbook's remedy: run the agent once by hand
    common = ["--name", "edge", "--textfile-dir", str(tmp_path), "--health-file", str(tmp_path / "health.json")]
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--host", "pi-1", "agent", "--every", "1h", *common,
                             "--", str(agent)], cwd=tmp_path, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_until(lambda: (tmp_path / "health.json").exists() and json.loads(
            (tmp_path / "health.json").read_text())["runs"]["success"] == 1, timeout=20, message="the scheduled run")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert json.loads((tmp_path / "health.json").read_text())["interval_seconds"] == 3600
    out = cli("--host", "pi-1", "agent", "run-once", *common, "--", str(agent), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "health.json").read_text())
    assert_valid_health(doc)
    assert doc["runs"]["success"] == 2 and doc["interval_seconds"] == 3600
    assert ('role_agent_interval_seconds{writer="role_agent_edge",host="pi-1",agent="edge"} 3600'
            in (tmp_path / "role_agent_edge.prom").read_text())
