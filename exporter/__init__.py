"""resilience-exporter: Kubernetes-grade failure visibility for Docker and Kubernetes fleets.

Data flows one way: sources (engines) -> state (normalized store) -> metrics (rendered text)
-> web (HTTP). The `resilience` subpackage is a standalone retry/back-off/breaker library.
"""
from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"


def build_revision() -> str:
    """The git commit this copy was built from, for `--version` and the image's label.

    A wheel carries it in exporter/REVISION (written by setup.py at build time); a checkout run in
    place (editable install, deploy/run.sh) asks git; otherwise "unknown".
    """
    here = Path(__file__).parent
    try:
        return (here / "REVISION").read_text().strip() or "unknown"
    except OSError:
        pass
    import subprocess  # only on this rare path: keep `import exporter` light
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
