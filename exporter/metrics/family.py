"""Metric families declared as table rows, and the text rendering of their samples.

A family is a name, a type, a help string, its own label names and a small function from an
object to `(label values, value)` pairs (kube-state-metrics' generator shape). Rendering is
shared by the cached container collector and the small per-scrape collectors.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Generic, Iterable, Sequence, TypeVar

from prometheus_client.utils import floatToGoString

T = TypeVar("T")
Sample = tuple[tuple[str, ...], float]

GAUGE = "gauge"
COUNTER = "counter"


@dataclass(frozen=True)
class Family(Generic[T]):
    """One metric family: adding a metric is adding a row of this type to a table."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...]
    samples: Callable[[T], Iterable[Sample]]

    def __post_init__(self) -> None:
        if self.type not in (GAUGE, COUNTER):
            raise ValueError(f"{self.name}: unsupported type {self.type!r}")
        if (self.type == COUNTER) != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters and only counters end in _total")

    def header(self, *, openmetrics: bool) -> str:
        """HELP and TYPE lines; OpenMetrics names a counter family without its _total suffix."""
        name = self.name[:-6] if openmetrics and self.type == COUNTER else self.name
        help_text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {name} {help_text}\n# TYPE {name} {self.type}\n"


MAX_LABEL_VALUE = 512
"""Characters kept of a label value: Kubernetes names stop at 253, image references rarely pass
300; a 100 KB pod name must not turn one pod into megabytes of every scrape."""


class _Truncations:
    """How many label values were cut to MAX_LABEL_VALUE (per render of a changed object)."""

    def __init__(self) -> None:
        self.total = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.total += 1


TRUNCATIONS = _Truncations()


def escape(value: str) -> str:
    """Escape a label value for both text formats (backslash, double quote, newline), cut to
    MAX_LABEL_VALUE characters (then ending in "…") and counted in TRUNCATIONS."""
    if len(value) > MAX_LABEL_VALUE:
        TRUNCATIONS.add()
        value = value[:MAX_LABEL_VALUE - 1] + "…"
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")
    return value


def label_prefix(names: Sequence[str], values: Sequence[str]) -> str:
    """The rendered `name="value",...` part shared by every sample of one object."""
    return ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values))


def format_value(value: float) -> str:
    if type(value) is int:  # noqa: E721 - fast path, bool excluded on purpose
        return f"{value}"
    return floatToGoString(value)


def render(family: Family[T], obj: T, prefix: str) -> str:
    """All sample lines of `family` for one object, `prefix` being its common labels."""
    lines = []
    name = family.name
    extra_names = family.labels
    for extra, value in family.samples(obj):
        if extra:
            labels = label_prefix(extra_names, extra)
            labels = f"{prefix},{labels}" if prefix else labels
        else:
            labels = prefix
        if labels:
            lines.append(f"{name}{{{labels}}} {format_value(value)}\n")
        else:
            lines.append(f"{name} {format_value(value)}\n")
    return "".join(lines)
