"""--web.config.file in the Prometheus exporter-toolkit format: TLS and basic auth.

    tls_server_config: {cert_file, key_file, client_ca_file, client_auth_type, min_version}
    basic_auth_users: {alice: <bcrypt hash>}

The same file node_exporter takes, so one file secures the whole device. Hashes are bcrypt
(`htpasswd -nBC 10 "" | tr -d ':\\n'`); a verified password is cached so a scrape does not pay
bcrypt's deliberate ~50 ms on every request.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from exporter.config import ConfigError, _build


@dataclass
class TLSServerConfig:
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""
    client_auth_type: Literal["NoClientCert", "RequireAndVerifyClientCert", "VerifyClientCertIfGiven"] = "NoClientCert"
    min_version: Literal["TLS12", "TLS13"] = "TLS12"


@dataclass
class WebConfigFile:
    tls_server_config: TLSServerConfig = field(default_factory=TLSServerConfig)
    basic_auth_users: dict[str, str] = field(default_factory=dict)


class WebSecurity:
    """A parsed web config: an SSL context (or None) and a basic-auth check."""

    def __init__(self, config: WebConfigFile, origin: str) -> None:
        self.config = config
        self.ssl_context = self._ssl(config.tls_server_config, origin) if config.tls_server_config.cert_file else None
        for user, hashed in config.basic_auth_users.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ConfigError(origin, f"basic_auth_users.{user}", "expected a bcrypt hash ($2y$...)")
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _ssl(tls: TLSServerConfig, origin: str) -> ssl.SSLContext:
        if not tls.key_file:
            raise ConfigError(origin, "tls_server_config.key_file", "required with cert_file")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3 if tls.min_version == "TLS13" else ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
            if tls.client_ca_file:
                context.load_verify_locations(tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(origin, "tls_server_config", f"cannot load certificate or key: {exc}") from None
        if tls.client_auth_type == "RequireAndVerifyClientCert":
            context.verify_mode = ssl.CERT_REQUIRED
        elif tls.client_auth_type == "VerifyClientCertIfGiven":
            context.verify_mode = ssl.CERT_OPTIONAL
        return context

    @property
    def requires_auth(self) -> bool:
        return bool(self.config.basic_auth_users)

    def authorized(self, header: str | None) -> bool:
        """True when no users are configured or the Authorization header carries a valid pair."""
        if not self.requires_auth:
            return True
        if not header or header[:6].lower() != "basic ":  # the scheme is case-insensitive (RFC 7617, Go's BasicAuth)
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.config.basic_auth_users.get(user)
        if hashed is None:
            return False
        token = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        with self._lock:
            if any(hmac.compare_digest(token, seen) for seen in self._verified):
                return True
        import bcrypt  # only servers with basic_auth_users load it

        if not bcrypt.checkpw(password.encode(), hashed.replace("$2y$", "$2b$", 1).encode()):
            return False
        with self._lock:
            self._verified.add(token)
        return True


def load_web_config(path: str | Path) -> WebSecurity:
    origin = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ConfigError(origin, "", f"cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(origin, "", f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(origin, "", "expected a mapping at the top level")
    return WebSecurity(_build(WebConfigFile, data, origin, ""), origin)
