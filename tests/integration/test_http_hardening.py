"""Issue 16's HTTP attacks against the real process (short versions of bench/http_attack.py).

Timed bounds are the issue's acceptance figures. Two cores are shared with other work, so a
latency figure gets up to three trials and must be met by one of them: the server before the
fix failed every trial (1 s SYN retransmits behind a backlog of 5, an accept loop spinning on
EMFILE), so a pass still means the fix holds. CPU is CPU time, which contention does not inflate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, TypeVar

import bcrypt
import pytest

from bench import http_attack
from bench.http_attack import Target

R = TypeVar("R")
TRIALS = 3


def best_of(trial: Callable[[], R], ok: Callable[[R], bool]) -> list[R]:
    """Run `trial` until `ok` holds, at most TRIALS times; every result, for the failure message."""
    results = []
    for _ in range(TRIALS):
        results.append(trial())
        if ok(results[-1]):
            break
    return results


@pytest.fixture
def target() -> Iterator[Target]:
    # The header timeout is long so that the connection cap, not the timeout, does the work.
    server = http_attack.start_exporter(flags=["--web.read-header-timeout=300s"], nofile=1024)
    try:
        yield server
    finally:
        server.stop()


def test_3000_idle_connections_under_ulimit_1024_leave_scrapes_answering_and_the_cpu_idle(target: Target) -> None:
    results = best_of(lambda: http_attack.idle_flood(target, connections=3000, scrapes=100),
                      lambda r: r.errors == 0 and r.p99 <= 0.100)
    last = results[-1]
    summary = [(r.errors, round(r.p99 * 1000, 1), round(r.idle_cpu_share * 100, 1)) for r in results]
    assert last.errors == 0, f"(errors, p99 ms, cpu %) per trial: {summary}"
    assert last.p99 <= 0.100, f"(errors, p99 ms, cpu %) per trial: {summary}"
    assert all(r.idle_cpu_share < 0.10 for r in results), f"(errors, p99 ms, cpu %) per trial: {summary}"
    assert http_attack.scrape(target)[1] == 200
    assert "web.max_connections lowered to fit the open-file limit" in target.log.read_text()  # type: ignore[union-attr]


def test_50_new_connection_scrapers_see_no_error_and_p99_within_100ms(target: Target) -> None:
    results = best_of(lambda: http_attack.new_connection_scrapers(target, workers=50, seconds=4),
                      lambda r: r.errors == 0 and r.p99 <= 0.100)
    summary = [(r.requests, r.errors, round(r.p99 * 1000, 1)) for r in results]
    assert all(r.errors == 0 for r in results), f"(requests, errors, p99 ms) per trial: {summary}"
    assert results[-1].p99 <= 0.100, f"(requests, errors, p99 ms) per trial: {summary}"
    assert all(r.requests >= 50 * 4 * 0.9 for r in results), summary  # every scraper kept its pace


def test_the_server_header_names_no_python_version(target: Target) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        server = conn.getresponse().getheader("Server")
    finally:
        conn.close()
    assert server is not None and server.startswith("resilience-exporter/")
    assert "Python" not in server and "CPython" not in server


def test_an_unknown_user_takes_as_long_as_a_wrong_password(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=10)).decode()
    web.write_text(f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    server = http_attack.start_exporter(flags=[f"--web.config.file={web}"])
    try:
        unknown, wrong = http_attack.auth_medians(server, "prometheus")
        assert http_attack.scrape(server, auth=("nobody", "x"))[1] == 401
        assert http_attack.scrape(server, auth=("prometheus", "s3cret"))[1] == 200
    finally:
        server.stop()
    assert 0.5 <= unknown / wrong <= 2.0, f"median unknown user {unknown * 1000:.1f} ms, wrong password {wrong * 1000:.1f} ms"
