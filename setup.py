"""Build hook: record the git commit a wheel is built from, so `--version` can name it.

Everything else about the package is in pyproject.toml. The revision comes from
RESILIENCE_EXPORTER_REVISION when set (a build from an sdist or an exported tree), else from
`git rev-parse HEAD` in the checkout being built; it lands in the wheel as exporter/REVISION.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def source_revision() -> str:
    if os.environ.get("RESILIENCE_EXPORTER_REVISION"):
        return os.environ["RESILIENCE_EXPORTER_REVISION"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class BuildPyWithRevision(build_py):
    """build_py that also writes exporter/REVISION into the build tree (never into the source)."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib, "exporter", "REVISION")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source_revision() + "\n")


setup(cmdclass={"build_py": BuildPyWithRevision})
