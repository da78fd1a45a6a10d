"""Debian's docker-registry on loopback: one open instance and one behind htpasswd basic auth,
sharing storage, so an image pushed to the first is refused by the second without credentials."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import bcrypt
import requests

from tests.harness import free_port, require_binary, wait_until


class LocalRegistry:
    def __init__(self, *, auth: bool, storage: Path | None = None) -> None:
        self.binary = require_binary("docker-registry")
        self.root = Path(tempfile.mkdtemp(prefix="re-registry-", dir="/tmp"))
        self.storage = storage or self.root / "storage"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = ["version: 0.1", "log: {level: warn}",
                  f"storage: {{filesystem: {{rootdirectory: {self.storage}}}, delete: {{enabled: true}}}}",
                  f"http: {{addr: {self.address}}}"]
        if auth:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text("tester:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode() + "\n")
            config.append(f"auth: {{htpasswd: {{realm: test, path: {htpasswd}}}}}")
        (self.root / "config.yml").write_text("\n".join(config) + "\n")
        self.log = open(self.root / "registry.log", "wb")
        self.proc = subprocess.Popen([self.binary, "serve", str(self.root / "config.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self._up, timeout=30, message=f"docker-registry on {self.address}")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited; see {self.root / 'registry.log'}")
        return requests.get(f"http://{self.address}/v2/", timeout=2).status_code in (200, 401)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)
