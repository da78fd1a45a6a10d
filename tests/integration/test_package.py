"""README "pip", run as written in a fresh virtualenv: wheel, `twine check`, install, `--version`;
and the wheel's metadata: SPDX license, the license text, project URLs, classifiers."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

from tests.readme import shell_blocks

ROOT = Path(__file__).resolve().parents[2]
WHEEL = ROOT / "dist" / "resilience_exporter-0.1.0-py3-none-any.whl"


def test_the_readme_pip_install_works_and_names_the_revision(tmp_path: Path) -> None:
    (block,) = shell_blocks("pip")
    shutil.rmtree(ROOT / "dist", ignore_errors=True)
    venv.create(tmp_path / "venv", with_pip=True)
    tools = Path(sys.executable).parent  # twine comes with the test extra
    env = {**os.environ, "PATH": f"{tmp_path / 'venv' / 'bin'}:{tools}:{os.environ['PATH']}",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    assert "PASSED" in result.stdout and "WARNING" not in result.stdout
    assert result.stdout.strip().splitlines()[-1] == f"resilience-exporter 0.1.0 (revision {revision})"

    with zipfile.ZipFile(WHEEL) as wheel:
        metadata = wheel.read("resilience_exporter-0.1.0.dist-info/METADATA").decode()
        license_text = wheel.read("resilience_exporter-0.1.0.dist-info/licenses/LICENSE").decode()
        assert wheel.read("exporter/REVISION").decode().strip() == revision
    headers = [line for line in metadata.split("\n\n", 1)[0].splitlines()]
    assert "License-Expression: Apache-2.0" in headers
    assert not any(line.startswith("License:") for line in headers)  # the deprecated free-text field
    assert "Project-URL: Source, https://github.com/fleet/resilience-exporter" in headers
    assert "Classifier: Topic :: System :: Monitoring" in headers
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert license_text == (ROOT / "LICENSE").read_text()
