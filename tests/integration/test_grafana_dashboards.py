"""Static checks of the shipped dashboards, the Grafana dashboard-linter rules: a `datasource`
variable used by every panel and target, `job`/`instance` (and `host`/`namespace` where the metric
has them) used by every query, `$__rate_interval` in every rate/increase, a unit on every panel,
stable uids of at most 40 characters, no panel without a query."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
EXPECTED_UIDS = {"resilience-fleet", "resilience-containers", "resilience-breakers", "resilience-device-agents"}
# Metrics that carry the exporter's `host`/`namespace` labels; queries on them must filter by the variables.
HOST_METRICS = ("workload_container_", "role_agent_")
NAMESPACE_METRICS = ("workload_container_",)


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel, target


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, expr) of every target of every shipped dashboard."""
    return [(d["uid"], p["title"], t["expr"]) for d in map(load, DASHBOARDS) for p, t in targets(d)]


def variable_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, variable, label_values query) of every query variable."""
    out = []
    for d in map(load, DASHBOARDS):
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                out.append((d["uid"], v["name"], v["query"]["query"] if isinstance(v["query"], dict) else v["query"]))
    return out


def substitute(expr: str, rate_interval: str = "1m") -> str:
    """A panel query as Grafana sends it with every variable at All."""
    expr = re.sub(r"\$(job|instance|host|namespace)\b", ".*", expr)
    return expr.replace("$__rate_interval", rate_interval).replace("$__range", "5m").replace("$__interval", "15s")


def queries_without_data(query: Callable[[str], list[dict[str, Any]]], dashboards: list[Path] = DASHBOARDS,
                         *, zero_is_empty: bool = False) -> list[str]:
    """Every panel query and variable of `dashboards` that errors or returns nothing from `query`
    (a Prometheus-API store); `zero_is_empty`: a count falling back to `or vector(0)` must be above 0."""
    bad = []
    for d in map(load, dashboards):
        for panel, target in targets(d):
            expr = substitute(target["expr"])
            try:
                rows = query(expr)
            except ValueError as exc:
                bad.append(f"{d['uid']} / {panel['title']}: error: {exc}")
                continue
            if not rows or (zero_is_empty and "vector(0)" in expr and all(float(r["value"][1]) == 0 for r in rows)):
                bad.append(f"{d['uid']} / {panel['title']}: no data: {expr}")
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                metric, label = re.fullmatch(r"label_values\((.+), (\w+)\)", q).groups()  # type: ignore[union-attr]
                if not query(f"group by ({label}) ({substitute(metric)})"):
                    bad.append(f"{d['uid']} / variable {v['name']}: no values: {q}")
    return bad


def test_the_four_dashboards_ship_with_stable_short_uids() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert set(uids) == EXPECTED_UIDS and len(uids) == len(set(uids))
    assert all(len(u) <= 40 and re.fullmatch(r"[a-z0-9-]+", u) for u in uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_follows_the_linter_rules(path: Path) -> None:
    d = load(path)
    names = {v["name"]: v for v in d["templating"]["list"]}
    assert names["datasource"]["type"] == "datasource" and names["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(names)
    for v in names.values():
        if v["type"] == "query":
            assert v["datasource"]["uid"] == "${datasource}" and v["includeAll"] and v["allValue"] == ".*", v["name"]
    assert d["panels"], path.name
    for panel in d["panels"]:
        title = panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", title
        assert panel.get("targets"), f"{title}: dead panel without a query"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
    for panel, target in targets(d):
        expr, title = target["expr"], panel["title"]
        assert target["datasource"]["uid"] == "${datasource}", title
        assert 'job=~"$job"' in expr and 'instance=~"$instance"' in expr, f"{title}: {expr}"
        for selector in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr):
            metric, matchers = selector
            if metric.startswith(HOST_METRICS) and "host" in names:
                assert 'host=~"$host"' in matchers, f"{title}: {metric} without $host"
            if metric.startswith(NAMESPACE_METRICS) and "namespace" in names:
                assert 'namespace=~"$namespace"' in matchers, f"{title}: {metric} without $namespace"
        for fn, window in re.findall(r"\b(rate|irate|increase)\((?:[^()\[]|\([^()]*\))*\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", f"{title}: {fn}(...[{window}]) must use $__rate_interval"


def test_provisioning_points_grafana_at_the_dashboards() -> None:
    provider = yaml.safe_load((ROOT / "grafana" / "provisioning" / "dashboards" / "resilience.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    datasource = yaml.safe_load((ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["type"] == "prometheus"


def test_image_comes_from_workload_container_info_and_agents_stay_apart() -> None:
    """`image` is only on workload_container_info (and the pull guard's `container=""` records):
    a query grouping a container family by image must join info or select the pull guard's records;
    role_agent_* panels keep two agents of one host apart (`agent`)."""
    for uid, title, expr in panel_queries():
        if re.search(r"by \([^)]*\bimage\b", expr) and "workload_container_" in expr:
            assert "group_left (image) workload_container_info" in expr or 'container=\\"\\"' in expr \
                or 'container=""' in expr, (uid, title, expr)
        if re.search(r"by \([^)]*\bhost\b[^)]*\) \(.*role_agent_", expr):
            assert re.search(r"by \([^)]*\bagent\b", expr), (uid, title, expr)
