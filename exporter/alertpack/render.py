"""Render the alert pack from its templates and a site's settings.

Sites set their selectors, runbook URL and dashboard URL once in a small YAML file; every rule,
the Slack template and the promtool unit tests take them from there. The committed `alerts/`
directory is this module's output with the defaults (a test renders it again and compares).

Templates use `[[ ]]` / `[% %]` as Jinja delimiters: rules and the Slack template are full of
Go template `{{ }}` that must pass through untouched.
"""
from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import jinja2
import yaml

TEMPLATES = "templates"
SELECTOR_KINDS = ("exporter", "textfile", "node_exporter", "promtail")
RULE_ENGINES = ("prometheus", "vmalert")


class PackConfigError(ValueError):
    """A site file that cannot be used, with the file and the key that is wrong."""


def _default_selectors() -> dict[str, str]:
    return {
        # series the exporter serves on /metrics, scraped by a job named after it
        "exporter": 'job=~".*resilience.*"',
        # series read from our textfiles through node_exporter (whose job is node_exporter's):
        # every series we write there carries writer="<file name>", a label no other file has
        "textfile": 'writer!=""',
        # node_exporter's own node_textfile_* series
        "node_exporter": 'job=~".*node.*"',
        # Promtail's own series (the log shipper beside the agent on devices)
        "promtail": 'job=~".*promtail.*"',
    }


def _default_test_labels() -> dict[str, dict[str, str]]:
    return {"exporter": {"job": "resilience-exporter"}, "textfile": {"job": "node", "writer": "role_agent_edge"},
            "node_exporter": {"job": "node"}, "promtail": {"job": "promtail"}}


@dataclass(frozen=True)
class PackConfig:
    """A site's settings for the alert pack; every field has a working default."""

    selectors: Mapping[str, str] = field(default_factory=_default_selectors)
    runbook_url: str = "https://github.com/fleet/resilience-exporter/blob/main/docs/runbooks/{alertname}.md"
    dashboard_url: str = "https://grafana.example.com"
    textfile_names: str = "role_agent_.+|resilience_exporter"
    test_labels: Mapping[str, Mapping[str, str]] = field(default_factory=_default_test_labels)
    # Alertmanager groups by alert and cause, not by host: the same failure on 10 devices is one
    # Slack message listing the 10 hosts (each alert still carries its host and resolves alone).
    group_by: str = "alertname, reason, image, name"
    # A device is offline when none of its pushed heartbeat series has a sample for
    # device_offline_after; devices unseen for device_forget_after are forgotten (decommissioned).
    device_heartbeat: str = 'up{host!=""}'
    device_offline_after: str = "10m"
    device_forget_after: str = "1d"
    # "vmalert": leave out what vmalert 1.79 (Debian's) rejects (keep_firing_for).
    rule_engine: str = "prometheus"

    def runbook(self, alertname: str) -> str:
        return self.runbook_url.replace("{alertname}", alertname)


def load_config(path: str | Path | None) -> PackConfig:
    """Defaults, overridden key by key by the YAML file at `path` (None: defaults only)."""
    if path is None:
        return PackConfig()
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PackConfigError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise PackConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(PackConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PackConfigError(f"{path}: unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
    base = PackConfig()
    values: dict[str, Any] = {}
    for key, value in data.items():
        default = getattr(base, key)
        if isinstance(default, Mapping):
            if not isinstance(value, dict):
                raise PackConfigError(f"{path}: {key}: expected a mapping, got {value!r}")
            bad = sorted(set(value) - set(SELECTOR_KINDS))
            if bad:
                raise PackConfigError(f"{path}: {key}.{bad[0]}: unknown kind; known: {', '.join(SELECTOR_KINDS)}")
            value = {**default, **value}
        elif not isinstance(value, str) or not value:
            raise PackConfigError(f"{path}: {key}: expected a non-empty string, got {value!r}")
        values[key] = value
    for key in ("device_offline_after", "device_forget_after"):
        if key in values and not re.fullmatch(r"(\d+[smhdw])+", values[key]):
            raise PackConfigError(f'{path}: {key}: expected a duration like "10m" or "1d", got {values[key]!r}')
    if values.get("rule_engine", "prometheus") not in RULE_ENGINES:
        raise PackConfigError(f"{path}: rule_engine: expected one of {', '.join(RULE_ENGINES)}, got {values['rule_engine']!r}")
    if "group_by" in values and not all(re.fullmatch(r"[a-zA-Z_]\w*", n) for n in _names(values["group_by"])):
        raise PackConfigError(f"{path}: group_by: expected label names separated by commas, got {values['group_by']!r}")
    if "runbook_url" in values and "{alertname}" not in values["runbook_url"]:
        raise PackConfigError(f"{path}: runbook_url: must contain {{alertname}}, got {values['runbook_url']!r}")
    return PackConfig(**{**dataclasses.asdict(base), **values})


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _series_labels(labels: Mapping[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def _exp_labels(labels: Mapping[str, str]) -> str:
    return ", ".join(f'{k}: "{v}"' for k, v in labels.items())


def absent_labels(selector: str) -> dict[str, str]:
    """The labels `absent(up{selector})` carries: those of the selector's equality matchers."""
    return dict(re.findall(r'(?:^|,)\s*([a-zA-Z_]\w*)\s*=\s*"([^"]*)"', selector))


def _environment(config: PackConfig) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("exporter.alertpack", TEMPLATES), undefined=jinja2.StrictUndefined,
        variable_start_string="[[", variable_end_string="]]", block_start_string="[%", block_end_string="%]",
        comment_start_string="[#", comment_end_string="#]", keep_trailing_newline=True, autoescape=False)
    sel = config.selectors

    def ours(expr: str) -> str:
        """`expr` (`SEL` where the selector goes) for series from /metrics or from our textfiles."""
        return f"({expr.replace('SEL', sel['exporter'])} or {expr.replace('SEL', sel['textfile'])})"

    def with_image(expr: str) -> str:
        """`expr` over container families (`SEL` where the selector goes) with `image` joined in,
        for series from /metrics or from our textfiles.

        `image` is only on workload_container_info (kube-state-metrics' shape); the pull guard's
        desired images (`container=""`) carry it themselves and pass as they are.
        """
        expr = " ".join(expr.split())  # one line: the template may wrap it
        parts = []
        for selector in (sel["exporter"], sel["textfile"]):
            containers, images = selector + ',container!=""', selector + ',container=""'
            parts.append(f"({expr.replace('SEL', containers)})\n"
                         f"  * on (job, instance, source, host, namespace, pod, container) group_left (image)\n"
                         f"  workload_container_info{{{containers}}}\n"
                         f"or\n({expr.replace('SEL', images)})")
        return "\nor\n".join(parts)

    env.filters["indent_expr"] = lambda text, n: text.replace("\n", "\n" + " " * n)
    env.filters["q"] = json.dumps  # a YAML double-quoted scalar, whatever the URL holds
    env.globals.update(
        sel=sel, ours=ours, with_image=with_image, runbook=config.runbook,
        dashboard_url=config.dashboard_url.rstrip("/"), textfile_names=config.textfile_names,
        test_labels=config.test_labels, absent_labels=absent_labels(sel["exporter"]),
        group_by=_names(config.group_by), heartbeat=config.device_heartbeat, rule_engine=config.rule_engine,
        offline_after=config.device_offline_after, forget_after=config.device_forget_after,
        series={k: _series_labels(v) for k, v in config.test_labels.items()},
        exp={k: _exp_labels(v) for k, v in config.test_labels.items()})
    return env


def render_pack(config: PackConfig) -> dict[str, str]:
    """Relative output path -> text, for every file of the pack."""
    env = _environment(config)
    root = resources.files("exporter.alertpack") / TEMPLATES
    out: dict[str, str] = {}
    for name in sorted(env.list_templates()):
        if not name.endswith(".j2"):
            out[name] = (root / name).read_text()  # copied as is (alertmanager.yml)
            continue
        out[name[:-3]] = env.get_template(name).render()
    return out


def write_pack(config: PackConfig, out: str | Path) -> list[Path]:
    """Render the pack into `out` (created if needed); returns the files written."""
    written = []
    for name, text in render_pack(config).items():
        path = Path(out) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
