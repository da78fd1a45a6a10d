"""Textfile text that lives beside other writers: a `writer` label on every series, and a
collision check against the other files of the directory.

node_exporter merges every `.prom` file of its directory into one scrape; a series two files
both carry makes it drop one file's samples ("collected before with the same name and label
values"), a family two files type differently fails the whole collector. A `writer` label whose
value is the file's own name (unique within a directory by construction) keeps any number of
agents and `serve` apart; the check reports what a label cannot prevent: other writers' files.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics.exposition import Collector, render_collectors
from exporter.metrics.family import escape

WRITER_LABEL = "writer"

_SAMPLE_START = re.compile(rb"^([a-zA-Z_:][a-zA-Z0-9_:]*)([{ ])", re.M)
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def with_label(text: bytes, name: str, value: str) -> bytes:
    """`text` (our own exposition, one sample per line) with `name="value"` first on every sample."""
    pair = f'{name}="{escape(value)}"'.encode()

    def add(m: re.Match[bytes]) -> bytes:
        return m.group(1) + b"{" + pair + (b"," if m.group(2) == b"{" else b"} ")

    return _SAMPLE_START.sub(add, text)


def render_textfile(collectors: Sequence[Collector], writer: str) -> bytes:
    """Prometheus text of `collectors` only, each series labelled `writer=<writer>`.

    No process_* or python_* families: node_exporter exposes its own, and the same names in a
    textfile would make `node_textfile_scrape_error` 1.
    """
    return with_label(render_collectors(collectors), WRITER_LABEL, writer)


def _series(text: str) -> Iterable[tuple[str, str, frozenset[tuple[str, str]]]]:
    """(sample name, family type, labels) of every sample in `text`."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, family.type, frozenset(sample.labels.items())


def _only(content: str, names: set[str]) -> str:
    """The lines of `content` about `names` (samples, HELP, TYPE): parsing a neighbour's whole file
    with the reference parser costs ~0.1 ms a line, and almost none of its lines are ours."""
    kept = []
    for line in content.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE") and parts[2] in names:
                kept.append(line)
            continue
        m = _NAME.match(line)
        if m and m.group(0) in names:
            kept.append(line)
    return "\n".join(kept) + "\n" if kept else ""


def _names(content: str) -> set[str]:
    """Metric names of `content`'s samples, and its HELP/TYPE names."""
    names = set()
    for line in content.splitlines():
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                names.add(parts[2])
        elif m := _NAME.match(line):
            names.add(m.group(0))
    return names


def collisions(ours: bytes, others: Mapping[str, bytes]) -> list[str]:
    """What in `others` (file name -> content) node_exporter would reject beside `ours`.

    One line per other file: the first duplicate series or family typed differently, and how
    many there are. Only lines whose names both files use are parsed, so the usual neighbour
    (no name in common) costs a scan. Files that do not parse are skipped: node_exporter
    reports those itself.
    """
    text = ours.decode()
    names = _names(text)
    names |= {n[:-6] for n in names if n.endswith("_total")}  # a counter family's TYPE/HELP name
    found = []
    for filename, content in sorted(others.items()):
        try:
            theirs = list(_series(_only(content.decode(), names)))
        except (ValueError, UnicodeDecodeError):
            continue
        if not theirs:
            continue
        shared = {name for name, _, _ in theirs}
        shared |= {n[:-6] for n in shared if n.endswith("_total")}
        mine = {(name, labels): kind for name, kind, labels in _series(_only(text, shared))}
        my_types = {name: kind for (name, _), kind in mine.items()}
        problems = []
        for name, kind, labels in theirs:
            if (name, labels) in mine:
                shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels))
                problems.append(f"series {name}{{{shown}}} in both files")
            elif name in my_types and kind != "unknown" and my_types[name] != kind:
                problems.append(f"{name} is a {my_types[name]} here and a {kind} there")
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            found.append(f"{filename}: {problems[0]}{more}")
    return found
