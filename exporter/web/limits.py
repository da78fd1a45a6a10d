"""What keeps the HTTP server answering under load: file limits, a connection cap, a scrape cap.

A thread serves each connection (so a slow scrape never blocks a health check), which makes
every open connection cost a thread and a file descriptor. Idle and half-sent connections are
the cheap attack: without a cap they exhaust descriptors and the accept loop spins on EMFILE.
So connections are counted, and at the cap the longest-waiting connection that is not being
answered is closed to make room (nginx reuses idle keep-alive connections the same way); a
scraper that sends its request at once is therefore always served.
"""
from __future__ import annotations

import logging
import resource
import socket
import threading
import time
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)

RESERVED_FDS = 128
"""Descriptors kept free for what is not a client: engine sockets, files, the listen socket."""


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (the Go runtime does this for every Go exporter)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a container runtime may forbid it: keep the soft limit
            log.warning("cannot raise the open-file limit", extra={"fields": {"soft": soft, "hard": hard, "err": exc}})
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def somaxconn(default: int = 4096) -> int:
    """The kernel's cap on a listen backlog; listen() with it instead of stdlib's 5."""
    try:
        return max(int(Path("/proc/sys/net/core/somaxconn").read_text()), 128)
    except (OSError, ValueError):
        return default


def connection_cap(configured: int, open_files: int) -> int:
    """`configured` connections, but never more than the descriptors left after RESERVED_FDS."""
    room = max(open_files - RESERVED_FDS, 16)
    if configured > room:
        log.warning("web.max_connections lowered to fit the open-file limit; raise LimitNOFILE to allow more",
                    extra={"fields": {"configured": configured, "cap": room, "open_files": open_files}})
    return min(configured, room)


class ConnectionTable:
    """Open connections, each waiting (for a request, evictable) or busy (being answered).

    `admit` is called by the accept loop for every new connection; at the cap it closes the
    connection that has waited longest. When every connection is busy the new one is refused.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._waiting: OrderedDict[socket.socket, float] = OrderedDict()  # oldest first
        self._busy: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.evicted_total = 0
        self.refused_total = 0

    def __len__(self) -> int:
        return len(self._waiting) + len(self._busy)

    def admit(self, conn: socket.socket) -> bool:
        with self._lock:
            while len(self) >= self.cap and self._waiting:
                self._evict_oldest()
            if len(self) >= self.cap:
                self.refused_total += 1
                return False
            self._waiting[conn] = time.monotonic()
            return True

    def make_room(self) -> bool:
        """Close the longest-waiting connection (the accept loop ran out of descriptors)."""
        with self._lock:
            if not self._waiting:
                return False
            self._evict_oldest()
            return True

    def _evict_oldest(self) -> None:
        conn, _ = self._waiting.popitem(last=False)
        self.evicted_total += 1
        try:  # wakes the connection's thread, blocked in recv, with EOF; it closes the socket.
            socket.socket.shutdown(conn, socket.SHUT_RDWR)  # the TCP socket, not TLS's close_notify
        except OSError:
            pass

    def waiting(self, conn: socket.socket) -> None:
        with self._lock:
            if conn in self._busy:
                self._busy.discard(conn)
                self._waiting[conn] = time.monotonic()

    def busy(self, conn: socket.socket) -> bool:
        """Mark `conn` as being answered; False when it was evicted meanwhile (then drop it)."""
        with self._lock:
            if self._waiting.pop(conn, None) is None:
                return False
            self._busy.add(conn)
            return True

    def remove(self, conn: socket.socket) -> None:
        with self._lock:
            self._waiting.pop(conn, None)
            self._busy.discard(conn)
