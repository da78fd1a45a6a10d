"""node_exporter textfile output: one `.prom` file per writer, replaced atomically.

Devices that Prometheus cannot scrape directly publish through node_exporter's textfile
collector. Rendering is injected (`render() -> bytes`), so this module knows files, not metrics.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

from exporter.device.atomic import AtomicFile, Opener


class TextfileWriter(AtomicFile):
    """Writes `render()` to `directory/filename` for node_exporter's textfile collector.

    Failed writes are exported as `resilience_exporter_textfile_write_errors_total`.
    """

    def __init__(self, directory: str | Path, filename: str, render: Callable[[], bytes], *,
                 opener: Opener | None = None) -> None:
        if not filename.endswith(".prom") or "/" in filename:
            raise ValueError(f"textfile name must be a file name ending in .prom (node_exporter reads only those), "
                             f"got {filename!r}")
        super().__init__(Path(directory) / filename, render, kind="textfile", opener=opener)


class TextfilePublisher:
    """Calls `writer.write()` every `interval` seconds on a daemon thread until `stop()`."""

    def __init__(self, writer: AtomicFile, interval: float) -> None:
        if not interval > 0:
            raise ValueError(f"textfile interval must be > 0 seconds, got {interval!r}")
        self.writer = writer
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"textfile:{writer.path.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.writer.write()
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.writer.write()  # the final figures, so a stopped exporter leaves its last state behind
