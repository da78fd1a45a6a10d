"""RFC 3339 times as the engines and the Kubernetes API write them, to Unix seconds.

Shared by the Docker and Kubernetes sources (both write Go's time.Time: nanoseconds, and the
zero time 0001-01-01 for "never").
"""
from __future__ import annotations

import re
from datetime import datetime, timezone

_FRACTION = re.compile(r"\.(\d+)")


def parse_timestamp(text: str | None) -> float | None:
    """Engine RFC 3339 time with nanoseconds -> Unix seconds; None for Go's zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    text = text.replace("Z", "+00:00")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()
