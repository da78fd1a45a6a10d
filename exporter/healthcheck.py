"""`python3 -m exporter.healthcheck`: the container HEALTHCHECK, exit 0 when /healthz answers.

It runs in a process of its own (docker exec), so it reads the listen address the way the
exporter does from the environment (RESILIENCE_EXPORTER_WEB_LISTEN_ADDRESS, default :10099),
and speaks TLS when a web config file is set (the certificate is not verified: it is our own).
"""
from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def main() -> int:
    address = os.environ.get("RESILIENCE_EXPORTER_WEB_LISTEN_ADDRESS", ":10099")
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    scheme, context = "http", None
    if os.environ.get("RESILIENCE_EXPORTER_WEB_CONFIG_FILE"):
        scheme, context = "https", ssl._create_unverified_context()  # noqa: S323 - checking ourselves
    try:
        with urllib.request.urlopen(f"{scheme}://{host}:{port}/healthz", timeout=4, context=context) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
