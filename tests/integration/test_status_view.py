"""Status API, `resilience-exporter status` and the page against the exporter on a real dockerd."""
from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Iterator

import pytest
import requests

from exporter.app import Exporter
from tests.harness import running_exporter, url_of, wait_until
from tests.integration.dockerd import IMAGE, PrivateDockerd


@pytest.fixture(scope="module")
def running(dockerd: PrivateDockerd) -> Iterator[tuple[Exporter, str, str, str]]:
    crash, done = f"loop-{uuid.uuid4().hex[:6]}", f"done-{uuid.uuid4().hex[:6]}"
    with running_exporter({"docker.host": dockerd.url, "host": "edge-7"}) as app:
        url = url_of(app, "")
        try:
            dockerd.run("--name", crash, "--restart", "always", IMAGE, "sh", "-c", "sleep 0.2; exit 3")
            dockerd.run("--name", done, IMAGE, "true")

            def statuses() -> dict[str, str]:
                return {c["name"]: c["status"]
                        for c in requests.get(f"{url}/api/state", timeout=5).json()["containers"]}

            wait_until(lambda: statuses().get(crash) == "CrashLoopBackOff" and statuses().get(done) == "Completed",
                       message="crash loop and completed container in /api/state", timeout=30, interval=0.05)
            yield app, url, crash, done
        finally:
            for name in (crash, done):
                dockerd.cli("rm", "-f", name, check=False)


def test_api_state_lists_containers_breakers_and_sources(running: tuple[Exporter, str, str, str]) -> None:
    _, url, crash, done = running
    state = requests.get(f"{url}/api/state", timeout=5).json()
    by_name = {c["name"]: c for c in state["containers"]}
    loop = by_name[crash]
    assert loop["classification"] == "transient" and loop["restarts"] >= 1 and loop["last_exit_code"] == 3
    assert loop["remedy"].startswith("The container keeps exiting")
    assert by_name[done]["status"] == "Completed" and by_name[done]["last_exit_code"] == 0
    assert state["host"] == "edge-7" and state["sources"][0] == {**state["sources"][0], "name": "docker", "up": True}
    assert any(b["name"] == "docker:engine" and b["state"] == "closed" for b in state["breakers"])


def test_api_events_newest_first_and_filtered(running: tuple[Exporter, str, str, str]) -> None:
    _, url, crash, _ = running
    events = requests.get(f"{url}/api/events", params={"container": crash}, timeout=5).json()
    assert events and all(e["container"] == crash for e in events)
    assert [e["at"] for e in events] == sorted((e["at"] for e in events), reverse=True)
    loops = requests.get(f"{url}/api/events", params={"reason": "CrashLoopBackOff", "limit": 5}, timeout=5).json()
    assert loops and len(loops) <= 5 and all("CrashLoopBackOff" in (e["to"], e["from"]) for e in loops)
    assert requests.get(f"{url}/api/events", params={"limit": "x"}, timeout=5).status_code == 400


def status(url: str, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "exporter", "status", "--url", url, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_status_command_table_wide_and_json(running: tuple[Exporter, str, str, str]) -> None:
    _, url, crash, done = running
    table = status(url)
    header, *lines = table.splitlines()
    assert header.split() == ["NAME", "SOURCE", "STATUS", "RESTARTS", "EXIT", "AGE", "NEXT", "RETRY"]
    loop_line = next(line for line in lines if line.startswith(crash))
    assert "CrashLoopBackOff" in loop_line and " ago)" in loop_line and loop_line.split()[1] == "docker"
    assert any(line.startswith(done) and "Completed" in line for line in lines)
    assert "BREAKER" in table and "docker:engine" in table
    wide = status(url, "-o", "wide")
    assert "REMEDY" in wide.splitlines()[0] and "read its logs from the previous run" in wide
    doc = json.loads(status(url, "-o", "json"))
    assert {c["name"] for c in doc["containers"]} >= {crash, done}


def test_status_command_reports_an_unreachable_exporter() -> None:
    out = subprocess.run([sys.executable, "-m", "exporter", "status", "--url", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "cannot read http://127.0.0.1:9/api/state" in out.stderr
