"""`resilience-exporter status`: a `kubectl get pods` for any host, read from /api/state.

Renders the exporter's own status document (the page and the API show the same) as a table,
wide table or JSON; `--watch` redraws it until interrupted.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable, Mapping, TextIO

import requests

from exporter.printable import printable
from exporter.web import humanize
from exporter.web.status import StatusDocument


def fetch(url: str, *, verify: bool | str = True, timeout: float = 10.0) -> dict[str, Any]:
    response = requests.get(url.rstrip("/") + "/api/state", timeout=timeout, verify=verify)
    response.raise_for_status()
    return response.json()


def _table(headers: list[str], rows: list[list[str]]) -> str:
    rows = [[printable(str(c)) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def render(state: Mapping[str, Any], *, wide: bool = False, now: float | None = None) -> str:
    """The table (or wide table) of a status document as /api/state answers it."""
    doc = StatusDocument.from_dict(state)
    now = time.time() if now is None else now

    def ago(t: float | None) -> str:
        return humanize.ago(t, now)

    def until(t: float | None) -> str:
        return humanize.until(t, now)

    headers = ["NAME", "SOURCE", "STATUS", "RESTARTS", "EXIT", "AGE", "NEXT RETRY"]
    if wide:
        headers += ["NAMESPACE", "HOST", "IMAGE", "REMEDY"]
    rows = []
    for c in doc.containers:
        restarts = str(c.restarts) + (f" ({ago(c.last_terminated_at)} ago)" if c.last_terminated_at else "")
        row = [c.name or c.image, c.source, c.status, restarts, "" if c.last_exit_code is None else str(c.last_exit_code),
               ago(c.created_at), until(c.next_retry_at)]
        if wide:
            row += [c.namespace, c.host, c.image, c.remedy if c.classification != "ok" else ""]
        rows.append(row)
    out = [_table(headers, rows) if rows else "No containers tracked."]
    if doc.breakers:
        out.append("")
        out.append(_table(["BREAKER", "STATE", "FAILURES", "REJECTED", "RETRY AFTER"], [
            [b.name, b.state.upper(), str(b.failures_in_window), str(b.calls.get("rejected", 0)),
             f"{b.retry_after:.0f}s" if b.retry_after else ""] for b in doc.breakers]))
    if doc.agents:
        out.append("")
        out.append(_table(["AGENT", "LAST RUN", "RESULT", "EXIT", "FAILURE", "CONSECUTIVE FAILURES", "NEXT RUN"], [
            [a.name, ago(a.last_run.ended_at) + " ago" if a.last_run else "never",
             ("success" if a.last_run.success else "failed") if a.last_run else "",
             str(a.last_run.exit_code) if a.last_run else "", a.last_failure_type or "",
             str(a.consecutive_failures), until(a.next_run_at)] for a in doc.agents]))
    down = [s.name for s in doc.sources if not s.up]
    if down:
        out.append("")
        out.append(printable(f"WARNING: source down: {', '.join(down)}"))
    return "\n".join(out)


def run(url: str, *, output: str = "table", watch: bool = False, interval: float = 2.0, verify: bool | str = True,
        stream: TextIO = sys.stdout, sleep: Callable[[float], None] = time.sleep, iterations: int | None = None) -> int:
    """Print the status once, or redraw it every `interval` seconds with `watch`."""
    count = 0
    while True:
        try:
            state = fetch(url, verify=verify)
        except requests.RequestException as exc:
            print(f"resilience-exporter status: cannot read {url}/api/state: {exc}", file=sys.stderr)
            return 1
        if output == "json":
            text = json.dumps(state, indent=2, default=str)
        else:
            text = render(state, wide=output == "wide")
        if watch:
            stream.write("\x1b[H\x1b[2J")  # clear the terminal like `watch`
        stream.write(text + "\n")
        stream.flush()
        count += 1
        if not watch or (iterations is not None and count >= iterations):
            return 0
        try:
            sleep(interval)
        except KeyboardInterrupt:
            return 0
