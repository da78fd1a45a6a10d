"""Hypothesis fuzz of every input a person or another program hands us (issue 16): web config
files, config files, environment values and health.json. The contract: a bad input is one line
(ConfigError, or `check-config` printing one line and exiting 2), a bad health.json is ignored;
nothing else escapes. `python -m bench.fuzz_inputs --seconds 300` fuzzes longer.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from bench.soak import _CONFIGS, _JSON, _TEXT, Fuzzed, fuzz_for
from exporter import cli
from exporter.config import env_name, leaves, load
from exporter.device.health import read_counters

_PATHS = [path for path, _, _ in leaves()]
_ESCAPED = st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)),
                                      st.sampled_from([chr(c) for c in range(0xDC80, 0xDD00)])), max_size=30)
"""Text as os.environ holds it: undecodable bytes arrive as surrogate escapes."""
_NASTY = st.sampled_from([
    "[" * 5000, "{a: " * 3000, "x: " + "9" * 5000, "x: 1e400", "x: .nan", "x: -.inf", "&a [*a]", "x: !!python/object:os.system {}",
    "\t- a\n  b: [", "web: {listen_address: ':99999'}", "agent: {every: 0, jitter: 1e300}", "state: {transitions_kept: -1}",
])
_RAW = st.one_of(st.binary(max_size=300), _NASTY.map(str.encode), _TEXT.map(str.encode))


def _web_configs(cert: Path, key: Path) -> st.SearchStrategy[Any]:
    files = st.sampled_from([str(cert), str(key), "/nonexistent", "", "/"])
    tls = st.fixed_dictionaries({}, optional={
        "cert_file": st.one_of(files, _JSON), "key_file": st.one_of(files, _JSON),
        "client_ca_file": st.one_of(files, _JSON),
        "client_auth_type": st.one_of(st.sampled_from(["NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                                                       "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]), _JSON),
        "min_version": st.one_of(st.sampled_from(["TLS10", "TLS11", "TLS12", "TLS13"]), _JSON),
        "max_version": st.one_of(st.sampled_from(["TLS12", "TLS13"]), _JSON),
        "cipher_suites": _JSON, "prefer_server_cipher_suites": _JSON})
    hashes = st.one_of(st.just("$2b$04$" + "." * 53), st.just("$2y$04$abc"), _TEXT, _JSON)
    users = st.dictionaries(st.one_of(_TEXT, st.integers()), hashes, max_size=3)
    return st.one_of(st.fixed_dictionaries({}, optional={"tls_server_config": st.one_of(tls, _JSON),
                                                         "basic_auth_users": st.one_of(users, _JSON),
                                                         "http_server_config": _JSON}),
                     st.dictionaries(_TEXT, _JSON, max_size=3))


def _write(path: Path, data: Any) -> None:
    if isinstance(data, bytes):
        path.write_bytes(data)
        return
    try:
        path.write_text(yaml.safe_dump(data, allow_unicode=True))
    except yaml.YAMLError:
        path.write_bytes(b"{")


def _check_config_cli(path: Path) -> None:
    """`check-config FILE` in process: exit 0, or exit 2 with exactly one line."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.check_config(str(path))
    lines = err.getvalue().splitlines()
    assert (code, lines) == (0, []) or (code == 2 and len(lines) == 1), (code, err.getvalue()[:300])


def fuzz_inputs(seconds: float) -> list[Fuzzed]:
    workdir = Path(tempfile.mkdtemp(prefix="re-fuzz-inputs-"))
    quiet = logging.getLogger("exporter.device.health")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # every ignored health.json logs a warning
    try:
        cert, key = workdir / "cert.pem", workdir / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=x",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
        web, config, health = workdir / "web.yml", workdir / "config.yaml", workdir / "health.json"

        def check_web(data: Any) -> None:
            _write(web, data)
            config.write_text(f"web:\n  config_file: {web}\n")
            _check_config_cli(config)

        def check_config(data: Any) -> None:
            _write(config, data)
            _check_config_cli(config)

        def check_env(values: dict[str, str]) -> None:
            try:
                load(environ={env_name(p): v for p, v in values.items()})
            except ValueError as exc:  # ConfigError
                assert "\n" not in str(exc), str(exc)[:300]

        def check_health(data: Any) -> None:
            health.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
            counters = read_counters(health)
            if counters is not None:
                assert all(type(v) is int and v >= 0 for v in counters["runs"].values()), counters
                assert type(counters["consecutive_failures"]) is int and counters["consecutive_failures"] >= 0

        health_docs = st.one_of(_RAW, _JSON, st.fixed_dictionaries(
            {"schema_version": st.one_of(st.just(1), _JSON)},
            optional={"runs": st.one_of(st.dictionaries(_TEXT, st.one_of(st.integers(), st.floats(), _JSON)), _JSON),
                      "consecutive_failures": st.one_of(st.integers(), st.floats(), _JSON),
                      "last_failure_type": _JSON, "interval_seconds": _JSON, "next_run": _JSON}))
        quarter = seconds / 4
        return [fuzz_for("web config file -> check-config", st.one_of(_web_configs(cert, key), _RAW), check_web, quarter),
                fuzz_for("config file -> check-config", st.one_of(_CONFIGS, _RAW), check_config, quarter),
                fuzz_for("env values -> load", st.dictionaries(st.sampled_from(_PATHS), _ESCAPED, max_size=4),
                         check_env, quarter),
                fuzz_for("health.json -> read_counters", health_docs, check_health, quarter)]
    finally:
        quiet.setLevel(level)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    for fuzzed in fuzz_inputs(parser.parse_args().seconds):
        print(f"{fuzzed.target}: {fuzzed.examples} examples, {len(fuzzed.crashes)} crashes")
        for crash in fuzzed.crashes:
            print("   ", crash)
