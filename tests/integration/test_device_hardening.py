"""Issue 16's device-side attacks against the real `agent run-once` process: signals, planted
links, a hostile health.json and a 400 MB stderr line."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import wait_until
from tests.integration.test_device_agent import ROOT, script

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def group_members(pgid: int) -> list[int]:
    """Live processes (not zombies) whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def run_once(tmp_path: Path, agent: Path, *flags: str) -> list[str]:
    return [sys.executable, "-m", "exporter", "--host", "pi-1", *flags, "agent", "run-once", "--name", "edge",
            "--textfile-dir", str(tmp_path), "--health-file", str(tmp_path / "health.json"), "--", str(agent)]


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_run_once_forwards_the_signal_to_the_agents_group_and_leaves_nothing(
        tmp_path: Path, sig: signal.Signals, code: int) -> None:
    agent = script(tmp_path, f"""
        echo $$ > {tmp_path}/leader.pid
        sh -c 'trap "" TERM INT; while :; do sleep 0.05; done' &
        sleep 300 &
        wait
        """)
    proc = subprocess.Popen(run_once(tmp_path, agent, "--agent.kill-grace=1s"), cwd=tmp_path, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pgid = 0
    try:
        pgid = int(wait_until(lambda: (tmp_path / "leader.pid").read_text().strip(), timeout=30,
                              message="the agent to start"))
        wait_until(lambda: len(group_members(pgid)) >= 3, timeout=10, message="the agent's children")
        proc.send_signal(sig)
        proc.wait(timeout=30)
        left = group_members(pgid)  # the TERM-ignoring child was SIGKILLed after the grace
    finally:
        if proc.poll() is None:
            proc.kill()
        if pgid and group_members(pgid):  # clean up after a failure: never leave them to the next test
            os.killpg(pgid, signal.SIGKILL)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(f"resilience-exporter: agent run-once: received {sig.name}")
    assert left == []
    doc = json.loads((tmp_path / "health.json").read_text())
    assert doc["failure_type"] == "cancelled"


def test_links_planted_at_the_textfile_and_health_json_are_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = {name: outside / f"{name}.victim" for name in ("role_agent_edge.prom", "health.json")}
    out_dir = tmp_path / "textfiles"
    out_dir.mkdir()
    for name, victim in victims.items():
        victim.write_text("precious\n")
        victim.chmod(0o600)
        (out_dir / name).symlink_to(victim)
    started, go = tmp_path / "started", tmp_path / "go"
    agent = script(tmp_path, f"touch {started}\nwhile [ ! -e {go} ]; do sleep 0.02; done\nexit 0\n")
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "--host", "pi-1", "agent", "run-once", "--name", "edge",
                             "--textfile-dir", str(out_dir), "--health-file", str(out_dir / "health.json"), "--",
                             str(agent)], cwd=tmp_path, env=ENV, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(started.exists, timeout=30, message="the agent to start (the writers are set up by then)")
        for name, victim in victims.items():  # the temp name the writer used to pick: .<name>.tmp-<pid>
            (out_dir / f".{name}.tmp-{proc.pid}").symlink_to(victim)
        go.touch()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    for name, victim in victims.items():
        assert victim.read_text() == "precious\n" and victim.stat().st_mode & 0o777 == 0o600
        assert not (out_dir / name).is_symlink()  # the link itself was replaced by our file
    assert json.loads((out_dir / "health.json").read_text())["status"] == "ok"
    assert "role_agent_runs_total" in (out_dir / "role_agent_edge.prom").read_text()


@pytest.mark.parametrize("health", [
    '{"schema_version": 1, "runs": {"success": 3}, "consecutive_failures": "abc"}',
    '{"schema_version": 1, "runs": {"success": 3}, "consecutive_failures": 1e400}',
    '{"schema_version": 1, "runs": {"success": -5}, "consecutive_failures": 0}',
    '{"schema_version": 1, "runs": {"failure": 3}, "consecutive_failures": -2}',
    '[' * 100_000,
    '\xff\xfe not json',
])
def test_a_hostile_health_json_is_logged_and_replaced_and_the_agent_still_runs(tmp_path: Path, health: str) -> None:
    (tmp_path / "health.json").write_bytes(health.encode("latin-1"))
    agent = script(tmp_path, "exit 0\n")
    out = subprocess.run(run_once(tmp_path, agent), cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert "ignoring the previous health.json" in out.stderr
    doc = json.loads((tmp_path / "health.json").read_text())
    assert doc["runs"]["success"] == 1 and doc["consecutive_failures"] == 0  # started again from zero
    assert all(v >= 0 for v in doc["runs"].values())


def test_a_400_mb_stderr_line_costs_the_exporter_no_memory(tmp_path: Path) -> None:
    agent = script(tmp_path, "echo first >&2\nhead -c 400000000 /dev/zero | tr '\\0' x >&2\necho >&2\necho last >&2\n"
                             "exit 3\n")
    proc = subprocess.Popen(run_once(tmp_path, agent), cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    start = time.monotonic()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 3
    assert usage.ru_maxrss < 150 * 1024, f"peak RSS {usage.ru_maxrss / 1024:.0f} MiB after {time.monotonic() - start:.0f}s"
    tail = json.loads((tmp_path / "health.json").read_text())["stderr_tail"]
    assert tail[0] == "first" and tail[-1] == "last"
    assert tail[1].startswith("xxx") and tail[1].endswith("…") and len(tail[1]) <= 501
