"""Benchmarks: ours side by side with a named peer, in the same run. `python -m bench --help`."""
