"""The README's device metrics and health.json tables match the code and the shipped schema."""
from __future__ import annotations

import re

from exporter.config import ProbeConfig, load
from exporter.device.atomic import WriteCounts
from exporter.device.components import DeviceSide
from exporter.device.health import load_schema
from exporter.metrics.exposition import render_collectors
from exporter.metrics.device import device_collectors
from exporter.resilience import ResilienceRegistry
from tests.unit.test_readme import table_rows


def everything_enabled() -> list:  # type: ignore[type-arg]
    config = load(flags={"agent.command": ["/bin/true"], "textfile.directory": "/nonexistent"})
    config.probes = [ProbeConfig(name="api", url="http://127.0.0.1:1/")]
    side = DeviceSide(host=config.host, agent=config.agent, probes=config.probes, registry=ResilienceRegistry())
    return device_collectors(side, [WriteCounts()])


def test_device_metrics_table_lists_exactly_the_device_families_with_their_types() -> None:
    collectors = everything_enabled()
    families = {f.name: f.type for c in collectors for f in c.families()}
    rows = table_rows("device metric")
    assert {row[0]: row[1] for row in rows} == families
    text = render_collectors(collectors).decode()
    for name, kind, *_ in rows:
        assert re.search(rf"^# TYPE {re.escape(name)} {kind}$", text, re.M), name


def test_health_table_documents_every_schema_field() -> None:
    schema = load_schema()
    assert [row[0] for row in table_rows("field")] == list(schema["properties"])
    optional = {"interval_seconds"}  # added after schema_version 1 shipped: older documents lack it
    assert schema["required"] == [name for name in schema["properties"] if name not in optional]
