"""README "systemd on a device", run under an alternate root, then checked the way systemd would:
`systemd-analyze verify` and `systemd-analyze security --offline` (exporter <= 4.0, the
root-run agent <= 5.0; Debian's prometheus unit scores 4.0).

No systemd is PID 1 here, so the block runs with `--root=` on the systemd tools and the root as a
prefix of `install` targets; `daemon-reload` and `start` cannot run and are left out.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import require_binary
from tests.readme import shell_blocks

ROOT = Path(__file__).resolve().parents[2]
UNITS = ["resilience-exporter.service", "role-agent.service", "role-agent.timer"]
MAX_EXPOSURE = {"resilience-exporter.service": 4.0, "role-agent.service": 5.0}


def under_root(block: str, root: Path) -> str:
    """The README block with every command pointed at `root` instead of this machine."""
    lines = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line)
        if words[0] == "install":
            target = root / words[-1].lstrip("/")
            lines.append(f"mkdir -p {shlex.quote(str(target if line.endswith('/') else target.parent))}")
            lines.append(shlex.join([*words[:-1], str(target) + ("/" if line.endswith("/") else "")]))
        elif words[0] == "systemd-sysusers" or words[:2] == ["systemctl", "enable"]:
            lines.append(shlex.join([words[0], f"--root={root}", *words[1:]]))
        elif words[:2] in (["systemctl", "daemon-reload"], ["systemctl", "start"]):
            continue  # needs systemd as PID 1
        else:
            raise AssertionError(f"README systemd block: a command this test does not know how to run: {line}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def device_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with systemd's own units, the exporter's entry point, and the README block run in it."""
    require_binary("systemd-analyze")
    root = tmp_path_factory.mktemp("device")
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    for binary in ("/usr/bin/install", "/usr/sbin/nologin"):
        (root / binary.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(binary, root / binary.lstrip("/"))
    entry = root / "usr/local/bin/resilience-exporter"  # what the README's pip install puts there
    entry.parent.mkdir(parents=True)
    shutil.copy2(Path(sys.executable).parent / "resilience-exporter", entry)  # the venv's entry point
    (block,) = shell_blocks("systemd on a device")
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", under_root(block, root)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_the_readme_block_creates_the_user_and_enables_the_units(device_root: Path) -> None:
    passwd = (device_root / "etc/passwd").read_text()
    assert re.search(r"^resilience-exporter:x:\d+:\d+:.*:/var/lib/resilience-exporter:/usr/sbin/nologin$", passwd, re.M)
    assert (device_root / "etc/systemd/system/multi-user.target.wants/resilience-exporter.service").is_symlink()
    assert (device_root / "etc/systemd/system/timers.target.wants/role-agent.timer").is_symlink()


def test_systemd_analyze_verify_accepts_the_units_without_a_warning(device_root: Path) -> None:
    result = subprocess.run([require_binary("systemd-analyze"), "verify", f"--root={device_root}",
                             *[f"/etc/systemd/system/{unit}" for unit in UNITS]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_systemd_analyze_verify_catches_a_broken_unit(device_root: Path, tmp_path: Path) -> None:
    broken = device_root / "etc/systemd/system/broken-exporter.service"
    text = (device_root / "etc/systemd/system/resilience-exporter.service").read_text()
    broken.write_text(text.replace("LimitNOFILE=65536", "LimitNOFILE=65536x"))
    try:
        result = subprocess.run([require_binary("systemd-analyze"), "verify", f"--root={device_root}",
                                 "/etc/systemd/system/broken-exporter.service"], capture_output=True, text=True,
                                timeout=120)
    finally:
        broken.unlink()
    assert "LimitNOFILE" in result.stderr or "6553" in result.stderr, result.stderr


@pytest.mark.parametrize("unit", sorted(MAX_EXPOSURE))
def test_units_are_hardened_to_the_exposure_budget(device_root: Path, unit: str) -> None:
    result = subprocess.run([require_binary("systemd-analyze"), "security", "--offline=true", f"--root={device_root}",
                             "--no-pager", unit], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    (exposure,) = re.findall(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", result.stdout)
    print(f"\n{unit}: exposure {exposure}")
    assert float(exposure) <= MAX_EXPOSURE[unit]


def test_units_use_debians_textfile_directory_and_skip_missing_paths() -> None:
    exporter = (ROOT / "deploy/systemd/resilience-exporter.service").read_text()
    agent = (ROOT / "deploy/systemd/role-agent.service").read_text()
    for unit in (exporter, agent):
        assert "LimitNOFILE=65536" in unit
        (paths,) = re.findall(r"^ReadWritePaths=(.*)$", unit, re.M)
        assert all(path.startswith("-/") for path in paths.split()), paths  # missing: skipped, not 226/NAMESPACE
        assert "/var/lib/prometheus/node-exporter" in unit and "/var/lib/node_exporter" not in unit
    assert "StateDirectory=resilience-exporter" in exporter and "StateDirectory=fleet" in agent


def test_stopping_the_agent_unit_lets_run_once_end_the_agents_group_first() -> None:
    # KillMode=mixed: systemd's SIGTERM goes to run-once alone, which forwards it to the agent's
    # process group and waits agent.kill_grace (tests/integration/test_device_hardening.py shows
    # that part); systemd's SIGKILL to what is left comes only after TimeoutStopSec.
    from exporter.config.schema import AgentConfig

    agent = (ROOT / "deploy/systemd/role-agent.service").read_text()
    assert re.search(r"^KillMode=mixed$", agent, re.M)
    (timeout,) = re.findall(r"^TimeoutStopSec=(\d+)s$", agent, re.M)
    assert int(timeout) > float(AgentConfig().kill_grace) + 5
