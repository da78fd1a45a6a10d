"""Fixtures shared by the suites; the helpers they build on are in tests/harness."""
from __future__ import annotations

import pytest


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
