"""`python -m bench` runs every suite it lists: each one names a module that exists."""
from __future__ import annotations

import importlib.util

from bench.__main__ import SUITES


def test_every_listed_bench_suite_has_its_module() -> None:
    missing = [name for name in SUITES if importlib.util.find_spec(f"bench.{name}") is None]
    assert not missing, f"bench/__main__.py SUITES lists suites with no module: {missing}"
