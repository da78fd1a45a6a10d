"""The HTTP attacks of issue 16 against the real process: idle-connection flood, new-connection
scrapers, a silent TLS client, and basic-auth timing by user name.

Each attack runs against this tree's exporter ("ours"), the server as it was before the
hardening ("before", commit BEFORE extracted with `git archive`), and, where it applies,
cheroot behind client_python's WSGI app (the well-kept library the issue asked us to weigh;
`pip install cheroot`). All in one run, same machine, same open-file limit. The short test
(tests/integration/test_http_hardening.py) uses the same functions with smaller counts.
"""
from __future__ import annotations

import base64
import contextlib
import http.client
import os
import random
import resource
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from bench.common import Row

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "3b0b84a"  # the last commit with the stdlib-default server (backlog 5, no timeouts, no cap)
CHEROOT_SERVER = """
import resource, sys
from cheroot import wsgi
from prometheus_client import make_wsgi_app
srv = wsgi.Server(("127.0.0.1", int(sys.argv[1])), make_wsgi_app(), numthreads=10, request_queue_size=4096, timeout=10)
if len(sys.argv) > 2:
    from cheroot.ssl.builtin import BuiltinSSLAdapter
    srv.ssl_adapter = BuiltinSSLAdapter(sys.argv[2], sys.argv[3])
srv.start()
"""


# --- the process under attack ----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _limit_files(nofile: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))  # soft and hard, as `ulimit -n`
    return apply


@dataclass
class Target:
    """A server process on 127.0.0.1:port; `cpu_seconds()` and `rss_kib()` read /proc."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    tls: bool = False
    log: Path | None = None

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self, key: str = "VmRSS") -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_exporter(*, flags: Sequence[str] = (), nofile: int = 1024, pythonpath: Path = ROOT,
                   name: str = "ours", tls: bool = False, timeout: float = 30.0) -> Target:
    """`python -m exporter` with no engine, under `ulimit -n nofile`, listening on a free port."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="http-attack-", suffix=".log")[1])
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    env = {k: v for k, v in env.items() if not k.startswith("RESILIENCE_EXPORTER_")}
    cmd = [sys.executable, "-m", "exporter", f"--web.listen-address=127.0.0.1:{port}", "--docker.enabled=false",
           "--log.level=warn", *flags]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=pythonpath, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_limit_files(nofile))
    target = Target(name, proc, port, tls, log)
    _wait_listening(target, timeout)
    return target


def start_cheroot(*, nofile: int = 1024, cert: tuple[Path, Path] | None = None, timeout: float = 30.0) -> Target:
    port = free_port()
    args = [sys.executable, "-c", CHEROOT_SERVER, str(port), *(map(str, cert or ()))]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_limit_files(nofile))
    target = Target("cheroot", proc, port, cert is not None)
    _wait_listening(target, timeout)
    return target


def _wait_listening(target: Target, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.proc.returncode}: "
                               f"{target.log.read_text()[-2000:] if target.log else ''}")
        try:
            socket.create_connection(("127.0.0.1", target.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    target.stop()
    raise RuntimeError(f"{target.name} did not listen within {timeout}s")


# --- clients ---------------------------------------------------------------------------------
def _insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def scrape(target: Target, *, timeout: float = 5.0, path: str = "/metrics",
           auth: tuple[str, str] | None = None) -> tuple[float, int]:
    """One GET on a new connection: (seconds, status); status 0 for a connection error or timeout."""
    if not target.tls:
        return _raw_get(target.port, path, timeout, auth)
    start = time.perf_counter()
    conn: http.client.HTTPConnection
    if target.tls:
        conn = http.client.HTTPSConnection("127.0.0.1", target.port, timeout=timeout, context=_insecure())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=timeout)
    headers = {"Connection": "close"}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        status = 0
    finally:
        conn.close()
    return time.perf_counter() - start, status


def _raw_get(port: int, path: str, timeout: float, auth: tuple[str, str] | None) -> tuple[float, int]:
    """GET over a plain socket, read to EOF: a cheap client leaves the CPU to the server under test."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if auth is not None:
        request += "Authorization: Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode() + "\r\n"
    start = time.perf_counter()
    chunks = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall((request + "\r\n").encode())
            while chunk := conn.recv(65536):
                chunks.append(chunk)
    except OSError:
        return time.perf_counter() - start, 0
    head = b"".join(chunks[:1])[:12].split()
    status = int(head[1]) if len(head) > 1 and head[0].startswith(b"HTTP/") and head[1].isdigit() else 0
    return time.perf_counter() - start, status


def p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@dataclass
class FloodResult:
    held: int
    idle_cpu_share: float          # of one core, over the idle window with the connections held
    settle_seconds: float          # until the server had taken in the flood (CPU < 5 % over 0.5 s)
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    rss_kib: int = 0

    @property
    def p99(self) -> float:
        return p99(self.latencies) if self.latencies else float("inf")


def hold_connections(port: int, n: int, *, deadline: float = 20.0) -> list[socket.socket]:
    """Open up to `n` TCP connections that never send a byte, one blocking connect at a time (so
    a short backlog cannot drop them: each waits for room), for at most `deadline` seconds or
    until 20 connects in a row time out (the server stopped accepting)."""
    held: list[socket.socket] = []
    end, misses = time.monotonic() + deadline, 0
    while len(held) < n and time.monotonic() < end and misses < 20:
        s = socket.socket()
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            misses += 1
            continue
        held.append(s)
        misses = 0
    return held


def raise_own_file_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            raise RuntimeError(f"the load generator needs {need} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))


def cpu_share(target: Target, seconds: float) -> float:
    """The server's CPU over the next `seconds`, as a share of one core."""
    cpu0, t0 = target.cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    return (target.cpu_seconds() - cpu0) / (time.monotonic() - t0)


def idle_flood(target: Target, *, connections: int = 3000, scrapes: int = 100, idle_window: float = 3.0,
               settle: float = 15.0, deadline: float = 60.0, scrape_timeout: float = 5.0) -> FloodResult:
    """Hold `connections` idle connections; once the server has taken them in (at most `settle`
    seconds), measure its CPU over `idle_window` while they sit, then scrape `scrapes` times."""
    raise_own_file_limit(connections + 256)
    start = time.monotonic()
    held = hold_connections(target.port, connections)
    try:
        while time.monotonic() - start < settle and cpu_share(target, 0.5) >= 0.05:
            pass
        settled = time.monotonic() - start
        result = FloodResult(len(held), cpu_share(target, idle_window), settled)
        end = time.monotonic() + deadline
        for _ in range(scrapes):
            if time.monotonic() > end:
                result.errors += 1
                continue
            seconds, status = scrape(target, timeout=scrape_timeout)
            result.latencies.append(seconds)
            result.errors += status != 200
        result.rss_kib = target.rss_kib("VmHWM")
        return result
    finally:
        for s in held:
            s.close()


@dataclass
class ScraperResult:
    requests: int
    errors: int
    latencies: list[float]

    @property
    def p99(self) -> float:
        return p99(self.latencies) if self.latencies else float("inf")


def new_connection_scrapers(target: Target, *, workers: int = 50, seconds: float = 20.0, interval: float | None = 0.5,
                            herd: bool = True, timeout: float = 5.0) -> ScraperResult:
    """`workers` scrapers, each on a new connection every `interval` seconds for `seconds`.

    `herd`: all at the same instant (50 SYNs at once: what overflowed the old backlog of 5);
    else each from a random phase, as Prometheus spreads its targets. `interval` None: back to
    back (latency is then workers / throughput, by Little's law)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    begin = time.monotonic() + 0.1
    stop_at = begin + seconds
    rng = random.Random(16)

    def loop(phase: float) -> None:
        tick = 0
        while time.monotonic() < stop_at:
            if interval is not None:
                at = begin + phase + tick * interval
                tick += 1
                if at >= stop_at:
                    return
                if (wait := at - time.monotonic()) > 0:
                    time.sleep(wait)
            took, status = scrape(target, timeout=timeout)
            with lock:
                latencies.append(took)
                errors[0] += status != 200

    threads = [threading.Thread(target=loop, args=(0.0 if herd else rng.random() * (interval or 0),), daemon=True)
               for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + timeout + 5)
    return ScraperResult(len(latencies), errors[0], latencies)


def silent_tls_client(target: Target, *, scrapes: int = 5, timeout: float = 5.0) -> list[float]:
    """Latencies of scrapes made while one client has opened a TLS connection and sends nothing."""
    quiet = socket.create_connection(("127.0.0.1", target.port))
    try:
        time.sleep(0.2)
        return [scrape(target, timeout=timeout)[0] for _ in range(scrapes)]
    finally:
        quiet.close()


def auth_medians(target: Target, user: str, *, rounds: int = 15) -> tuple[float, float]:
    """Median seconds of a 401 for an unknown user and for `user` with a wrong password."""
    unknown, wrong = [], []
    for i in range(rounds):  # interleaved, so CPU contention hits both alike
        unknown.append(scrape(target, auth=(f"nobody{i}", "guess"))[0])
        wrong.append(scrape(target, auth=(user, f"guess{i}"))[0])
    return statistics.median(unknown), statistics.median(wrong)


@contextlib.contextmanager
def before_tree() -> Iterator[Path]:
    """The exporter package as of BEFORE, extracted to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="exporter-before-") as tmp:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BEFORE, "exporter"], check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def _has_cheroot() -> bool:
    try:
        import cheroot  # noqa: F401
    except ImportError:
        return False
    return True


def _ms(seconds: float) -> float:
    return seconds * 1000


def rows(*, connections: int = 3000, workers: int = 50, seconds: float = 20.0) -> list[Row]:
    out: list[Row] = []
    peers: list[tuple[str, Callable[[], Target]]] = []
    with before_tree() as before, tempfile.TemporaryDirectory() as tmp:
        cert = _self_signed(Path(tmp))
        web = Path(tmp) / "web.yml"
        web.write_text(f"tls_server_config:\n  cert_file: {cert[0]}\n  key_file: {cert[1]}\n")
        peers.append(("before", lambda: start_exporter(pythonpath=before, name="before")))
        if _has_cheroot():
            peers.append(("cheroot", lambda: start_cheroot()))

        def measure(start: Callable[[], Target]) -> dict[str, float]:
            figures: dict[str, float] = {}
            target = start()
            try:
                figures["rss_start"] = target.rss_kib() / 1024
                figures["idle_p50"] = _ms(statistics.median(scrape(target)[0] for _ in range(50)))
                scrapers = new_connection_scrapers(target, workers=workers, seconds=seconds)
                figures.update(scr_p99=_ms(scrapers.p99), scr_errors=scrapers.errors, scr_n=scrapers.requests)
                spread = new_connection_scrapers(target, workers=workers, seconds=seconds / 2, herd=False)
                figures.update(spread_p99=_ms(spread.p99), spread_errors=spread.errors)
                closed = new_connection_scrapers(target, workers=workers, seconds=seconds / 2, interval=None)
                figures.update(closed_p99=_ms(closed.p99), closed_errors=closed.errors, closed_n=closed.requests)
                flood = idle_flood(target, connections=connections, deadline=60.0, scrape_timeout=2.0)
                figures.update(flood_p99=_ms(flood.p99), flood_errors=flood.errors, flood_cpu=flood.idle_cpu_share * 100,
                               flood_settle=flood.settle_seconds)
                alive = target.proc.poll() is None and scrape(target, timeout=5)[1] == 200
                figures["alive_after"] = float(alive)
                figures["rss_peak"] = target.rss_kib("VmHWM") / 1024 if target.proc.poll() is None else float("nan")
            finally:
                target.stop()
            return figures

        ours = measure(lambda: start_exporter())
        for peer_name, start in peers:
            theirs = measure(start)
            out += [
                Row(f"http: scrape p50, no load", ours["idle_p50"], theirs["idle_p50"], "ms", peer_name),
                Row(f"http: {workers} new-connection scrapers together every 0.5s for {seconds:g}s, p99", ours["scr_p99"], theirs["scr_p99"], "ms",
                    peer_name, "<= 100 ms", ours["scr_p99"] <= 100),
                Row(f"http: {workers} new-connection scrapers, errors", ours["scr_errors"], theirs["scr_errors"],
                    f"of {ours['scr_n']:.0f}/{theirs['scr_n']:.0f}", peer_name, "0", ours["scr_errors"] == 0),
                Row(f"http: {workers} scrapers every 0.5s, random phase, p99", ours["spread_p99"], theirs["spread_p99"],
                    "ms", peer_name),
                Row(f"http: {workers} scrapers back to back {seconds / 2:g}s, p99", ours["closed_p99"],
                    theirs["closed_p99"], "ms", peer_name),
                Row(f"http: {workers} scrapers back to back, errors", ours["closed_errors"], theirs["closed_errors"],
                    f"of {ours['closed_n']:.0f}/{theirs['closed_n']:.0f}", peer_name),
                Row(f"http: {connections} idle conns (ulimit -n 1024), 100 scrapes p99", ours["flood_p99"],
                    theirs["flood_p99"], "ms", peer_name, "<= 100 ms", ours["flood_p99"] <= 100),
                Row(f"http: {connections} idle conns, scrape errors", ours["flood_errors"], theirs["flood_errors"],
                    "of 100", peer_name, "0", ours["flood_errors"] == 0),
                Row(f"http: {connections} idle conns, time to take them in", ours["flood_settle"], theirs["flood_settle"],
                    "s", peer_name),
                Row(f"http: {connections} idle conns, server CPU", ours["flood_cpu"], theirs["flood_cpu"], "% core",
                    peer_name, "< 10 %", ours["flood_cpu"] < 10),
                Row("http: server still answers after the flood", ours["alive_after"], theirs["alive_after"], "(1=yes)",
                    peer_name, "1", ours["alive_after"] == 1),
                Row("http: RSS at start", ours["rss_start"], theirs["rss_start"], "MiB", peer_name),
                Row("http: peak RSS over the run", ours["rss_peak"], theirs["rss_peak"], "MiB", peer_name),
            ]
        # One client opens a TLS connection and says nothing: do other scrapes wait for it?
        tls_targets = [start_exporter(flags=[f"--web.config.file={web}"], tls=True),
                       start_exporter(flags=[f"--web.config.file={web}"], tls=True, pythonpath=before, name="before")]
        if _has_cheroot():
            tls_targets.append(start_cheroot(cert=cert))
        try:
            silent = {t.name: _ms(max(silent_tls_client(t, timeout=15))) for t in tls_targets}
        finally:
            for t in tls_targets:
                t.stop()
        for peer_name in silent:
            if peer_name != "ours":
                # the goal: nobody waits for the silent client's 10 s handshake timeout
                out.append(Row("http: TLS scrape max while a client stays silent", silent["ours"], silent[peer_name],
                               "ms", peer_name, "< 1 s", silent["ours"] < 1000))
    return out


if __name__ == "__main__":
    from bench.common import format_table

    print(format_table(rows()))
