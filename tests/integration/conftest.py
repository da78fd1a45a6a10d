"""Engines started once per test session."""
from __future__ import annotations

from typing import Iterator

import pytest

from tests.integration.dockerd import PrivateDockerd, require_root


@pytest.fixture(scope="session")
def dockerd() -> Iterator[PrivateDockerd]:
    require_root()
    engine = PrivateDockerd()
    try:
        engine.start()
        engine.build_testbox()
        yield engine
    finally:
        engine.close()
