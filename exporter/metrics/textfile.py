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


def collisions(ours: bytes, others: Mapping[str, bytes]) -> list[str]:
    """What in `others` (file name -> content) node_exporter would reject beside `ours`.

    One line per other file: the first duplicate series or family typed differently, and how
    many there are. Files that do not parse are skipped: node_exporter reports those itself.
    """
    mine = {(name, labels): kind for name, kind, labels in _series(ours.decode())}
    my_types = {name: kind for (name, _), kind in mine.items()}
    found = []
    for filename, content in sorted(others.items()):
        try:
            theirs = list(_series(content.decode()))
        except (ValueError, UnicodeDecodeError):
            continue
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
