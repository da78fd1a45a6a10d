"""A Docker-only exporter does not pay for what it does not use (issues 8 and 18: RSS goals).

Each deferred import is checked both ways: absent from a `serve` with default settings, present
once the setting that needs it is on (so a check that could never fail would show here).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

# Modules (exact names) a Docker-only `serve` never imports, and what each costs or serves.
DEFERRED = {
    "kubernetes",                  # ~15 MiB: kubernetes.enabled
    "msgspec",                     # ~1.3 MiB: kubernetes.enabled (the pod decode, sources/kubernetes/wire.py)
    "asyncio",                     # asyncio users of the resilience library only
    "jinja2",                      # the HTML page, on its first request
    "apscheduler",                 # ~4 MiB: agent.command
    "bcrypt",                      # basic_auth_users in a web config file
    "yaml",                        # ~1 MiB: a config or web config file
    "hypothesis",                  # tests only
    "difflib",                     # the "did you mean" of a mistyped config key
    "ctypes",                      # ~0.35 MiB: never (the gzip trailer's CRC is combined with zlib.crc32)
    "exporter.web.webconfig",      # web.config_file (TLS, basic auth)
    "exporter.device.agent",       # agent.command
    "exporter.device.health",      # agent.health_file
    "exporter.device.probes",      # probes
    "exporter.device.textfile",    # textfile.directory
    "exporter.device.atomic",      # textfile.directory
    "exporter.metrics.textfile",   # textfile.directory
    "prometheus_client.parser",    # textfile.directory (the collision check)
    "exporter.sources.kubernetes",
    "exporter.sources.docker.pullguard",  # docker.pull_guard
    "exporter.alertpack",          # `alerts render`
    "exporter.resilience.retry",   # RetryPolicy: agent.command, probes
    "exporter.resilience.tracker",  # RetryTracker: docker.pull_guard
    "exporter.resilience.patterns",  # the library's decorators, never the exporter's own
    "exporter.resilience.unavailable",  # the library's WSGI middleware
    "exporter.resilience.clock",   # FakeClock: tests
}

# Builds, starts (port 0) and stops a `serve` with the given flags (and config file), after one
# scrape; prints which DEFERRED modules got imported.
CODE = """
import json, sys
from exporter.app import Exporter
from exporter.config import load
from exporter.sources.docker.watcher import DockerWatcher
deferred, flags, file = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3] or None
app = Exporter(load(file=file, flags={"docker.enabled": "false", "web.listen_address": "127.0.0.1:0", **flags}))
app.start()
try:
    app.exposition.render()
    app.exposition.render_gzip(openmetrics=True)
finally:
    app.stop()
print(json.dumps(sorted(set(deferred) & set(sys.modules))))
"""


def loaded(flags: dict[str, str] | None = None, config: str = "", tmp_path: Path | None = None) -> set[str]:
    file = ""
    if config:
        assert tmp_path is not None
        file = str(tmp_path / "config.yaml")
        Path(file).write_text(config)
    out = subprocess.run([sys.executable, "-c", CODE, json.dumps(sorted(DEFERRED)), json.dumps(flags or {}), file],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_docker_only_exporter_loads_none_of_the_deferred_modules() -> None:
    assert loaded() == set()


@pytest.mark.parametrize("flags, config, needed", [
    ({}, "host: edge-1\n", {"yaml"}),
    ({"web.config_file": "{web}"}, "", {"yaml", "exporter.web.webconfig"}),
    ({"web.config_file": "{web_users}"}, "", {"yaml", "exporter.web.webconfig", "bcrypt"}),
    ({"textfile.directory": "{tmp}"}, "",
     {"exporter.device.textfile", "exporter.device.atomic", "exporter.metrics.textfile", "prometheus_client.parser"}),
    ({}, "agent:\n  command: [/bin/true]\n  every: 1h\n",  # apscheduler's package imports asyncio
     {"yaml", "apscheduler", "asyncio", "exporter.device.agent", "exporter.resilience.retry"}),
    ({}, "agent:\n  command: [/bin/true]\n  every: 1h\n  health_file: {tmp}/health.json\n",
     {"yaml", "apscheduler", "asyncio", "exporter.device.agent", "exporter.device.health", "exporter.device.atomic",
      "exporter.resilience.retry"}),
    ({}, "probes:\n  - {name: api, url: 'http://127.0.0.1:9/health', interval: 1h}\n",
     {"yaml", "exporter.device.probes", "exporter.resilience.retry"}),
], ids=["config-file", "web-config-file", "web-config-users", "textfile", "agent", "agent-health-file", "probes"])
def test_each_deferred_module_comes_with_the_setting_that_needs_it(
        flags: dict[str, str], config: str, needed: set[str], tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text("{}\n")  # a web config without TLS or users
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode()
    (tmp_path / "users.yaml").write_text(f"basic_auth_users:\n  alice: '{hashed}'\n")
    fill = {"{tmp}": str(tmp_path), "{web}": str(tmp_path / "web.yaml"), "{web_users}": str(tmp_path / "users.yaml")}
    for placeholder, value in fill.items():
        flags = {k: v.replace(placeholder, value) for k, v in flags.items()}
        config = config.replace(placeholder, value)
    assert loaded(flags, config, tmp_path) == needed


def test_star_import_of_the_resilience_library_binds_every_name_of_its_all() -> None:
    """`from exporter.resilience import *` (in a fresh interpreter: nothing loaded before) binds each
    name of __all__, lazy or not, to the object its module defines; an unknown name is an AttributeError."""
    script = ("import importlib\n"
              "from exporter.resilience import *\n"
              "import exporter.resilience as r\n"
              "missing = [n for n in r.__all__ if n not in globals()]\n"
              "wrong = [n for n in r._LAZY if globals()[n] is not getattr("
              "importlib.import_module('exporter.resilience.' + r._LAZY[n]), n)]\n"
              "try:\n    r.NoSuchName\nexcept AttributeError:\n    pass\nelse:\n    wrong.append('NoSuchName')\n"
              "print(missing, wrong)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[] []"


def test_dir_of_the_resilience_library_lists_its_lazy_names_before_their_first_use() -> None:
    """dir() (what IPython completes and help() lists) shows every name of __all__ while the
    modules behind the lazy ones are still unloaded."""
    script = ("import sys\n"
              "import exporter.resilience as r\n"
              "listed = set(dir(r))\n"
              "print(sorted(set(r.__all__) - listed), 'exporter.resilience.retry' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[] False"
