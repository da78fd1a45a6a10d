"""Log lines in logfmt (the Prometheus exporters' default) or JSON, one line per event.

Structured fields go in `extra={"fields": {...}}`; they become key=value pairs or JSON keys.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
          logging.ERROR: "error", logging.CRITICAL: "error"}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": _timestamp(record),
        "level": _NAMES.get(record.levelno, "info"),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    out.update(getattr(record, "fields", None) or {})
    if record.exc_info:
        out["err"] = logging.Formatter().formatException(record.exc_info).splitlines()[-1]
    return out


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    """Route all logging to stderr in the chosen format (replaces earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    for noisy in ("urllib3", "docker", "kubernetes", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(LEVELS[level], logging.WARNING))
