"""Fixtures shared by the suites; the helpers they build on are in tests/harness."""
from __future__ import annotations

from contextlib import ExitStack
from typing import Any, Callable, Iterator

import pytest

from tests.harness import running_exporter


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


@pytest.fixture
def exporter_factory() -> Iterator[Callable[..., Any]]:
    """Start in-process exporters (tests.harness.running_exporter's arguments); each is stopped
    at the end of the test, whatever the test did."""
    with ExitStack() as stack:
        yield lambda flags=None, **kw: stack.enter_context(running_exporter(flags, **kw))
