"""The reflector's outer loop, shared by the sources: run a session, back off, resume.

A session lists and watches until the engine goes away; any error is classified for the log,
the back-off grows while sessions keep failing before they connect and starts over after one
that did, and a stop request ends the loop at once.
"""
from __future__ import annotations

import threading
from typing import Callable

from exporter.resilience import BackoffStrategy, CircuitOpenError, classify


def run_sessions(session: Callable[[], None], *, stop: threading.Event, backoff: BackoffStrategy,
                 connected: Callable[[], bool], down: Callable[[str, float], None]) -> None:
    """Call `session()` until `stop` is set; after each end report `down(problem, delay)` and wait."""
    attempt = 0
    while not stop.is_set():
        try:
            session()
            problem = "session ended"
        except CircuitOpenError as exc:
            problem = str(exc)
        except Exception as exc:  # any engine or transport failure: back off and resume
            problem = f"{classify(exc).value}: {exc}"
        if stop.is_set():
            return
        attempt = 1 if connected() else attempt + 1  # a session that connected starts the back-off over
        delay = backoff.delay(attempt)
        down(problem, delay)
        stop.wait(delay)
