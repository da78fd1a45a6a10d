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

from exporter.config import ConfigError
from exporter.web.webconfig import load_web_config
from tests.harness import require_binary, running_exporter


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
    with running_exporter({"web.config_file": str(web)}) as app:
        host, port = app.address
        yield f"{host}:{port}", cert[0]


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


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


BAD_WEB_CONFIGS = [  # (web config text, the key and expectation the one line must name)
    ("tls_server_config: [\n", "invalid YAML"),
    ("tls_server_config: yes\n", "tls_server_config: expected a mapping"),
    ("basic_auth_users:\n  alice: 42\n", "basic_auth_users['alice']: expected a string"),
    ("basic_auth_users:\n  alice: '$2y$10$short'\n", "basic_auth_users.alice: expected a bcrypt hash ($2y$...), got a malformed one"),
    ("tls_server_config:\n  cert_file: {cert}\n", "tls_server_config.key_file: required with cert_file"),
    ("tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: {key}\n", "tls_server_config.cert_file: expected a readable file"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {cert}\n", "tls_server_config: cannot load certificate or key"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_ca_file: {cert}\n",
     "tls_server_config.client_auth_type: client_ca_file is set but client_auth_type is NoClientCert"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: RequireAndVerifyClientCert\n",
     "tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: RequireAnyClientCert\n",
     "tls_server_config.client_auth_type: RequireAnyClientCert (accepting unverified certificates) is not supported"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS10\n",
     "tls_server_config.min_version: expected TLS12 or TLS13, got 'TLS10' (TLS 1.0 and 1.1 are refused)"),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
     "tls_server_config.cipher_suites: not supported by resilience-exporter"),
    ("http_server_config:\n  http2: false\n", "http_server_config: not supported by resilience-exporter"),
    ("tls_server_config:\n  min_version: TLS99\n", "tls_server_config.min_version: expected one of 'TLS10'"),
]


@pytest.mark.parametrize("text,expected", BAD_WEB_CONFIGS)
def test_each_bad_web_config_is_one_line_and_exit_2_from_check_config_and_serve(
        tmp_path: Path, cert: tuple[Path, Path], text: str, expected: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(text.format(cert=cert[0], key=cert[1]))
    config = tmp_path / "config.yaml"
    config.write_text(f"web:\n  config_file: {web}\n  listen_address: 127.0.0.1:0\ndocker:\n  enabled: 'false'\n")
    for args in (("check-config", str(config)), ("--config", str(config), "serve")):
        out = cli(*args, cwd=tmp_path)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2, (args, out.stderr)
        assert len(lines) == 1 and str(web) in lines[0] and expected in lines[0], (args, out.stderr)


def test_a_non_utf8_web_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_bytes(b"basic_auth_users:\n  \xff\xfe: x\n")
    out = cli("--web.config.file", str(web), "--web.listen-address", "127.0.0.1:0", "serve", cwd=tmp_path)
    assert out.returncode == 2 and out.stderr.strip() == (
        f"resilience-exporter: {web}: expected UTF-8 text, got an undecodable byte at offset 20")


def test_every_accepted_toolkit_key_loads(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    web = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"tls_server_config:\n  cert_file: {cert[0]}\n  key_file: {cert[1]}\n  client_ca_file: {cert[0]}\n"
                   "  client_auth_type: VerifyClientCertIfGiven\n  min_version: TLS12\n  max_version: TLS13\n"
                   f"  prefer_server_cipher_suites: false\nbasic_auth_users:\n  alice: '{hashed}'\n")
    security = load_web_config(web)
    assert security.ssl_context is not None and security.requires_auth


def test_a_silent_tls_client_does_not_delay_other_scrapes(secured: tuple[str, Path]) -> None:
    import socket

    address, ca = secured
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port))):  # TCP open, no ClientHello
        r = requests.get(f"https://{address}/healthz", verify=str(ca), timeout=5)
    assert r.status_code == 200 and r.elapsed.total_seconds() < 2  # the handshake waits in its own thread
