"""node_exporter textfile output: one `.prom` file per writer, replaced atomically.

Devices that Prometheus cannot scrape directly publish through node_exporter's textfile
collector. Rendering is injected (`render() -> bytes`), so this module knows files, not metrics;
so is the collision check (`check(ours, others) -> problems`), which this module feeds with the
directory's other `.prom` files at every write.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Mapping

from exporter.device.atomic import AtomicFile, Opener, WriteCounts

log = logging.getLogger(__name__)

CollisionCheck = Callable[[bytes, Mapping[str, bytes]], list[str]]
"""`check(our text, {other file name: its text})` -> one line per colliding file."""

MAX_NEIGHBOUR_BYTES = 4 << 20  # a larger neighbour is not read for the check (node_exporter reads it anyway)


class TextfileWriter(AtomicFile):
    """Writes `render()` to `directory/filename` for node_exporter's textfile collector.

    Failed writes are exported as `resilience_exporter_textfile_write_errors_total`; writes
    that found a collision with another file of the directory as
    `resilience_exporter_textfile_collisions_total` (logged when the set of collisions changes).
    """

    def __init__(self, directory: str | Path, filename: str, render: Callable[[], bytes], *,
                 opener: Opener | None = None, check: CollisionCheck | None = None,
                 counts: WriteCounts | None = None) -> None:
        if not filename.endswith(".prom") or "/" in filename:
            raise ValueError(f"textfile name must be a file name ending in .prom (node_exporter reads only those), "
                             f"got {filename!r}")
        super().__init__(Path(directory) / filename, render, kind="textfile", opener=opener, counts=counts)
        self._check = check
        self._last_collisions: list[str] = []

    @property
    def collisions_total(self) -> int:
        return self.counts.collisions_total

    def neighbours(self) -> dict[str, bytes]:
        """The other `.prom` files of the directory, as node_exporter will read them."""
        out = {}
        try:
            entries = list(os.scandir(self.path.parent))
        except OSError:
            return out
        for entry in entries:
            if entry.name == self.path.name or not entry.name.endswith(".prom"):
                continue
            try:
                if entry.is_file() and entry.stat().st_size <= MAX_NEIGHBOUR_BYTES:
                    out[entry.name] = Path(entry.path).read_bytes()
            except OSError:
                continue  # removed or unreadable meanwhile: node_exporter will say so
        return out

    def _data(self) -> bytes:
        data = self._render()
        if self._check is None:
            return data
        found = self._check(data, self.neighbours())
        if found != self._last_collisions:
            if found:
                log.error("textfile collides with another file in its directory; node_exporter will drop "
                          "or reject samples", extra={"fields": {
                              "path": str(self.path), "collisions": "; ".join(found),
                              "remedy": "give each writer its own agent name or textfile.file, and rename or "
                                        "relabel the other file's series"}})
            else:
                log.info("textfile no longer collides with another file", extra={"fields": {"path": str(self.path)}})
            self._last_collisions = found
        if found:
            self.counts.collisions_total += 1
            data = self._render()  # so the file itself already shows the count
        return data


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
