"""health.json: every status the agent can be in produces a document valid against the shipped schema."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from exporter.device.health import SCHEMA_PATH, HealthFile, health_document, load_schema, read_counters
from exporter.device.status import AgentRun, AgentStatus
from exporter.resilience import FakeClock, ResilienceRegistry

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}


def schema_errors(doc: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The subset of JSON Schema that health.schema.json uses; returns every violation found."""
    errors: list[str] = []
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        ok = any(isinstance(doc, _TYPES[k]) and not (k in ("integer", "number") and isinstance(doc, bool))
                 for k in kinds)
        if not ok:
            return [f"{path}: expected {kinds}, got {doc!r}"]
    if "const" in schema and doc != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}, got {doc!r}")
    if "enum" in schema and doc not in schema["enum"]:
        errors.append(f"{path}: {doc!r} not in {schema['enum']}")
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        if "minimum" in schema and doc < schema["minimum"]:
            errors.append(f"{path}: {doc} < {schema['minimum']}")
        if "maximum" in schema and doc > schema["maximum"]:
            errors.append(f"{path}: {doc} > {schema['maximum']}")
    if isinstance(doc, str) and "pattern" in schema and not re.search(schema["pattern"], doc):
        errors.append(f"{path}: {doc!r} does not match {schema['pattern']}")
    if isinstance(doc, dict):
        props = schema.get("properties", {})
        errors += [f"{path}: missing {key!r}" for key in schema.get("required", []) if key not in doc]
        if schema.get("additionalProperties") is False:
            errors += [f"{path}: unexpected {key!r}" for key in doc if key not in props]
        for key, sub in props.items():
            if key in doc:
                errors += schema_errors(doc[key], sub, f"{path}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            errors += schema_errors(item, schema["items"], f"{path}[{i}]")
    return errors


def assert_valid_health(doc: Any) -> None:
    errors = schema_errors(doc, load_schema())
    assert errors == [], errors


def run(ok: bool, **kw: Any) -> AgentRun:
    base: dict[str, Any] = dict(started_at=100.0, ended_at=101.5, duration=1.5, exit_code=0 if ok else 3,
                                failure_type=None if ok else "compose_failed", attempts=1,
                                stderr_tail=("line 1", "line 2"))
    base.update(kw)
    return AgentRun(**base)


@pytest.fixture
def parts() -> tuple[AgentStatus, Any, FakeClock]:
    clock = FakeClock()
    registry = ResilienceRegistry()
    breaker = registry.breaker("agent:edge", failure_threshold=2, window=3600, open_timeout=600,
                               success_threshold=1, clock=clock)
    return AgentStatus("edge", "pi-1"), breaker, clock


def test_the_checker_catches_what_the_schema_forbids() -> None:
    schema = load_schema()
    assert schema_errors({"schema_version": 2}, schema)  # const and many missing keys
    assert any("unexpected 'extra'" in e for e in schema_errors({"extra": 1}, schema))
    assert schema_errors(True, {"type": "integer"}) and not schema_errors(3, {"type": ["integer", "null"]})
    assert schema_errors("exit code", {"pattern": "^[a-z_]+$"})


def test_pending_ok_failing_and_circuit_open_documents_are_valid(parts: Any) -> None:
    status, breaker, clock = parts
    documents = {}
    documents["pending"] = health_document(status.snapshot(), breaker, ["a.sh"], wall=lambda: 1000.0)
    status.record_run(run(True))
    documents["ok"] = health_document(status.snapshot(), breaker, ["a.sh"], wall=lambda: 1000.0)
    status.record_run(run(False))
    documents["failing"] = health_document(status.snapshot(), breaker, ["a.sh"], wall=lambda: 1000.0)
    breaker.force_open()
    status.record_rejected("circuit breaker 'agent:edge' is open")
    documents["circuit_open"] = health_document(status.snapshot(), breaker, ["a.sh"], wall=lambda: 1000.0)
    for expected, doc in documents.items():
        assert_valid_health(doc)
        assert doc["status"] == expected
    assert documents["failing"]["reason"].startswith("compose_failed (exit code 3): docker compose failed")
    assert documents["failing"]["stderr_tail"] == ["line 1", "line 2"]
    assert "is forced_open after 1 consecutive failures (last: compose_failed)" in documents["circuit_open"]["reason"]
    assert documents["circuit_open"]["runs"] == {"success": 1, "failure": 1, "skipped": 0, "rejected": 1}


def test_an_open_breaker_reports_when_the_trial_run_is_allowed(parts: Any) -> None:
    status, breaker, clock = parts
    for _ in range(2):
        breaker.on_error(RuntimeError("x"))
    clock.advance(100)
    doc = health_document(status.snapshot(), breaker, ["a.sh"], wall=lambda: 5000.0)
    assert_valid_health(doc)
    assert doc["breaker_state"] == "open" and doc["breaker_retry_at"] == 5500.0
    assert "next trial run after 1970-01-01T01:31:40Z" in doc["reason"]


def test_health_file_round_trips_counters_for_run_once(tmp_path: Path, parts: Any) -> None:
    status, breaker, _ = parts
    status.record_run(run(False))
    status.record_run(run(False, failure_type="inventory_missing", exit_code=2))
    health = HealthFile(tmp_path / "health.json", lambda: health_document(status.snapshot(), breaker, ["a.sh"]))
    assert health.write()
    assert oct((tmp_path / "health.json").stat().st_mode & 0o777) == "0o644"
    assert_valid_health(json.loads((tmp_path / "health.json").read_text()))
    again = AgentStatus("edge", "pi-1")
    again.restore(**read_counters(tmp_path / "health.json"))  # type: ignore[arg-type]
    snap = again.snapshot()
    assert (snap.runs["failure"], snap.consecutive_failures, snap.last_failure_type) == (2, 2, "inventory_missing")
    assert read_counters(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_counters(tmp_path / "bad.json") is None


def test_schema_ships_inside_the_package() -> None:
    assert SCHEMA_PATH.parent.name == "device" and SCHEMA_PATH.name == "health.schema.json"
    assert load_schema()["properties"]["status"]["enum"] == ["pending", "ok", "failing", "circuit_open"]


def test_run_once_keeps_the_interval_of_a_scheduled_agent_only(tmp_path: Path) -> None:
    from exporter.device.health import read_counters

    path = tmp_path / "health.json"
    doc = {"schema_version": 1, "runs": {"success": 1}, "interval_seconds": 3600.0, "next_run": 1e9}
    path.write_text(json.dumps(doc))
    assert read_counters(path)["interval"] == 3600.0  # written by a scheduler: a run by hand beside it
    path.write_text(json.dumps({**doc, "next_run": None}))
    assert read_counters(path)["interval"] is None  # written by run-once: a timer's, not a schedule's
    path.write_text(json.dumps({**doc, "interval_seconds": True}))
    assert read_counters(path)["interval"] is None
