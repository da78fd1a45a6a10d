"""Run one agent command in its own process group, with a deadline and a stderr tail.

The agent is a shell script that starts children (docker compose, sleep, curl); killing only
the script would leave them running. So the command gets a new session (its own process
group) and a timeout or cancel kills the whole group: SIGTERM, a grace period, then SIGKILL.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import IO, Callable, Sequence

log = logging.getLogger(__name__)

EXIT_TIMEOUT = 124          # GNU timeout's convention for "ran out of time"
EXIT_NOT_EXECUTABLE = 126   # shell convention
EXIT_NOT_FOUND = 127        # shell convention
MAX_LINE = 500              # characters kept per stderr line, so health.json stays small
MAX_LINE_BYTES = 4096       # read at most this much of a line at a time; the rest is skipped
_POLL = 0.05


@dataclass(frozen=True)
class ProcessOutcome:
    """How the command ended; `exit_code` follows the shell (128+n for signal n)."""

    exit_code: int
    timed_out: bool
    cancelled: bool
    started_at: float
    ended_at: float
    duration: float
    stderr_tail: tuple[str, ...]
    pid: int | None


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _kill_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _read_tail(stream: IO[bytes], tail: deque[str]) -> None:
    """Keep the last lines of `stream`, each cut to MAX_LINE characters, reading at most
    MAX_LINE_BYTES at a time: one 400 MB line costs 4 KiB of memory, not 400 MB."""
    continuing = False  # inside a line whose head is already kept
    for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
        complete = raw.endswith(b"\n")
        if not continuing:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            cut = len(line) > MAX_LINE or not complete and len(raw) == MAX_LINE_BYTES
            tail.append(line[:MAX_LINE] + "…" if cut else line)
        continuing = not complete
    stream.close()


def run_command(command: Sequence[str], *, timeout: float, stderr_lines: int = 20, kill_grace: float = 5.0,
                cancel: threading.Event | None = None, wall: Callable[[], float] = time.time,
                monotonic: Callable[[], float] = time.monotonic,
                cancel_signal: Callable[[], signal.Signals] = lambda: signal.SIGTERM) -> ProcessOutcome:
    """Run `command` to completion or `timeout`; on timeout or `cancel`, kill its process group
    (on cancel with `cancel_signal()` first: the SIGINT or SIGTERM we received, forwarded)."""
    tail: deque[str] = deque(maxlen=max(stderr_lines, 0))
    started_at, start = wall(), monotonic()
    try:
        proc = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True, close_fds=True)
    except OSError as exc:
        code = EXIT_NOT_EXECUTABLE if isinstance(exc, PermissionError) else EXIT_NOT_FOUND
        tail.append(f"cannot start {command[0] if command else '(empty command)'}: {exc.strerror or exc}")
        return ProcessOutcome(code, False, False, started_at, wall(), monotonic() - start, tuple(tail), None)
    assert proc.stderr is not None
    reader = threading.Thread(target=_read_tail, args=(proc.stderr, tail), name=f"agent-stderr:{proc.pid}",
                              daemon=True)
    reader.start()
    deadline = start + timeout
    timed_out = cancelled = False
    while True:
        try:
            proc.wait(timeout=_POLL)
            break
        except subprocess.TimeoutExpired:
            pass
        if cancel is not None and cancel.is_set():
            cancelled = True
        elif monotonic() >= deadline:
            timed_out = True
        else:
            continue
        _terminate_group(proc, kill_grace, cancel_signal() if cancelled else signal.SIGTERM)
        break
    ended_at, duration = wall(), monotonic() - start
    reader.join(timeout=1.0)  # a background grandchild may still hold stderr; do not wait for it
    if timed_out:
        tail.append(f"resilience-exporter: killed the agent's process group after the {timeout:g}s timeout")
    code = EXIT_TIMEOUT if timed_out else _exit_code(proc.returncode)
    return ProcessOutcome(code, timed_out, cancelled, started_at, ended_at, duration, tuple(tail), proc.pid)


def _terminate_group(proc: subprocess.Popen[bytes], grace: float, first: signal.Signals = signal.SIGTERM) -> None:
    """`first` (SIGTERM) to the whole group, then SIGKILL whatever is left of it after `grace` seconds."""
    pgid = proc.pid  # start_new_session made the command its group leader
    _kill_group(pgid, first)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(pgid):
            break
        time.sleep(_POLL)
    if _kill_group(pgid, signal.SIGKILL):
        log.warning("agent process group ignored SIGTERM; sent SIGKILL", extra={"fields": {"pgid": pgid}})
    proc.wait()
