"""Command line: serve (default), check-config. Flags are generated from the config schema.

Every setting has a flag `--section.key-name` (Prometheus exporter convention) and an env
variable `RESILIENCE_EXPORTER_SECTION_KEY_NAME`; precedence is defaults < file < env < flags.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import typing
from typing import Sequence

from exporter import __version__, logs
from exporter.config import Config, ConfigError, env_name, flag_name, leaves, load, read_file

log = logging.getLogger("exporter")


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="YAML configuration file.",
                        default=os.environ.get(env_name("config")))
    defaults = Config()
    for path, tp, f in leaves():
        default = defaults
        for part in path.split("."):
            default = getattr(default, part)
        text = f"{f.metadata.get('doc', '')} (default: {default!r}; env {env_name(path)})"
        kwargs: dict[str, typing.Any] = {"dest": path, "default": None, "help": text, "metavar": "VALUE"}
        if tp is bool:
            kwargs.update(nargs="?", const="true")
        parser.add_argument(flag_name(path), **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilience-exporter",
        description="Failure states, retries and circuit breakers of Docker and Kubernetes workloads, for Prometheus.")
    parser.add_argument("--version", action="version", version=f"resilience-exporter {__version__}")
    _add_config_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="Run the exporter (the default).")
    check = sub.add_parser("check-config", help="Validate a configuration file and exit.")
    check.add_argument("file", metavar="FILE")
    return parser


def _flag_values(args: argparse.Namespace) -> dict[str, str]:
    return {path: getattr(args, path) for path, _, _ in leaves() if getattr(args, path, None) is not None}


def check_config(path: str) -> int:
    try:
        read_file(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


def serve(config: Config) -> int:
    from exporter.app import Exporter  # heavy imports only when serving

    exporter = Exporter(config)
    try:
        exporter.start()
    except OSError as exc:
        log.error("cannot listen", extra={"fields": {"address": config.web.listen_address, "err": exc}})
        return 1

    def _stop(signum: int, _frame: object) -> None:
        log.info("received signal, shutting down", extra={"fields": {"signal": signal.Signals(signum).name}})
        exporter.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not exporter.wait(1.0):
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    try:
        config = load(file=args.config, environ=os.environ, flags=_flag_values(args))
    except ConfigError as exc:
        print(f"resilience-exporter: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log.level, config.log.format)
    return serve(config)
