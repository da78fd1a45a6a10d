"""Loading: defaults < YAML file (--config) < environment (RESILIENCE_EXPORTER_*) < flags.

Each layer is validated on its own first, so an error names the layer it came from; the merged
tree is then built into one `Config`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator, Mapping

from exporter.config.schema import Config
from exporter.config.validation import ConfigError, build, check_bounds, coerce, hints, key_path

ENV_PREFIX = "RESILIENCE_EXPORTER_"


def leaves(cls: type = Config, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    """Every scalar or list setting as (dotted path, type, field) — for env names and flags."""
    for f in dataclasses.fields(cls):
        tp = hints(cls)[f.name]
        path = key_path(prefix, f.name)
        if dataclasses.is_dataclass(tp):
            yield from leaves(tp, path)
        else:
            yield path, tp, f


def env_name(path: str) -> str:
    return ENV_PREFIX + path.replace(".", "_").upper()


def flag_name(path: str) -> str:
    return "--" + path.replace("_", "-")


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[last] = value


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


MAX_FILE_BYTES = 1 << 20  # a config or web config file is a few kilobytes


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; ConfigError (one line) for anything else.

    Shared by the config file and the web config file: unreadable, too big, not UTF-8, invalid
    YAML, nested too deep, numbers too long for Python to read, or not a mapping. PyYAML is
    imported here, not at import: a process configured by flags and env alone (~1 MiB less).
    """
    import yaml

    origin = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(origin, "", f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(origin, "", f"expected a file of at most {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(origin, "", f"expected UTF-8 text, got an undecodable byte at offset {exc.start}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(origin, where, f"invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(origin, "", "invalid YAML: nested too deep") from None
    except (ValueError, OverflowError):  # PyYAML's int() of a 5,000-digit number
        raise ConfigError(origin, "", "invalid YAML value: a number with more than 4300 digits") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(origin, "", f"expected a mapping at the top level, got {type(data).__name__}")
    return data


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse and validate a YAML file; returns its raw mapping (validated against the schema)."""
    data = read_yaml(path)
    build(Config, data, str(path), "")
    return data


def load(*, file: str | Path | None = None, environ: Mapping[str, str] | None = None,
         flags: Mapping[str, str] | None = None) -> Config:
    """Resolve the four layers into one validated Config.

    `flags` maps dotted paths to the text given on the command line. Each layer is validated on
    its own first so an error names the layer it came from.
    """
    merged: dict[str, Any] = read_file(file) if file else {}
    environ = environ or {}
    by_path = {path: (tp, f) for path, tp, f in leaves()}
    for layer_name, values in (("env", {p: environ[env_name(p)] for p in by_path if env_name(p) in environ}),
                               ("flag", dict(flags or {}))):
        layer: dict[str, Any] = {}
        for path, text in values.items():
            origin = f"env {env_name(path)}" if layer_name == "env" else f"flag {flag_name(path)}"
            tp, f = by_path[path]
            value = coerce(text, tp, origin, "", from_text=True)
            check_bounds(value, f, origin, "")
            _set(layer, path, value)
        merged = _merge(merged, layer)
    return build(Config, merged, "config", "")
