"""Our textfiles through a real node_exporter: same values, no scrape errors under SIGKILL, full/read-only dirs."""
from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from bench.textfile import kill_trials, start_node_exporter
from exporter.device.status import AgentRun, AgentStatus, ProbeResult, ProbeStatus
from exporter.device.textfile import TextfileWriter
from exporter.metrics import ResilienceCollector
from exporter.metrics.exposition import render_collectors
from exporter.metrics.device import AgentCollector, ProbeCollector, TextfileCollector
from exporter.resilience import ResilienceRegistry
from tests.harness import free_port, require_binary, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


class Node:
    def __init__(self, directory: Path) -> None:
        require_binary("prometheus-node-exporter")
        self.port = free_port()
        self.proc = start_node_exporter(directory, self.port)

    def scrape(self) -> Samples:
        return samples(requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text)

    def scrape_error(self) -> float:
        return self.scrape()[("node_textfile_scrape_error", ())]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path)
    yield n
    n.proc.terminate()
    n.proc.wait(timeout=10)


def device_text(writers: list[TextfileWriter]) -> tuple[list, bytes]:  # type: ignore[type-arg]
    status = AgentStatus("edge", "pi-1")
    status.record_run(AgentRun(1.7e9, 1.7e9 + 12.5, 12.25, 3, "compose_failed", 2, ("x",)))
    status.record_skipped()
    probes = ProbeStatus()
    probes.record("api", ProbeResult(True, 0.125, 1.7e9, 200), "success")
    registry = ResilienceRegistry()
    breaker = registry.breaker("agent:edge")
    breaker.on_error(RuntimeError("x"))
    registry.breaker("probe:api").force_open()
    collectors = [AgentCollector(status), ProbeCollector(probes), ResilienceCollector(registry),
                  TextfileCollector(writers)]
    return collectors, render_collectors(collectors)


def test_node_exporter_exposes_exactly_our_values(tmp_path: Path, node: Node) -> None:
    writers: list[TextfileWriter] = []
    collectors, _ = device_text(writers)
    writer = TextfileWriter(tmp_path, "resilience_exporter.prom", lambda: render_collectors(collectors))
    writers.append(writer)
    assert writer.write()
    ours = samples(render_collectors(collectors).decode())
    assert ('circuit_breaker_state', (('name', 'probe:api'),)) in ours and len(ours) >= 25
    def read_by_node() -> Samples | None:
        got = node.scrape()
        return got if ("role_agent_runs_total", (("agent", "edge"), ("host", "pi-1"), ("result", "failure"))) in got else None

    theirs = wait_until(read_by_node, timeout=10, message="node_exporter to read the file")
    assert theirs[("node_textfile_scrape_error", ())] == 0
    for key, value in ours.items():
        assert theirs.get(key) == value, key


def test_textfile_passes_promtool_check_metrics(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    _, text = device_text([])
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == b"" and result.stderr.strip() == b"", result


def test_scrape_error_stays_zero_across_200_rewrites_while_writers_are_sigkilled(tmp_path: Path, node: Node) -> None:
    tally = kill_trials(tmp_path, 20, port=node.port, min_rewrites=200, max_delay=0.05)
    assert tally.rewrites >= 200
    assert tally.scrapes > 0 and tally.reads > 0
    assert (tally.partial, tally.scrape_errors) == (0, 0), tally
    assert node.scrape_error() == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".prom")) == ["bench.prom"]


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs (root can fill it, or remount it read-only); unmounted in teardown."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({done.stderr.strip()}); tests/unit/test_device_textfile.py "
                    "covers the same paths with an injected opener")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def failing_write(mnt: Path, caplog: pytest.LogCaptureFixture, make_fail: str) -> tuple[TextfileWriter, str]:
    content = [b"# HELP edge_value A value.\n# TYPE edge_value gauge\nedge_value 1\n"]
    writer = TextfileWriter(mnt, "x.prom", lambda: content[0])
    assert writer.write()
    previous = (mnt / "x.prom").read_text()
    if make_fail == "full":
        filler = 0
        try:
            while True:
                (mnt / f"fill{filler}").write_bytes(b"\0" * 4096)
                filler += 1
        except OSError:
            pass
        content[0] = content[0] + b"".join(b'edge_series{i="%d"} 1\n' % i for i in range(5000))
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
    with caplog.at_level(logging.INFO, logger="exporter.device.atomic"):
        assert not writer.write()
        assert not writer.write()
    return writer, previous


@pytest.mark.parametrize("make_fail,errname", [("full", "ENOSPC"), ("read-only", "EROFS")])
def test_full_or_read_only_directory_keeps_previous_file_logs_once_and_counts(
        tiny_tmpfs: Path, caplog: pytest.LogCaptureFixture, make_fail: str, errname: str) -> None:
    writer, previous = failing_write(tiny_tmpfs, caplog, make_fail)
    assert (tiny_tmpfs / "x.prom").read_text() == previous
    assert writer.errors_total == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    fields = errors[0].fields  # type: ignore[attr-defined]
    assert errors[0].getMessage() == "cannot write textfile; keeping the previous file"
    assert fields["err"].startswith(errname) and fields["path"] == str(tiny_tmpfs / "x.prom") and fields["remedy"]
    text = render_collectors([TextfileCollector([writer])]).decode()
    assert "resilience_exporter_textfile_write_errors_total 2" in text
    assert not [p for p in tiny_tmpfs.iterdir() if p.name.startswith(".x.prom")]  # no temp file left behind
