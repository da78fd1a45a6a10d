"""The status page in real headless Chromium while a container crash-loops on the test dockerd."""
from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import requests

from tests.harness import require_binary, running_exporter, url_of, wait_until
from tests.integration.dockerd import IMAGE, PrivateDockerd

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("chromium")
    profile = tmp_path / f"profile-{uuid.uuid4().hex[:6]}"
    return subprocess.run([binary, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


def test_page_shows_the_crash_loop_badge(dockerd: PrivateDockerd, tmp_path: Path) -> None:
    name = f"page-{uuid.uuid4().hex[:6]}"
    with running_exporter({"docker.host": dockerd.url, "host": "pi-kitchen"}) as app:
        url = url_of(app, "/")
        dockerd.run("--name", name, "--restart", "always", IMAGE, "sh", "-c", "sleep 0.2; exit 3")
        wait_until(lambda: any(c["name"] == name and c["status"] == "CrashLoopBackOff"
                               for c in requests.get(url + "api/state", timeout=5).json()["containers"]),
                   message="crash loop reported", timeout=30, interval=0.05)
        dom = chromium(tmp_path, "--dump-dom", url)
        assert dom.returncode == 0, dom.stderr[-2000:]
        html = dom.stdout
        assert "resilience-exporter on pi-kitchen" in html
        row = html[html.index(f"<code>{name}</code>"):]
        row = row[:row.index("</tr>")]
        assert 'class="badge transient" data-reason="CrashLoopBackOff">CrashLoopBackOff</span>' in row
        assert "read its logs from the previous run" in row  # the remedy column
        assert 'class="badge closed">closed</span>' in html  # the docker:engine breaker
        shot = tmp_path / "status.png"
        result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", url)
        assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 10_000  # a rendered page, not a blank
        Path("/tmp/resilience-exporter-status.png").write_bytes(shot.read_bytes())  # for a human look
        dockerd.cli("rm", "-f", name, check=False)
