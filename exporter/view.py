"""Frozen views: the typed form of the JSON documents users read (/api/state, health.json).

A view is built beside its snapshot (`ContainerView.of(record)`), holds JSON-ready values only,
and `as_dict()` keeps the field order, because the documents' key order is part of what users
see (the API stays byte-for-byte the same across releases).
"""
from __future__ import annotations

import types
from collections import abc
import typing
from typing import Any, Mapping, TypeVar, get_args, get_origin

V = TypeVar("V", bound="View")
_HINTS: dict[type, dict[str, Any]] = {}


class View:
    """Base of the frozen view dataclasses: `as_dict()` in field order, nested views included."""

    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        return {name: plain(getattr(self, name)) for name in self.__dataclass_fields__}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls: type[V], data: Mapping[str, Any]) -> V:
        """The view of a document read back (`resilience-exporter status` asking another exporter):
        a key it lacks takes its empty value (None, "", 0, false, [] or {}), an unknown key is ignored."""
        if cls not in _HINTS:
            _HINTS[cls] = typing.get_type_hints(cls)
        hints = _HINTS[cls]
        return cls(**{name: typed(data.get(name), hints[name]) for name in cls.__dataclass_fields__})  # type: ignore[attr-defined]


def plain(value: Any) -> Any:
    """A view field as JSON data: views become mappings, tuples lists, mappings fresh dicts."""
    if isinstance(value, View):
        return value.as_dict()
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


def typed(value: Any, tp: Any) -> Any:
    """JSON `value` as the view field type `tp`: nested views and tuples rebuilt, None as the empty value."""
    args = get_args(tp)
    if get_origin(tp) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (tp,) = [a for a in args if a is not type(None)]
        args = get_args(tp)
    origin = get_origin(tp) or tp
    if isinstance(origin, type) and issubclass(origin, View):
        return origin.from_dict(value if isinstance(value, Mapping) else {})
    if origin is tuple:
        return tuple(typed(v, args[0]) for v in (value if isinstance(value, list) else ()))
    if origin in (abc.Mapping, dict):
        return dict(value) if isinstance(value, Mapping) else {}
    if value is None:
        return {str: "", int: 0, float: 0.0, bool: False}.get(origin)
    return value
