"""kubectl-style short durations ("45s", "2m30s", "3h", "5d") for the page and the CLI."""
from __future__ import annotations


def duration(seconds: float) -> str:
    """kubectl's HumanDuration: more precision for recent things, less for old ones."""
    s = int(max(0.0, seconds))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y"


def ago(t: float | None, now: float) -> str:
    """How long before `now` the point `t` was ("" when unknown)."""
    return duration(now - t) if t else ""


def until(t: float | None, now: float) -> str:
    """When `t` comes relative to `now`: "in 30s", or "now" once it has passed ("" when unknown)."""
    if not t:
        return ""
    return "now" if t <= now else "in " + duration(t - now)
