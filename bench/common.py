"""Shared helpers for benchmarks: timing loops and the printed comparison table."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Row:
    """One benchmark row: our figure next to the peer's, with the ratio and the goal."""

    name: str
    ours: float
    peer: float | None
    unit: str
    peer_name: str = ""
    goal: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.peer in (None, 0):
            return None
        return self.ours / self.peer


def per_call_seconds(fn: Callable[[], object], *, calls: int = 200_000, repeats: int = 5) -> float:
    """Best-of-`repeats` mean seconds per call of `fn` over `calls` calls (best filters noise)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def _ratio(ratio: float | None) -> str:
    """0.5x; very small ratios as 1/N (what "N times faster" goals read)."""
    if ratio is None:
        return "-"
    return f"1/{1 / ratio:,.0f}" if 0 < ratio < 0.01 else f"{ratio:.3g}x"


def format_table(rows: list[Row]) -> str:
    """Render rows as a fixed-width text table (also pasted into docs/BENCHMARKS.md)."""
    header = ("benchmark", "ours", "peer", "peer value", "ratio", "goal", "met")
    lines = [header]
    for r in rows:
        lines.append((
            r.name,
            f"{r.ours:.4g} {r.unit}",
            r.peer_name or "-",
            f"{r.peer:.4g} {r.unit}" if r.peer is not None else "-",
            _ratio(r.ratio),
            r.goal or "-",
            {True: "yes", False: "NO", None: "-"}[r.met],
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        out.append("| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |")
        if i == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)
