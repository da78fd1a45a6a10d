"""The test harness shared by tests/ and bench/: engine requirements, free ports, and waiting
on a condition with a deadline (never sleeping to hope a race away).

The engines themselves (a private dockerd, Podman, the fake Kubernetes API server, Prometheus,
Alertmanager, node_exporter, VictoriaMetrics) are in tests/integration/, built on these."""
from __future__ import annotations

import os
import random
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

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


_HANDED_OUT: set[int] = set()
_HANDING = threading.Lock()


def _below_ephemeral() -> tuple[int, int]:
    """12,000 ports below the kernel's ephemeral range (ip_local_port_range)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return max(1024, low - 12_000), low


_PORTS = _below_ephemeral()
_PICK = random.Random()  # seeded from os.urandom: concurrent processes start at different ports


def free_port() -> int:
    """A loopback port free now and never handed out before in this process: stacks that pick
    many ports before their processes bind them (20 fleet devices) must not get one twice.
    Picked below the ephemeral range, where bind(0) and every outgoing connection take their
    local port: a port picked here cannot become the local end of some connection (a vmagent's
    to the store, a test's HTTP request) before its own process binds it. (The fleet's
    'Address already in use' was not this: see the fleet's Link.)"""
    for _ in range(10_000):
        port = _PICK.randrange(*_PORTS)
        with _HANDING:  # the fleet picks its devices' ports from four threads
            if port in _HANDED_OUT:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError(f"no free loopback port in {_PORTS[0]}-{_PORTS[1] - 1}")


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


@contextmanager
def running_exporter(flags: Mapping[str, str] | None = None, *, file: Path | None = None,
                     config: Any = None) -> Iterator[Any]:
    """An in-process `serve` (exporter.app.Exporter) on a free loopback port, stopped on exit.

    From `flags` (dotted paths, as on the command line) and/or a config `file`, or a built
    `config`; without a file it listens on 127.0.0.1 at a port the kernel picks (unless the flags
    say otherwise), a file says where itself."""
    from exporter.app import Exporter  # the exporter only for the tests that run one
    from exporter.config import load

    if config is None:
        listen = {} if file is not None else {"web.listen_address": "127.0.0.1:0"}
        config = load(file=file, flags={**listen, **(flags or {})})
    app = Exporter(config)
    app.start()
    try:
        yield app
    finally:
        app.stop()


def url_of(app: Any, path: str = "/metrics") -> str:
    """The URL of `path` on a running exporter."""
    host, port = app.address
    return f"http://{host}:{port}{path}"
