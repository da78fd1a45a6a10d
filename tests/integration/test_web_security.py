"""--web.config.file: TLS with a self-signed certificate and bcrypt basic auth, with real clients."""
from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import bcrypt
import pytest
import requests

from exporter.app import Exporter
from exporter.config import ConfigError, load
from exporter.resilience import ResilienceRegistry
from exporter.web.webconfig import load_web_config
from tests.conftest import require_binary


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = require_binary("openssl")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture(scope="module")
def secured(cert: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    web = tmp_path_factory.mktemp("web") / "web.yml"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=10)).decode().replace("$2b$", "$2y$", 1)
    web.write_text(f"tls_server_config:\n  cert_file: {cert[0]}\n  key_file: {cert[1]}\n"
                   f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    app = Exporter(load(flags={"web.listen_address": "127.0.0.1:0", "web.config_file": str(web)}),
                   registry=ResilienceRegistry())
    app.start()
    host, port = app.address
    try:
        yield f"{host}:{port}", cert[0]
    finally:
        app.stop()


def test_right_password_over_tls_gets_metrics(secured: tuple[str, Path]) -> None:
    address, ca = secured
    r = requests.get(f"https://{address}/metrics", auth=("prometheus", "s3cret"), verify=str(ca), timeout=10)
    assert r.status_code == 200 and "resilience_exporter_build_info" in r.text
    again = requests.get(f"https://{address}/api/state", auth=("prometheus", "s3cret"), verify=str(ca), timeout=10)
    assert again.status_code == 200 and "containers" in again.json()


@pytest.mark.parametrize("auth", [None, ("prometheus", "wrong"), ("nobody", "s3cret")], ids=["none", "wrong-password", "unknown-user"])
def test_missing_or_wrong_credentials_get_401(secured: tuple[str, Path], auth: tuple[str, str] | None) -> None:
    address, ca = secured
    r = requests.get(f"https://{address}/metrics", auth=auth, verify=str(ca), timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("scheme", ["basic", "BASIC"])
def test_auth_scheme_is_case_insensitive(secured: tuple[str, Path], scheme: str) -> None:
    address, ca = secured  # RFC 7617; Go's Request.BasicAuth (exporter-toolkit) accepts any case too
    token = base64.b64encode(b"prometheus:s3cret").decode()
    r = requests.get(f"https://{address}/metrics", headers={"Authorization": f"{scheme} {token}"}, verify=str(ca), timeout=10)
    assert r.status_code == 200 and "resilience_exporter_build_info" in r.text


def test_healthz_stays_open_for_orchestrators(secured: tuple[str, Path]) -> None:
    address, ca = secured
    assert requests.get(f"https://{address}/healthz", verify=str(ca), timeout=10).status_code == 200


def test_plain_http_to_the_tls_port_fails(secured: tuple[str, Path]) -> None:
    address, _ = secured
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://{address}/metrics", auth=("prometheus", "s3cret"), timeout=10)


def test_status_command_through_tls_and_basic_auth(secured: tuple[str, Path]) -> None:
    address, ca = secured
    out = subprocess.run([sys.executable, "-m", "exporter", "status", "--url", f"https://prometheus:s3cret@{address}",
                          "--ca-file", str(ca)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("No containers tracked.")


def test_bad_web_config_names_the_file_and_key(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text("basic_auth_users:\n  alice: plaintext\n")
    with pytest.raises(ConfigError, match=r"web\.yml: basic_auth_users\.alice: expected a bcrypt hash"):
        load_web_config(bad)
    bad.write_text("tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n")
    with pytest.raises(ConfigError, match=r"web\.yml: tls_server_config\.cert_file: expected a readable file"):
        load_web_config(bad)
    bad.write_text("tls_server_config:\n  certfile: x\n")
    with pytest.raises(ConfigError, match=r"tls_server_config\.certfile: unknown key \(did you mean 'cert_file'\?\)"):
        load_web_config(bad)
