"""Frozen views: the typed form of the JSON documents users read (/api/state, health.json).

A view is built beside its snapshot (`ContainerView.of(record)`), holds JSON-ready values only,
and `as_dict()` keeps the field order, because the documents' key order is part of what users
see (the API stays byte-for-byte the same across releases).
"""
from __future__ import annotations

from typing import Any, Mapping


class View:
    """Base of the frozen view dataclasses: `as_dict()` in field order, nested views included."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        return {name: plain(getattr(self, name)) for name in self.__dataclass_fields__}  # type: ignore[attr-defined]


def plain(value: Any) -> Any:
    """A view field as JSON data: views become mappings, tuples lists, mappings fresh dicts."""
    if isinstance(value, View):
        return value.as_dict()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value
