"""Hypothesis over web config files, config files, env values and health.json (bench/fuzz_inputs.py,
longer by hand): every bad input is one line or ignored, never a traceback."""
from __future__ import annotations

from bench import fuzz_inputs
from tests.harness import require_binary


def test_fuzzed_inputs_give_one_line_errors_and_never_raise() -> None:
    require_binary("openssl")
    for fuzzed in fuzz_inputs.fuzz_inputs(12.0):
        assert fuzzed.examples > 0 and not fuzzed.crashes, (fuzzed.target, fuzzed.crashes)
