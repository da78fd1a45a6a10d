"""Textfile writes under SIGKILL: partial reads seen by a reader and by node_exporter.

Each trial starts a writer process that rewrites one `.prom` file in a loop, kills it with
SIGKILL at a random point, and meanwhile a reader thread reads the file and scrapes a real
node_exporter (textfile collector on that directory). A read is partial when the file is cut
short or node_exporter reports `node_textfile_scrape_error 1`. Ours (temp file + fsync +
rename) is compared with the naive `open(path, "w").write(...)` in place.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from bench.common import Row

ROOT = Path(__file__).resolve().parents[1]
SERIES = 2000  # ~90 kB: big enough that a kill often lands mid-write
FILENAME = "bench.prom"

WRITER = r"""
import os, sys
from pathlib import Path
directory, mode, series, first = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
from exporter.device.atomic import replace_atomically
target = directory / "bench.prom"
head = "# HELP bench_textfile_series One of many series.\n# TYPE bench_textfile_series gauge\n"
tail = ("# HELP bench_textfile_complete Written last: present only in a whole file.\n"
        "# TYPE bench_textfile_complete gauge\nbench_textfile_complete %d\n" % series)
print("ready", flush=True)
n = first  # trial k writes k*1000000+1, +2, ...: the file tells which writer completed how many
while True:
    n += 1
    data = (head + "".join('bench_textfile_series{i="%d"} %d\n' % (i, n) for i in range(series)) + tail).encode()
    if mode == "atomic":
        replace_atomically(target, data)
    else:
        with open(target, "wb") as f:
            f.write(data)
"""


def whole(text: str, series: int = SERIES) -> bool:
    """The file a writer produces, complete: every series with one value, then the end marker."""
    lines = text.splitlines()
    if len(lines) != series + 5 or lines[-1] != f"bench_textfile_complete {series}":
        return False
    values = {line.rsplit(" ", 1)[1] for line in lines[2:2 + series]}
    return len(values) == 1


def generation(text: str) -> int:
    """How many rewrites the last writer completed (every series carries that count)."""
    for line in text.splitlines():
        if line.startswith("bench_textfile_series{"):
            return int(line.rsplit(" ", 1)[1])
    return 0


STRIDE = 1_000_000


def spawn_writer(directory: Path, trial: int, mode: str = "atomic", series: int = SERIES) -> subprocess.Popen[bytes]:
    """Writer process number `trial`, returned once it is about to start writing."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(directory), mode, str(series), str(trial * STRIDE)],
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def start_node_exporter(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """node_exporter with only the textfile collector, on loopback; ready when it serves /metrics."""
    binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if binary is None:
        raise FileNotFoundError("prometheus-node-exporter is not installed")
    proc = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--collector.disable-defaults",
                             "--collector.textfile", f"--collector.textfile.directory={directory}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).ok:
                return proc
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("node_exporter did not start")


def node_scrape_ok(port: int, series: int = SERIES) -> bool:
    """node_exporter read the file without error and saw all of it (or no file yet)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    if "node_textfile_scrape_error 0" not in text:
        return False
    seen = text.count("bench_textfile_series{")
    return seen in (0, series) and (seen == 0 or f"bench_textfile_complete {series}" in text)


@dataclass
class Tally:
    reads: int = 0
    partial: int = 0
    scrapes: int = 0
    scrape_errors: int = 0
    rewrites: int = 0
    trials: int = 0
    notes: list[str] = field(default_factory=list)


class Reader(threading.Thread):
    """Reads the file and scrapes node_exporter in a loop, counting what was not whole."""

    def __init__(self, directory: Path, port: int | None, tally: Tally) -> None:
        super().__init__(daemon=True)
        self.path, self.port, self.tally = directory / FILENAME, port, tally
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.check()

    def check(self) -> None:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            text = None
        if text is not None:
            self.tally.reads += 1
            if not whole(text):
                self.tally.partial += 1
        if self.port is not None:
            self.tally.scrapes += 1
            if not node_scrape_ok(self.port):
                self.tally.scrape_errors += 1


def kill_trials(directory: Path, trials: int, *, mode: str = "atomic", port: int | None = None,
                max_delay: float = 0.05, min_rewrites: int = 0, seed: int = 1) -> Tally:
    """Run `trials` (or more, until `min_rewrites` completed rewrites) SIGKILLed writers."""
    rng = random.Random(seed)
    tally = Tally()
    reader = Reader(directory, port, tally)
    reader.start()
    try:
        while tally.trials < trials or tally.rewrites < min_rewrites:
            trial = tally.trials + 1
            proc = spawn_writer(directory, trial, mode)
            time.sleep(rng.uniform(0, max_delay))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
            tally.trials += 1
            last = _generation(directory)
            tally.rewrites += last % STRIDE if last // STRIDE == trial else 0
            reader.check()  # the state a reader finds right after the kill
    finally:
        reader.stop.set()
        reader.join()
    return tally


def _generation(directory: Path) -> int:
    try:
        return generation((directory / FILENAME).read_text())
    except FileNotFoundError:
        return 0


def rows(trials: int = 1000) -> list[Row]:
    from tests.harness import free_port  # the same free-port helper the tests use

    out: list[Row] = []
    results: dict[str, Tally] = {}
    for mode in ("atomic", "naive"):
        with tempfile.TemporaryDirectory(prefix=f"bench-textfile-{mode}-") as tmp:
            port = free_port()
            node = start_node_exporter(Path(tmp), port)
            try:
                start = time.perf_counter()
                results[mode] = kill_trials(Path(tmp), trials, mode=mode, port=port)
                results[mode].notes.append(f"{time.perf_counter() - start:.1f}s")
            finally:
                node.terminate()
                node.wait(timeout=10)
    ours, peer = results["atomic"], results["naive"]
    out.append(Row(f"textfile partial reads, {trials} SIGKILL trials ({ours.reads} reads)",
                   ours.partial, peer.partial, "reads", "naive open+write", goal="0", met=ours.partial == 0))
    out.append(Row(f"node_textfile_scrape_error or cut file ({ours.scrapes} scrapes)",
                   ours.scrape_errors, peer.scrape_errors, "scrapes", "naive open+write", goal="0",
                   met=ours.scrape_errors == 0))
    out.append(Row("completed rewrites per trial (fsync + rename cost)", ours.rewrites / max(ours.trials, 1),
                   peer.rewrites / max(peer.trials, 1), "writes", "naive open+write"))
    return out
