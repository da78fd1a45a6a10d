"""README tables match the code: every metric family and every setting is documented, no more."""
from __future__ import annotations

import re
from pathlib import Path

from exporter.config import env_name, flag_name, leaves
from exporter.metrics import ContainerCollector, Exposition, ResilienceCollector, SelfCollector
from exporter.resilience import ResilienceRegistry
from exporter.state import StateStore

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def table_rows(first_header: str) -> list[list[str]]:
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def test_metrics_table_lists_exactly_the_exposed_families() -> None:
    store = StateStore()
    exposition = Exposition([SelfCollector(store), ContainerCollector(store), ResilienceCollector(ResilienceRegistry())])
    exposed = set(exposition.names()) | {"resilience_exporter_scrape_duration_seconds"}
    documented = {row[0] for row in table_rows("metric")}
    assert documented == exposed


def test_metrics_table_types_match() -> None:
    store = StateStore()
    exposition = Exposition([SelfCollector(store), ContainerCollector(store), ResilienceCollector(ResilienceRegistry())])
    text = exposition.render().decode()
    for name, kind, *_ in table_rows("metric"):
        assert re.search(rf"^# TYPE {re.escape(name)} {kind}$", text, re.M), name


def test_configuration_table_lists_every_setting_with_its_flag_and_variable() -> None:
    rows = {row[0]: row for row in table_rows("key")}
    assert set(rows) == {path for path, _, _ in leaves()}
    for path, row in rows.items():
        assert row[1] == flag_name(path) and row[2] == env_name(path)
