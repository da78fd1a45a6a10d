"""Issue 16, the parts that need no server: bad inputs are one line and exit 2, bounded label
values, the terminal view's escaping, the connection table, shared renders, a dead scheduler."""
from __future__ import annotations

import socket
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.base import BaseTrigger

from exporter import cli
from exporter.config import AgentConfig, ConfigError, load
from exporter.device.agent import AgentRunner
from exporter.device.schedule import AgentScheduler
from exporter.device.status import AgentStatus
from exporter.metrics.family import MAX_LABEL_VALUE, TRUNCATIONS, label_prefix
from exporter.resilience import ResilienceRegistry
from exporter.statusview import render
from exporter.web.coalesce import Coalescer
from exporter.web.limits import ConnectionTable, connection_cap
from tests.harness import wait_until

BAD_CONFIGS = [  # the table, one row each: (file content, what the one line must say)
    (b"resilience:\n  retry_budget_ratio: .nan\n", "resilience.retry_budget_ratio: expected a finite number, got nan"),
    (b"resilience:\n  retry_budget_ratio: .inf\n", "resilience.retry_budget_ratio: expected a finite number, got inf"),
    (b"resilience:\n  retry_budget_ratio: -3\n", "resilience.retry_budget_ratio: expected a value >= 0, got -3.0"),
    (b"state:\n  transitions_kept: -1\n", "state.transitions_kept: expected a value >= 0, got -1"),
    (b"agent:\n  every: 0\n", "agent.every: expected a value > 0, got 0.0"),
    (b"agent:\n  every: .inf\n", 'agent.every: expected a duration like "30s" or "5m" up to 10 years, got inf'),
    (b"textfile:\n  interval: 0\n", "textfile.interval: expected a value > 0, got 0.0"),
    (b"agent:\n  max_attempts: 0\n", "agent.max_attempts: expected a value >= 1, got 0"),
    (b"agent:\n  jitter: 99999999d\n", "agent.jitter: expected a duration"),
    (b"state:\n  transitions_kept: " + b"9" * 5000 + b"\n", "invalid YAML value: a number with more than 4300 digits"),
    (b"state: " + b"[" * 5000 + b"\n", "invalid YAML: nested too deep"),
    (b"host: \xff\xfe\n", "expected UTF-8 text, got an undecodable byte at offset 6"),
    (b'"\\x1e\\u2028": 1\n', "\\x1e\\u2028: unknown key"),  # line separators for splitlines()
]


@pytest.mark.parametrize("content,expected", BAD_CONFIGS)
def test_each_bad_config_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 content: bytes, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    assert cli.main(["check-config", str(path)]) == 2
    assert cli.main(["--config", str(path), "serve"]) == 2
    assert cli.main(["--config", str(path), "agent", "run-once", "--", "true"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(expected in line and str(path) in line for line in lines), lines


def test_bad_environment_values_are_one_line_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^env RESILIENCE_EXPORTER_HOST: expected UTF-8 text"):
        load(environ={"RESILIENCE_EXPORTER_HOST": "pi-\udcff"})  # how os.environ holds a non-UTF-8 byte
    with pytest.raises(ConfigError, match=r"^env RESILIENCE_EXPORTER_STATE_TRANSITIONS_KEPT: expected an integer"):
        load(environ={"RESILIENCE_EXPORTER_STATE_TRANSITIONS_KEPT": "9" * 5000})
    with pytest.raises(ConfigError, match=r"^env RESILIENCE_EXPORTER_AGENT_EVERY: expected a value > 0"):
        load(environ={"RESILIENCE_EXPORTER_AGENT_EVERY": "0s"})


def test_long_label_values_are_cut_and_counted() -> None:
    before = TRUNCATIONS.total
    text = label_prefix(("pod", "container"), ("p" * 100_000, "short"))
    assert text == f'pod="{"p" * (MAX_LABEL_VALUE - 1)}…",container="short"'
    assert TRUNCATIONS.total == before + 1


def test_the_terminal_view_escapes_control_characters_from_the_api() -> None:
    state = {"containers": [{"name": "evil\x1b]0;owned\x07\x1b[2J\n", "image": "i", "source": "docker",
                             "status": "Running", "restarts": 0}]}
    out = render(state)
    assert "\x1b" not in out and "\x07" not in out
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\n" in out


def _socket() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_at_the_cap_the_longest_waiting_connection_is_closed_and_busy_ones_are_kept() -> None:
    table = ConnectionTable(cap=2)
    busy, waiting, new = _socket(), _socket(), _socket()
    try:
        assert table.admit(busy) and table.busy(busy)
        assert table.admit(waiting)
        assert table.admit(new)  # evicts `waiting`, the only one not being answered
        assert table.evicted_total == 1 and len(table) == 2
        assert not table.busy(waiting)  # its thread learns it was closed and drops it
        assert table.busy(new)
        assert not table.admit(_socket())  # everything is busy: the newcomer is refused
        assert table.refused_total == 1
        table.waiting(busy)
        table.remove(new)
        assert len(table) == 1
    finally:
        for s in (busy, waiting, new):
            s.close()


def test_the_connection_cap_fits_the_open_file_limit() -> None:
    assert connection_cap(1024, 1024) == 1024 - 128
    assert connection_cap(100, 100_000) == 100


def test_concurrent_calls_with_one_key_share_one_render_and_its_error() -> None:
    coalescer: Coalescer[str, int] = Coalescer()
    started, release = threading.Event(), threading.Event()
    calls = []

    def slow() -> int:
        calls.append(1)
        started.set()
        release.wait(5)
        return 42

    results: list[int] = []
    leader = threading.Thread(target=lambda: results.append(coalescer.call("k", slow)))
    leader.start()
    started.wait(5)
    followers = [threading.Thread(target=lambda: results.append(coalescer.call("k", slow))) for _ in range(5)]
    for t in followers:
        t.start()
    wait_until(lambda: coalescer.shared_total == 5, timeout=5, message="the followers to join the render")
    release.set()
    for t in [leader, *followers]:
        t.join(5)
    assert results == [42] * 6 and len(calls) == 1
    assert coalescer.call("k", lambda: 7) == 7  # a later call renders again

    def broken() -> int:
        raise RuntimeError("render failed")

    with pytest.raises(RuntimeError, match="render failed"):
        coalescer.call("k", broken)


class _BreaksAfterStart(BaseTrigger):
    """Fires now, then fails to compute the next time (as a huge jitter overflowing a datetime did)."""

    armed = False

    def get_next_fire_time(self, previous: datetime | None, now: datetime) -> datetime | None:
        if self.armed and previous is not None:
            return now + timedelta(days=10**9)  # OverflowError in the scheduler's thread
        return now


def test_a_scheduler_whose_thread_dies_reports_it() -> None:
    runner = AgentRunner(AgentConfig(command=["true"]), AgentStatus("a", "h"), ResilienceRegistry())
    trigger = _BreaksAfterStart()
    scheduler = AgentScheduler(runner, trigger)
    trigger.armed = True
    hook, threading.excepthook = threading.excepthook, lambda args: None  # the test expects the thread to die
    try:
        assert scheduler.failure() is None
        scheduler.start()
        problem = wait_until(scheduler.failure, timeout=10, message="the scheduler's failure")
    finally:
        threading.excepthook = hook
        scheduler.stop()
    assert "the agent would never run again" in problem


def test_worker_threads_are_reused_and_a_new_one_starts_only_when_none_is_idle() -> None:
    from exporter.web.workers import WorkerPool

    pool = WorkerPool(idle_seconds=5)
    done = threading.Semaphore(0)
    names: list[str] = []

    def job() -> None:
        names.append(threading.current_thread().name)
        done.release()

    for _ in range(5):  # one after the other: the first thread serves them all
        pool.submit(job)
        assert done.acquire(timeout=5)
        wait_until(lambda: pool.idle == 1, timeout=5, message="the worker to be idle again")
    assert pool.started_total == 1 and len(set(names)) == 1
    gate = threading.Event()
    for _ in range(3):  # three at once: two more threads
        pool.submit(lambda: (gate.wait(5), done.release()))
    wait_until(lambda: pool.started_total == 3, timeout=5, message="two more workers")
    gate.set()
    for _ in range(3):
        assert done.acquire(timeout=5)


def test_an_idle_worker_exits_after_its_idle_time() -> None:
    from exporter.web.workers import WorkerPool

    pool = WorkerPool(idle_seconds=0.05, name="idle-test")
    ran = threading.Event()
    pool.submit(ran.set)
    assert ran.wait(5)
    wait_until(lambda: pool.idle == 0 and not any(t.name == "idle-test-1" for t in threading.enumerate()), timeout=5,
               message="the idle worker to exit")
