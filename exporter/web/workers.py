"""Connection threads that are reused: a new thread only when none is idle (a cached thread pool).

stdlib's ThreadingMixIn starts a thread per connection, and `Thread.start()` makes the accept
loop wait until that thread has run, which under the GIL's 5 ms switch interval serialises a
burst of connections behind rendering threads. Scrapers come back every interval, so a thread
that finished a connection waits `idle_seconds` for the next one instead of exiting.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

Job = Callable[[], None]


class WorkerPool:
    """`submit(job)` runs `job` on an idle worker thread, or on a new one when none is idle."""

    def __init__(self, *, idle_seconds: float = 60.0, name: str = "http") -> None:
        self._jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._idle_seconds = idle_seconds
        self._name = name
        self.started_total = 0

    def submit(self, job: Job) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1  # that worker is promised this job
                self._jobs.put(job)
                return
            self.started_total += 1
            number = self.started_total
        threading.Thread(target=self._work, args=(job,), name=f"{self._name}-{number}", daemon=True).start()

    def _work(self, job: Job) -> None:
        while True:
            job()
            job = None  # type: ignore[assignment]  # drop the finished connection before waiting
            with self._lock:
                self._idle += 1
            try:
                job = self._jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:  # a job submitted meanwhile was promised to an idle worker: take it
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        return

    @property
    def idle(self) -> int:
        return self._idle
