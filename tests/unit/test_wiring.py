"""The house: one wiring place builds serve and agent from the configuration, one registry per
process built from resilience.*, and the package's arrows point one way."""
from __future__ import annotations

import ast
from pathlib import Path

from exporter.app import Agent, Exporter
from exporter.config import ProbeConfig, load
from exporter.resilience import REGISTRY

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"
RESILIENCE = {"resilience.retry_budget_ratio": "0.25", "resilience.breaker_failure_threshold": "7",
              "resilience.breaker_open_timeout": "2m"}


def modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PACKAGE.parent)): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def test_agent_mode_honours_the_resilience_settings_like_serve() -> None:
    agent = Agent(load(flags={**RESILIENCE, "agent.command": ["true"], "agent.name": "a"}))
    assert agent.registry.budget.ratio == 0.25
    assert agent.runner.policy.registry is agent.registry  # the agent's retries spend that budget
    assert agent.registry.breaker("other").failure_threshold == 7
    serve = Exporter(load(flags={**RESILIENCE, "docker.enabled": "false"}))
    assert serve.registry.budget.ratio == 0.25 and serve.registry.breaker("docker:engine").open_timeout == 120.0


def test_neither_command_touches_the_library_default_registry() -> None:
    before = ({b.name for b in REGISTRY.breakers()}, {s.name for s in REGISTRY.retry_snapshots()})
    config = load(flags={"docker.enabled": "false", "agent.command": ["true"], "agent.name": "c"})
    config.probes = [ProbeConfig(name="api", url="http://127.0.0.1:1/")]
    serve = Exporter(config)
    assert {"agent:c", "probe:api"} <= {b.name for b in serve.registry.breakers()}
    Agent(load(flags={"agent.command": ["true"], "agent.name": "d"}))
    assert ({b.name for b in REGISTRY.breakers()}, {s.name for s in REGISTRY.retry_snapshots()}) == before


def test_no_module_is_longer_than_400_lines_but_the_docker_lifecycle_being_rewritten() -> None:
    long = {name: len((PACKAGE.parent / name).read_text().splitlines()) for name in modules()}
    assert {n for n, lines in long.items() if lines > 400} <= {"exporter/sources/docker/lifecycle.py"}


def test_no_private_name_is_imported_from_another_module() -> None:
    private = [(name, node.module, alias.name) for name, tree in modules().items() for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) for alias in node.names
               if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert private == []


def test_config_imports_nothing_of_the_rooms_that_read_it() -> None:
    rooms = ("exporter.device", "exporter.sources", "exporter.metrics", "exporter.web", "exporter.state", "exporter.app")
    found = [(name, node.module) for name, tree in modules().items() if name.startswith("exporter/config/")
             for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(rooms)]
    assert found == []


def test_the_readme_walk_names_what_the_code_has() -> None:
    readme = (PACKAGE.parent / "README.md").read_text()
    walk = readme[readme.index("## How it fits together"):readme.index("## Layout")]
    import exporter.app as app

    assert "`exporter/app.py`" in walk and all(hasattr(app, name) for name in ("Exporter", "Agent", "build_registry"))
    for room in ("sources", "state", "metrics", "resilience", "device", "web"):
        assert f"{room}/" in walk and (PACKAGE / room).is_dir(), room
    for module in ("schema", "validation", "loading"):
        assert module in walk and (PACKAGE / "config" / f"{module}.py").is_file(), module
