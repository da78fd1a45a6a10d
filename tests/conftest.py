"""Shared test helpers: engine requirements, free ports, waiting on conditions with deadlines."""
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


@pytest.fixture(scope="session")
def dockerd():  # type: ignore[no-untyped-def]
    """A private dockerd with the `testbox:1` image, once per session (integration and e2e tests)."""
    from tests.integration.dockerd import PrivateDockerd, require_root

    require_root()
    engine = PrivateDockerd()
    try:
        engine.start()
        engine.build_testbox()
        yield engine
    finally:
        engine.close()
