"""OOM kills on a real dockerd, each counted once: a short version of `python -m bench.oom`.

One container of every shape (restart no / always / on-failure:N, `--rm`, killed within ~100 ms,
a child killed while the main process lives on, OOM-killed before the exporter started) and a
burst of ten at once, in which the engine usually loses some `oom` events: those are inferred.
"""
from __future__ import annotations

from bench import oom
from tests.harness import require_binary
from tests.integration.dockerd import require_root


def test_every_oom_kill_of_every_shape_is_counted_exactly_once() -> None:
    require_root()
    require_binary("dockerd")
    lines: list[str] = []
    outcomes = oom.run({shape: 1 for shape in oom.SHAPES}, bursts=1, before=2, log=lines.append)
    table = oom.summary(outcomes)
    assert {o.shape for o in outcomes} == {*oom.SHAPES, "burst", "before"}, table
    assert sum(o.truth for o in outcomes) >= 25, table
    # A child's OOM kill leaves no exit, and the engine under load sometimes sends no `oom` for it
    # either: the kernel's counter in the container's cgroup still shows it (cgroup.py).
    assert all(o.ok for o in outcomes), f"{table}\n" + "\n".join(lines)
    for child in (o for o in outcomes if o.shape == "child"):
        assert child.running and child.exits == 0 and child.oom_kills == 1, child
