"""The test harness shared by tests/ and bench/: engine requirements, free ports, and waiting
on a condition with a deadline (never sleeping to hope a race away).

The engines themselves (a private dockerd, Podman, the fake Kubernetes API server, Prometheus,
Alertmanager, node_exporter, VictoriaMetrics) are in tests/integration/, built on these."""
from __future__ import annotations

import os
import shutil
import socket
import time
from typing import Callable, TypeVar

import pytest

T = TypeVar("T")
IN_CI = os.environ.get("CI") == "true"


def require_binary(name: str) -> str:
    """Path of an engine binary; a missing one fails under CI and skips (loudly) elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed (tests/run.sh installs it when run as root)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)
    raise AssertionError  # unreachable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02,
               message: str = "condition") -> T:
    """Poll `check` until it returns a truthy value or the deadline passes (then fail)."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the thing may not be up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}" +
                         (f" (last error: {last_error!r})" if last_error else ""))


def poll(check: Callable[[], T], timeout: float, interval: float = 0.05) -> T | None:
    """`check`'s first truthy value before the deadline, or None (for callers that report a miss
    rather than fail, e.g. a benchmark counting trials that never converged)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except Exception:  # the thing may be down meanwhile (an engine being restarted)
            value = None
        if value or time.monotonic() >= deadline:
            return value or None
        time.sleep(interval)
