"""--web.config.file in the Prometheus exporter-toolkit format: TLS and basic auth.

    tls_server_config: {cert_file, key_file, client_ca_file, client_auth_type, min_version,
                        max_version, prefer_server_cipher_suites}
    basic_auth_users: {alice: <bcrypt hash>}

The same file node_exporter takes, so one file secures the whole device. Toolkit keys Python's
ssl module cannot honour (cipher_suites, curve_preferences, ...) are refused by name rather than
silently ignored. Hashes are bcrypt (`htpasswd -nBC 10 "" | tr -d ':\\n'`); a verified password
is cached so a scrape does not pay bcrypt's deliberate ~50 ms on every request, and an unknown
user pays the same bcrypt check against a dummy hash, so timing does not reveal user names.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from exporter.config import ConfigError, build, read_yaml

ClientAuth = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "VerifyClientCertIfGiven",
                     "RequireAndVerifyClientCert"]
TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

UNSUPPORTED = {  # exporter-toolkit keys we know and refuse, with the reason
    "tls_server_config.cipher_suites": "Go cipher suite names; Python's ssl uses OpenSSL's defaults",
    "tls_server_config.curve_preferences": "Go curve names; Python's ssl uses OpenSSL's defaults",
    "tls_server_config.client_allowed_sans": "client certificate SAN filtering is not implemented",
    "tls_server_config.cert": "inline certificates are not supported; use cert_file",
    "tls_server_config.key": "inline keys are not supported; use key_file",
    "tls_server_config.client_ca": "inline CAs are not supported; use client_ca_file",
    "http_server_config": "HTTP/2 and custom response headers are not supported",
    "rate_limit": "rate limiting is not supported; use web.max-requests",
}
_VERIFYING = ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_SSL_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass
class TLSServerConfig:
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""
    client_auth_type: ClientAuth = "NoClientCert"
    min_version: TLSVersion = "TLS12"
    max_version: TLSVersion = "TLS13"
    prefer_server_cipher_suites: bool = True


@dataclass
class WebConfigFile:
    tls_server_config: TLSServerConfig = field(default_factory=TLSServerConfig)
    basic_auth_users: dict[str, str] = field(default_factory=dict)


def _check_tls(tls: TLSServerConfig, origin: str) -> None:
    """exporter-toolkit's own consistency rules, plus ours (no TLS below 1.2)."""
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(origin, f"tls_server_config.{key}", problem)

    for key in ("min_version", "max_version"):
        if getattr(tls, key) in ("TLS10", "TLS11"):
            raise fail(key, f"expected TLS12 or TLS13, got {getattr(tls, key)!r} (TLS 1.0 and 1.1 are refused)")
    if tls.min_version == "TLS13" and tls.max_version == "TLS12":
        raise fail("max_version", "expected a version >= min_version")
    if tls.client_auth_type in ("RequestClientCert", "RequireAnyClientCert"):
        raise fail("client_auth_type", f"{tls.client_auth_type} (accepting unverified certificates) is not supported; "
                                       "use VerifyClientCertIfGiven or RequireAndVerifyClientCert")
    if bool(tls.cert_file) != bool(tls.key_file):
        missing = "key_file" if tls.cert_file else "cert_file"
        raise fail(missing, f"required with {'cert_file' if tls.cert_file else 'key_file'}")
    if tls.client_ca_file and tls.client_auth_type == "NoClientCert":
        raise fail("client_auth_type", "client_ca_file is set but client_auth_type is NoClientCert: set "
                                       "RequireAndVerifyClientCert (or VerifyClientCertIfGiven), or remove client_ca_file")
    if tls.client_auth_type in _VERIFYING and not tls.client_ca_file:
        raise fail("client_ca_file", f"required with client_auth_type {tls.client_auth_type}")
    if tls.client_auth_type != "NoClientCert" and not tls.cert_file:
        raise fail("cert_file", "required with client_auth_type (client certificates need TLS)")


class WebSecurity:
    """A parsed web config: an SSL context (or None) and a basic-auth check."""

    def __init__(self, config: WebConfigFile, origin: str) -> None:
        self.config = config
        _check_tls(config.tls_server_config, origin)
        self.ssl_context = self._ssl(config.tls_server_config, origin) if config.tls_server_config.cert_file else None
        # bcrypt is imported only with users (a TLS-only config never checks a password)
        self._dummy = self._check_users(config.basic_auth_users, origin) if config.basic_auth_users else b""
        self._verified: set[bytes] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _check_users(users: dict[str, str], origin: str) -> bytes:
        """Validate every hash; returns a dummy hash of the highest cost for unknown users."""
        import bcrypt  # only servers with basic_auth_users use it

        cost = 10
        for user, hashed in users.items():
            where = f"basic_auth_users.{user[:60]}"
            if not user or ":" in user:
                raise ConfigError(origin, where, "expected a user name without ':' (basic auth splits at the first ':')")
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ConfigError(origin, where, "expected a bcrypt hash ($2y$...)")
            try:
                bcrypt.checkpw(b"", _bcrypt(hashed))
            except ValueError:
                raise ConfigError(origin, where, "expected a bcrypt hash ($2y$...), got a malformed one") from None
            cost = max(cost, int(hashed[4:6]))
        return f"$2b${cost:02d}$".encode() + b"." * 53

    @staticmethod
    def _ssl(tls: TLSServerConfig, origin: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = _SSL_VERSIONS[tls.min_version]
        context.maximum_version = _SSL_VERSIONS[tls.max_version]
        if tls.prefer_server_cipher_suites:
            context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        for key in ("cert_file", "key_file", "client_ca_file"):
            name = getattr(tls, key)
            if name and not Path(name).is_file():
                raise ConfigError(origin, f"tls_server_config.{key}", f"expected a readable file, got {name!r}")
        try:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(origin, "tls_server_config", f"cannot load certificate or key: {_one_line(exc)} "
                                                           "(expected a PEM certificate in cert_file and its "
                                                           "private key in key_file)") from None
        if tls.client_ca_file:
            try:
                context.load_verify_locations(tls.client_ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(origin, "tls_server_config.client_ca_file",
                                  f"cannot load CA certificates: {_one_line(exc)}") from None
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
        import bcrypt

        hashed = self.config.basic_auth_users.get(user)
        if hashed is None:  # the same bcrypt work as a wrong password: user names cannot be timed out
            bcrypt.checkpw(password.encode(), self._dummy)
            return False
        token = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        with self._lock:
            if any(hmac.compare_digest(token, seen) for seen in self._verified):
                return True
        if not bcrypt.checkpw(password.encode(), _bcrypt(hashed)):
            return False
        with self._lock:
            self._verified.add(token)
        return True


def _bcrypt(hashed: str) -> bytes:
    return hashed.replace("$2y$", "$2b$", 1).encode()


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _refuse_unsupported(data: dict[str, Any], origin: str) -> None:
    for dotted, reason in UNSUPPORTED.items():
        section, _, key = dotted.partition(".")
        holder = data.get(section) if key else data
        if isinstance(holder, dict) and (key or section) in holder:
            raise ConfigError(origin, dotted, f"not supported by resilience-exporter ({reason}); remove it")


def load_web_config(path: str | Path) -> WebSecurity:
    """Parse, check and load a web config file; ConfigError (one line) names file, key and expectation."""
    origin = str(path)
    data = read_yaml(path)
    _refuse_unsupported(data, origin)
    return WebSecurity(build(WebConfigFile, data, origin, ""), origin)
