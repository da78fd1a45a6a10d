"""A Docker-only exporter does not pay for what it does not use (issue 8's RSS goals)."""
from __future__ import annotations

import subprocess
import sys

# Each of these costs 0.5-15 MiB of RSS; none is needed to watch Docker and answer scrapes.
LAZY = {"kubernetes", "asyncio", "jinja2", "apscheduler", "bcrypt"}

CODE = """
import sys
from exporter.app import Exporter
from exporter.config import load
from exporter.sources.docker.watcher import DockerWatcher
app = Exporter(load(flags={"docker.enabled": "false"}))
app.exposition.render()
print(",".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(",")))))
"""


def loaded(*extra_flags: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", CODE, ",".join(sorted(LAZY)), *extra_flags],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return set(filter(None, out.stdout.strip().split(",")))


def test_docker_only_exporter_loads_none_of_the_optional_heavy_modules() -> None:
    assert loaded() == set()

