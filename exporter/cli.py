"""Command line: serve (default), check-config, agent. Flags are generated from the config schema.

Every setting has a flag `--section.key-name` (Prometheus exporter convention) and an env
variable `RESILIENCE_EXPORTER_SECTION_KEY_NAME`; precedence is defaults < file < env < flags.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import typing
from typing import TYPE_CHECKING, Sequence

from exporter import __version__, build_revision, logs
from exporter.config import Config, ConfigError, env_name, flag_name, leaves, load

if TYPE_CHECKING:
    from exporter.app import Agent

log = logging.getLogger("exporter")


# exporter-toolkit spells this one with a dot: keep the spelling every Prometheus exporter uses.
FLAG_ALIASES = {"web.config_file": ("--web.config.file",)}


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
        parser.add_argument(flag_name(path), *FLAG_ALIASES.get(path, ()), **kwargs)


class VersionAction(argparse.Action):
    """--version: the revision is looked up only when asked (a checkout asks git)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: typing.Any) -> None:
        print(f"resilience-exporter {__version__} (revision {build_revision()})")  # stdout, like argparse's
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resilience-exporter",
        description="Failure states, retries and circuit breakers of Docker and Kubernetes workloads, for Prometheus.")
    parser.add_argument("--version", action=VersionAction, nargs=0, help="Show the version and build revision, then exit.")
    _add_config_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="Run the exporter (the default).")
    check = sub.add_parser("check-config", help="Validate a configuration file and exit.")
    check.add_argument("file", metavar="FILE")
    _add_agent_parser(sub)
    _add_alerts_parser(sub)
    status = sub.add_parser("status", help="Show containers, breakers and agent runs like `kubectl get pods`.")
    status.add_argument("--url", default="http://127.0.0.1:10099",
                        help="The exporter to ask; basic auth as https://user:pass@host:port (default: %(default)s).")
    status.add_argument("-o", "--output", choices=["table", "wide", "json"], default="table")
    status.add_argument("-w", "--watch", action="store_true", help="Redraw every 2 s until interrupted.")
    status.add_argument("--ca-file", help="CA bundle to verify an https exporter.")
    status.add_argument("--insecure-skip-verify", action="store_true", help="Do not verify the TLS certificate.")
    return parser


def _add_agent_parser(sub: argparse._SubParsersAction) -> None:
    """`agent [run-once] [options] -- CMD ARGS...`; options set the same keys as the agent.* flags."""
    agent = sub.add_parser(
        "agent", help="Run the role agent on a schedule (or once) and publish textfile metrics and health.json.",
        usage="resilience-exporter [--config FILE] agent [run-once] [options] -- CMD [ARGS...]")
    agent.add_argument("mode", nargs="?", choices=["run-once"],
                       help="Run once now and exit with the agent's exit code (systemd timers, cron).")
    for option, path, meta in (("--every", "agent.every", "DURATION"), ("--jitter", "agent.jitter", "DURATION"),
                               ("--timeout", "agent.timeout", "DURATION"), ("--cron", "agent.cron", "EXPR"),
                               ("--name", "agent.name", "NAME"), ("--textfile-dir", "textfile.directory", "DIR"),
                               ("--health-file", "agent.health_file", "PATH")):
        # SUPPRESS: an option not given leaves the file/env/--agent.* value alone.
        agent.add_argument(option, dest=path, metavar=meta, default=argparse.SUPPRESS, help=f"Sets {path}.")


def _add_alerts_parser(sub: argparse._SubParsersAction) -> None:
    """`alerts render --config SITE.yaml --out DIR`: the alert pack with a site's selectors and URLs."""
    alerts = sub.add_parser("alerts", help="Render the alert pack (rules, unit tests, Slack template) for a site.")
    action = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    render = action.add_parser("render", help="Write rules, promtool tests, alertmanager.yml and slack.tmpl to DIR.")
    render.add_argument("--config", "--site", metavar="FILE", dest="site",
                        help="YAML file of selectors, runbook_url, dashboard_url (default: the shipped defaults).")
    render.add_argument("--out", metavar="DIR", required=True, help="Output directory (created if missing).")


def render_alerts(site: str | None, out: str) -> int:
    from exporter.alertpack import PackConfigError, load_config, write_pack

    try:
        written = write_pack(load_config(site), out)
    except PackConfigError as exc:
        print(f"resilience-exporter: alerts render: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {out}")
    return 0


def _flag_values(args: argparse.Namespace) -> dict[str, str]:
    return {path: getattr(args, path) for path, _, _ in leaves() if getattr(args, path, None) is not None}


def validate(config: Config) -> None:
    """What serve and agent check before they start, beyond the schema (which has checked the
    agent's schedule already): the web config file it points to. ConfigError (one line) if bad."""
    if config.web.config_file:
        from exporter.web.webconfig import load_web_config

        load_web_config(config.web.config_file)


def check_config(path: str) -> int:
    """Exactly what serve and agent would accept with this file and the environment; exit 2 if not."""
    try:
        validate(load(file=path, environ=os.environ))
    except ValueError as exc:  # ConfigError included
        print(exc, file=sys.stderr)
        return 2
    print(f"{path}: OK")
    return 0


def serve(config: Config) -> int:
    from exporter.app import Exporter  # heavy imports only when serving

    exporter = Exporter(config)
    try:
        exporter.start()
    except ConfigError as exc:  # the web config file
        print(f"resilience-exporter: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        log.error("cannot listen", extra={"fields": {"address": config.web.listen_address, "err": exc}})
        return 1

    failure = _wait_for_signal(exporter.device.failure)
    exporter.stop()
    return 1 if failure else 0


def _wait_for_signal(failure: typing.Callable[[], str | None] = lambda: None) -> str | None:
    """Block until SIGTERM or SIGINT (logged), or until `failure()` names a part that stopped on its
    own: then log it as an error and return it, so the process exits instead of idling silently."""
    received = threading.Event()

    def _stop(signum: int, _frame: object) -> None:
        log.info("received signal, shutting down", extra={"fields": {"signal": signal.Signals(signum).name}})
        received.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not received.wait(1.0):
        problem = failure()
        if problem:
            log.error("stopping: a part stopped on its own", extra={"fields": {"problem": problem}})
            return problem
    return None


def _log_thread_failure(args: threading.ExceptHookArgs) -> None:
    """One log line instead of a traceback on stderr when a background thread dies."""
    log.error("thread stopped by an error", extra={"fields": {
        "thread": args.thread.name if args.thread else "?", "err": f"{args.exc_type.__name__}: {args.exc_value}"}})


def agent(config: Config, *, once: bool) -> int:
    """The agent alone: its families (and its breaker's) go to its own textfile, no HTTP server."""
    from exporter.app import Agent  # the wiring, only when running

    if not config.agent.command:
        print("resilience-exporter: agent: no command; give it after --, e.g. "
              "`resilience-exporter agent --every 5m -- /opt/fleet/agent/role-agent.sh --log-json`", file=sys.stderr)
        return 2
    try:
        process = Agent(config)
    except ValueError as exc:
        print(f"resilience-exporter: {exc}", file=sys.stderr)
        return 2
    if once:
        return _run_once(process)
    process.start()
    failure = _wait_for_signal(process.failure)
    process.stop()
    return 1 if failure else 0


def _run_once(process: Agent) -> int:
    """`agent run-once`: SIGTERM/SIGINT are forwarded to the agent's process group (SIGKILL after
    agent.kill_grace), and we exit 128+signal with one line saying so, never leaving the group."""
    received: list[signal.Signals] = []

    def forward(signum: int, _frame: object) -> None:
        sig = signal.Signals(signum)
        if not received:
            received.append(sig)
        process.runner.cancel(sig)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = process.run_once()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if received:
        sig = received[0]
        print(f"resilience-exporter: agent run-once: received {sig.name}; stopped the agent's process group "
              f"(SIGKILL after {float(process.settings.kill_grace):g}s if it did not exit)", file=sys.stderr)
        return 128 + sig
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] | None = None
    if "--" in argv:  # everything after the first -- is the agent's command, untouched by argparse
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "check-config":
        return check_config(args.file)
    if args.command == "alerts":
        return render_alerts(args.site, args.out)
    if args.command == "status":
        from exporter import statusview

        verify: bool | str = False if args.insecure_skip_verify else (args.ca_file or True)
        return statusview.run(args.url, output=args.output, watch=args.watch, verify=verify)
    flags: dict[str, typing.Any] = dict(_flag_values(args))
    if command is not None:
        if args.command != "agent":
            parser.error("a command after -- is only accepted by the agent subcommand")
        flags["agent.command"] = command
    try:
        config = load(file=args.config, environ=os.environ, flags=flags)
        validate(config)
    except ValueError as exc:  # ConfigError included
        print(f"resilience-exporter: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log.level, config.log.format)
    threading.excepthook = _log_thread_failure
    if args.command == "agent":
        return agent(config, once=args.mode == "run-once")
    return serve(config)
