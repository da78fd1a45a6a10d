"""Short soak runs (seconds each) of bench/soak.py: churn leaves nothing behind, a burst loses no
event and its memory does not grow with its size, fuzzing finds no crash."""
from __future__ import annotations

from bench import soak


def test_container_churn_returns_store_series_and_memory_to_baseline() -> None:
    result = soak.churn(2_000, deadline_s=60)
    assert result.records[1] == result.records[0] == 1_000
    assert result.series[1] == result.series[0]
    assert result.lives[1] == result.lives[0]
    assert result.ok_events == 4 * 2_000
    assert result.rss_mib[1] - result.rss_mib[0] <= 2.0, result.rss_mib
    assert result.blocks[1] - result.blocks[0] <= 2_000, result.blocks
    assert result.leak_free


def test_event_burst_counts_every_event_and_peak_memory_does_not_grow_with_it() -> None:
    small, large = soak.burst(5_000), soak.burst(20_000)
    assert large.ok == 20_000 and not any(large.other.values()), large.other
    assert small.ok == 5_000
    assert large.peak_mib <= 1.5 * small.peak_mib, (small.peak_mib, large.peak_mib)


def test_fuzzed_events_are_counted_or_rejected_never_raised() -> None:
    for fuzzed in soak.fuzz_events(3.0):
        assert fuzzed.examples > 0 and not fuzzed.crashes, (fuzzed.target, fuzzed.crashes)


def test_fuzzed_config_fails_only_with_config_error() -> None:
    for fuzzed in soak.fuzz_config(2.0):
        assert fuzzed.examples > 0 and not fuzzed.crashes, (fuzzed.target, fuzzed.crashes)


def test_fuzzed_events_api_queries_answer_200_or_400() -> None:
    fuzzed = soak.fuzz_web(2.0)
    assert fuzzed.examples > 0 and not fuzzed.crashes, fuzzed.crashes
