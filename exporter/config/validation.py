"""One validator for every layer: a value is checked against its schema type, wherever it came from.

Every error names its origin (file, env variable or flag), the key path and what was expected,
e.g. `config.yaml: web.listen_address: expected a string like ":10099", got 42`. The web config
file (`exporter.web.webconfig`) is validated by the same `build`.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from typing import Any, Literal, Mapping, get_args, get_origin

from exporter.config.schema import MAX_INT, MAX_SECONDS, Duration
from exporter.printable import printable


class ConfigError(ValueError):
    """A configuration problem, with its origin (file, env variable or flag) and key path."""

    def __init__(self, origin: str, path: str, problem: str) -> None:
        self.origin, self.path, self.problem = origin, path, problem
        where = f"{origin}: {path}" if path else origin
        super().__init__(printable(f"{where}: {problem}"))  # one line, whatever the key or value holds


_HINTS: dict[type, dict[str, Any]] = {}


def hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a schema dataclass (cached: the annotations are strings)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(tp: Any) -> str:
    if tp is Duration:
        return 'a duration like "30s" or "5m"'
    if hasattr(tp, "description"):
        return tp.description
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) is dict:
        key, val = get_args(tp)
        return f"a mapping of {_describe(key).removeprefix('a ').removeprefix('an ')} to {_describe(val).removeprefix('a ').removeprefix('an ')}"
    if get_origin(tp) is list:
        return f"a list of {_describe(get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def coerce(value: Any, tp: Any, origin: str, path: str, *, from_text: bool) -> Any:
    """Check `value` against `tp`; text from env/flags is parsed into the type first."""
    def fail() -> ConfigError:
        return ConfigError(origin, path, f"expected {_describe(tp)}, got {_short(value)}")

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise fail()
        return build(tp, value, origin, path)
    if get_origin(tp) is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, Mapping):
            raise fail()
        return {coerce(str(k) if from_text else k, key_tp, origin, f"{path}[{k!r}]", from_text=from_text):
                coerce(v, val_tp, origin, f"{path}[{k!r}]", from_text=from_text) for k, v in value.items()}
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise fail()
        return [coerce(v, item, origin, f"{path}[{i}]", from_text=from_text) for i, v in enumerate(value)]
    if get_origin(tp) is Literal:
        text = str(value).lower() if isinstance(value, bool) else value
        if text not in get_args(tp):
            raise fail()
        return text
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise fail()
    if tp is Duration:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_SECONDS:
            return Duration(value)
        if isinstance(value, str):
            try:
                parsed = Duration.parse(value)
            except (ValueError, OverflowError):
                raise fail() from None
            if parsed <= MAX_SECONDS:
                return parsed
        raise ConfigError(origin, path, f"expected {_describe(tp)} up to 10 years, got {_short(value)}")
    if hasattr(tp, "parse"):
        if isinstance(value, str):
            try:
                return tp.parse(value)
            except ValueError:
                raise fail() from None
        raise fail()
    if tp is int:
        if from_text and isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", text := value.strip()):
            value = int(text)  # the stripped text: str.strip drops more than int() does ("\x1f")
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail()
        if -MAX_INT <= value <= MAX_INT:
            return value
        raise ConfigError(origin, path, f"expected an integer between -{MAX_INT} and {MAX_INT}, got {_short(value)}")
    if tp is float:
        number = value
        if from_text and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise fail() from None
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            try:
                number = float(number)
            except OverflowError:
                raise fail() from None
            if math.isfinite(number):
                return number
            raise ConfigError(origin, path, f"expected a finite number, got {_short(value)}")
        raise fail()
    if tp is str:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a non-UTF-8 env value or flag arrives with surrogate escapes
                raise ConfigError(origin, path, "expected UTF-8 text, got undecodable bytes") from None
            return value
        raise fail()
    raise ConfigError(origin, path, f"unsupported type {tp}")  # schema bug


def _short(value: Any, limit: int = 60) -> str:
    """repr() of a bad value, cut so a 5,000-digit number or a huge list stays one readable line."""
    try:
        text = repr(float(value) if isinstance(value, Duration) else value)
    except ValueError:  # an int too long for repr (Python's 4,300-digit limit)
        return "a number with more than 4300 digits"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def check_bounds(value: Any, f: dataclasses.Field, origin: str, path: str) -> None:
    """The field's `ge`/`gt`/`le` bounds from its metadata."""
    meta = f.metadata
    if "ge" in meta and not value >= meta["ge"]:
        raise ConfigError(origin, path, f"expected a value >= {meta['ge']:g}, got {_short(value)}")
    if "gt" in meta and not value > meta["gt"]:
        raise ConfigError(origin, path, f"expected a value > {meta['gt']:g}, got {_short(value)}")
    if "le" in meta and not value <= meta["le"]:
        raise ConfigError(origin, path, f"expected a value <= {meta['le']:g}, got {_short(value)}")


def build(cls: type, data: Mapping[str, Any], origin: str, prefix: str, *,
          from_text: bool = False) -> Any:
    """`cls` (a schema dataclass) from a mapping, every key and value checked; ConfigError names
    `origin` and the key path under `prefix`. `from_text`: values are env/flag text to parse first."""
    known = hints(cls)
    for key in data:
        if key not in known:
            import difflib  # only a mistyped key pays for it

            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(known)})"
            raise ConfigError(origin, key_path(prefix, _short(key, 40) if not isinstance(key, str) else key[:60]),
                              "unknown key" + hint)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {k: coerce(v, known[k], origin, key_path(prefix, k), from_text=from_text) for k, v in data.items()}
    for k, v in kwargs.items():
        check_bounds(v, fields[k], origin, key_path(prefix, k))
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a section's own cross-field check (__post_init__)
        raise ConfigError(origin, prefix, str(exc)) from None


def key_path(prefix: str, key: str) -> str:
    """`web.listen_address` from `web` and `listen_address`."""
    return f"{prefix}.{key}" if prefix else key
