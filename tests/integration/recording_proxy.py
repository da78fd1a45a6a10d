"""A unix-socket proxy in front of dockerd that records every HTTP request line it forwards."""
from __future__ import annotations

import re
import socket
import threading
from pathlib import Path

REQUEST_LINE = re.compile(rb"(?:^|\r\n)([A-Z]+) (\S+) HTTP/1\.[01]\r\n")


class RecordingProxy:
    def __init__(self, upstream: Path, path: Path) -> None:
        self.upstream, self.path = str(upstream), str(path)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(self.path)
        self._server.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        tail = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record:
                    window = tail + data
                    with self._lock:
                        self.requests.extend((m.group(1).decode(), m.group(2).decode())
                                             for m in REQUEST_LINE.finditer(window) if m.end() > len(tail))
                    tail = window[-256:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def methods(self) -> set[str]:
        with self._lock:
            return {m for m, _ in self.requests}

    def close(self) -> None:
        self._closed = True
        self._server.close()
        Path(self.path).unlink(missing_ok=True)
