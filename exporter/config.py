"""Configuration: defaults < YAML file (--config) < environment (RESILIENCE_EXPORTER_*) < flags.

The schema is a tree of dataclasses; one validator walks it for all three layers so every error
names where it came from, the key and what was expected, e.g.
`config.yaml: web.listen_address: expected a string like ":10099", got 42`.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
import socket
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, get_args, get_origin

import yaml

from exporter.device.failures import FLEET_EXIT_CODES, FailureTypes
from exporter.printable import printable

ENV_PREFIX = "RESILIENCE_EXPORTER_"
DEFAULT_PORT = 10099
MAX_SECONDS = 10 * 365 * 86400.0   # any longer duration is a typo; APScheduler's datetimes overflow on huge ones
MAX_INT = 10**9                    # every integer setting is a count, a size or an exit code


class ConfigError(ValueError):
    """A configuration problem, with its origin (file, env variable or flag) and key path."""

    def __init__(self, origin: str, path: str, problem: str) -> None:
        self.origin, self.path, self.problem = origin, path, problem
        where = f"{origin}: {path}" if path else origin
        super().__init__(printable(f"{where}: {problem}"))  # one line, whatever the key or value holds


class Duration(float):
    """Seconds, written in config as "500ms", "30s", "5m", "1h30m", "2d" or a plain number."""

    _PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
    _UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

    @classmethod
    def parse(cls, text: str) -> "Duration":
        text = text.strip()
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return cls(float(text))
        pos, total = 0, 0.0
        for match in cls._PART.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * cls._UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(text)
        return cls(total)

    def __repr__(self) -> str:
        return f"Duration({float(self)!r})"


class ListenAddress(str):
    """host:port to listen on; an empty host means every interface."""

    description = 'an address like ":10099" or "127.0.0.1:10099"'

    @classmethod
    def parse(cls, text: str) -> "ListenAddress":
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535 or " " in host:
            raise ValueError(text)
        return cls(text)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.rpartition(":")
        return host.strip("[]") or "0.0.0.0", int(port)


class UrlPath(str):
    """An absolute URL path such as /metrics."""

    description = 'a path starting with "/"'

    @classmethod
    def parse(cls, text: str) -> "UrlPath":
        if not text.startswith("/") or any(c in text for c in " ?#"):
            raise ValueError(text)
        return cls(text)


# --- schema ------------------------------------------------------------------------------
def _doc(text: str, **bounds: float) -> dict[str, Any]:
    """Field metadata: the help text and bounds checked by the validator (ge, gt, le)."""
    return {"doc": text, **bounds}


@dataclass
class WebConfig:
    listen_address: ListenAddress = field(default=ListenAddress(f":{DEFAULT_PORT}"),
                                          metadata=_doc("Address to serve HTTP on, host:port."))
    telemetry_path: UrlPath = field(default=UrlPath("/metrics"), metadata=_doc("Path under which to expose metrics."))
    config_file: str = field(default="", metadata=_doc(
        "exporter-toolkit web config file (TLS certificate/key, basic_auth_users with bcrypt hashes)."))
    max_connections: int = field(default=1024, metadata=_doc(
        "Open connections at most; at the cap the longest-waiting idle one is closed (lowered to fit the open-file limit).",
        ge=1))
    max_requests: int = field(default=40, metadata=_doc(
        "Requests answered at once (like node_exporter's --web.max-requests); more wait up to 1 s, then get 503; "
        "0: no cap.", ge=0))
    read_header_timeout: Duration = field(default=Duration(10), metadata=_doc(
        "Time a client has to send each part of its request headers (and the TLS handshake).", gt=0))
    idle_timeout: Duration = field(default=Duration(60), metadata=_doc(
        "Time a kept-alive connection may wait for its next request.", gt=0))


@dataclass
class LogConfig:
    level: Literal["debug", "info", "warn", "error"] = field(default="info", metadata=_doc("Log level."))
    format: Literal["logfmt", "json"] = field(default="logfmt", metadata=_doc("Log line format."))


@dataclass
class PullImageConfig:
    image: str = field(default="", metadata=_doc("Image reference, e.g. registry:5000/app:1.2."))
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = field(default="IfNotPresent", metadata=_doc(
        "Kubernetes pull policy: IfNotPresent, Always (pull every interval), Never (report ErrImageNeverPull)."))


@dataclass
class PullGuardConfig:
    enabled: bool = field(default=False, metadata=_doc("Pull missing desired images with the kubelet's back-off."))
    images: list[PullImageConfig] = field(default_factory=list, metadata=_doc(
        "Desired images, a YAML list of {image, pull_policy} (file only)."))
    images_from: Literal["", "containers"] = field(default="", metadata=_doc(
        "Also guard the images of the host's containers."))
    interval: Duration = field(default=Duration(10), metadata=_doc("Time between reconcile passes.", gt=0))
    max_manifest_attempts: int = field(default=10, metadata=_doc(
        "Failed pulls of a missing tag/manifest before it is marked terminal.", ge=1))
    backoff_initial: Duration = field(default=Duration(10), metadata=_doc("First back-off after a failed pull.", gt=0))
    backoff_max: Duration = field(default=Duration(300), metadata=_doc("Back-off cap (doubling from initial).", gt=0))


@dataclass
class DockerConfig:
    enabled: Literal["auto", "true", "false"] = field(default="auto", metadata=_doc(
        "Watch a Docker engine; auto = when docker.host or DOCKER_HOST is set or /var/run/docker.sock exists."))
    host: str = field(default="", metadata=_doc("Engine address (default: DOCKER_HOST, else unix:///var/run/docker.sock)."))
    max_containers: int = field(default=5000, metadata=_doc("Cap on tracked containers; more are counted as dropped.", ge=1))
    label_allowlist: list[str] = field(default_factory=list, metadata=_doc(
        "Container labels copied into workload_container_labels (none by default)."))
    reconnect_max_backoff: Duration = field(default=Duration(30), metadata=_doc("Longest wait between reconnects.", gt=0))
    pull_guard: PullGuardConfig = field(default_factory=PullGuardConfig)


@dataclass
class KubernetesConfig:
    enabled: bool = field(default=False, metadata=_doc("Watch pods through the Kubernetes API (list+watch)."))
    kubeconfig: str = field(default="", metadata=_doc(
        "Kubeconfig file; empty: in-cluster service account in a pod, else $KUBECONFIG or ~/.kube/config."))
    context: str = field(default="", metadata=_doc("Kubeconfig context (default: its current context)."))
    namespaces: list[str] = field(default_factory=list, metadata=_doc("Namespaces to watch; empty watches all."))
    label_selector: str = field(default="", metadata=_doc('Pod label selector, e.g. "app.kubernetes.io/part-of=shop".'))
    node: str = field(default="", metadata=_doc(
        "Watch only this node's pods (fieldSelector spec.nodeName), for a DaemonSet: $(NODE_NAME)."))
    max_containers: int = field(default=20000, metadata=_doc("Cap on tracked containers; more are counted as dropped.", ge=1))
    label_allowlist: list[str] = field(default_factory=list, metadata=_doc(
        "Pod labels copied into workload_pod_labels (none by default), like kube_pod_labels."))
    reconnect_max_backoff: Duration = field(default=Duration(30), metadata=_doc("Longest wait between reconnects.", gt=0))


@dataclass
class ResilienceConfig:
    retry_budget_ratio: float = field(default=0.1, metadata=_doc(
        "Share of calls that may be retries, process-wide (SRE book retry budget).", ge=0, le=1))
    breaker_failure_threshold: int = field(default=5, metadata=_doc("Failures in the window that open a breaker.", ge=1))
    breaker_window: Duration = field(default=Duration(60), metadata=_doc("Sliding window for counting failures.", gt=0))
    breaker_open_timeout: Duration = field(default=Duration(30), metadata=_doc(
        "Time a breaker stays open before a trial call.", gt=0))
    breaker_success_threshold: int = field(default=2, metadata=_doc("Trial successes that close a half-open breaker.", ge=1))


@dataclass
class StateConfig:
    transitions_kept: int = field(default=1000, metadata=_doc("Recent transitions kept for the status view.", ge=0))


@dataclass
class AgentConfig:
    """The role agent run on a schedule (`agent.command` empty: no agent)."""

    command: list[str] = field(default_factory=list, metadata=_doc(
        "Agent command and its arguments; empty runs no agent."))
    name: str = field(default="role-agent", metadata=_doc(
        'Agent name: breaker circuit_breaker_state{name="agent:<name>"}, health.json, textfile name.'))
    every: Duration = field(default=Duration(300), metadata=_doc("Run interval (first run at start).", gt=0))
    jitter: Duration = field(default=Duration(0), metadata=_doc("Random delay added to each interval run."))
    cron: str = field(default="", metadata=_doc('Cron expression used instead of every, e.g. "*/5 * * * *".'))
    timeout: Duration = field(default=Duration(600), metadata=_doc(
        "Run time after which the agent's whole process group is killed (exit code 124, failure type timeout).", gt=0))
    kill_grace: Duration = field(default=Duration(5), metadata=_doc("Time between SIGTERM and SIGKILL on timeout.", le=3600))
    exit_codes: dict[int, str] = field(default_factory=lambda: dict(FLEET_EXIT_CODES), metadata=_doc(
        "Exit code -> failure type; unmapped codes become exit_<n>."))
    transient_failures: list[str] = field(default_factory=lambda: ["compose_failed"], metadata=_doc(
        "Failure types retried within a run."))
    max_attempts: int = field(default=2, metadata=_doc("Attempts per run for transient failure types.", ge=1, le=100))
    retry_backoff: Duration = field(default=Duration(30), metadata=_doc(
        "First retry delay (full jitter, doubling, capped at 8x)."))
    stderr_lines: int = field(default=20, metadata=_doc("Last lines of stderr kept for health.json.", ge=0, le=1000))
    health_file: str = field(default="", metadata=_doc("Path of health.json; empty writes none."))
    breaker_failure_threshold: int = field(default=3, metadata=_doc(
        "Failed runs in the window that open the agent's breaker.", ge=1))
    breaker_window: Duration = field(default=Duration(3600), metadata=_doc("Window for counting failed runs.", gt=0))
    breaker_open_timeout: Duration = field(default=Duration(1800), metadata=_doc(
        "Time runs are suspended before a trial run.", gt=0))

    def __post_init__(self) -> None:
        FailureTypes(self.exit_codes)  # ValueError names the bad code or type
        if self.cron:
            from apscheduler.triggers.cron import CronTrigger  # only when a cron schedule is configured

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f'cron: expected 5 cron fields like "*/5 * * * *", got {self.cron!r} ({exc})') from None


@dataclass
class TextfileConfig:
    """node_exporter textfile output."""

    directory: str = field(default="", metadata=_doc(
        "node_exporter's --collector.textfile.directory; empty writes no textfile."))
    file: str = field(default="", metadata=_doc(
        "File name ending in .prom (default resilience_exporter.prom, or role_agent_<name>.prom for `agent`)."))
    interval: Duration = field(default=Duration(60), metadata=_doc("How often serve writes the whole registry.", gt=0))


@dataclass
class ProbeConfig:
    """One HTTP target checked on its own schedule, behind its own breaker."""

    name: str = ""
    url: str = ""
    interval: Duration = Duration(30)
    timeout: Duration = Duration(5)
    expected_status: int = 200
    attempts: int = 2

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-." for c in self.name):
            raise ValueError(f"name: expected letters, digits, '_', '-' or '.', got {self.name!r}")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url: expected an http:// or https:// URL, got {self.url!r}")
        if not (self.interval > 0 and self.timeout > 0 and 1 <= self.attempts <= 100):
            raise ValueError("interval and timeout must be > 0 and attempts between 1 and 100")
        if not 100 <= self.expected_status <= 599:
            raise ValueError(f"expected_status: expected an HTTP status between 100 and 599, got {self.expected_status}")


@dataclass
class Config:
    host: str = field(default_factory=socket.gethostname, metadata=_doc("Value of the host label (default: hostname)."))
    web: WebConfig = field(default_factory=WebConfig)
    log: LogConfig = field(default_factory=LogConfig)
    docker: DockerConfig = field(default_factory=DockerConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)
    resilience: ResilienceConfig = field(default_factory=ResilienceConfig)
    state: StateConfig = field(default_factory=StateConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    textfile: TextfileConfig = field(default_factory=TextfileConfig)
    probes: list[ProbeConfig] = field(default_factory=list, metadata=_doc(
        "HTTP probes: name, url, interval (30s), timeout (5s), expected_status (200), attempts (2)."))

    def __post_init__(self) -> None:
        names = [p.name for p in self.probes]
        if len(set(names)) != len(names):
            raise ValueError(f"probes: names must be unique, got {names}")


# --- validation ---------------------------------------------------------------------------
_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _describe(tp: Any) -> str:
    if tp is Duration:
        return 'a duration like "30s" or "5m"'
    if hasattr(tp, "description"):
        return tp.description
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) is dict:
        key, val = get_args(tp)
        return f"a mapping of {_describe(key).removeprefix('a ').removeprefix('an ')} to {_describe(val).removeprefix('a ').removeprefix('an ')}"
    if get_origin(tp) is list:
        return f"a list of {_describe(get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _coerce(value: Any, tp: Any, origin: str, path: str, *, from_text: bool) -> Any:
    """Check `value` against `tp`; text from env/flags is parsed into the type first."""
    def fail() -> ConfigError:
        return ConfigError(origin, path, f"expected {_describe(tp)}, got {_short(value)}")

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise fail()
        return _build(tp, value, origin, path)
    if get_origin(tp) is dict:
        key_tp, val_tp = get_args(tp)
        if not isinstance(value, Mapping):
            raise fail()
        return {_coerce(str(k) if from_text else k, key_tp, origin, f"{path}[{k!r}]", from_text=from_text):
                _coerce(v, val_tp, origin, f"{path}[{k!r}]", from_text=from_text) for k, v in value.items()}
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise fail()
        return [_coerce(v, item, origin, f"{path}[{i}]", from_text=from_text) for i, v in enumerate(value)]
    if get_origin(tp) is Literal:
        text = str(value).lower() if isinstance(value, bool) else value
        if text not in get_args(tp):
            raise fail()
        return text
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise fail()
    if tp is Duration:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_SECONDS:
            return Duration(value)
        if isinstance(value, str):
            try:
                parsed = Duration.parse(value)
            except (ValueError, OverflowError):
                raise fail() from None
            if parsed <= MAX_SECONDS:
                return parsed
        raise ConfigError(origin, path, f"expected {_describe(tp)} up to 10 years, got {_short(value)}")
    if hasattr(tp, "parse"):
        if isinstance(value, str):
            try:
                return tp.parse(value)
            except ValueError:
                raise fail() from None
        raise fail()
    if tp is int:
        if from_text and isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise fail()
        if -MAX_INT <= value <= MAX_INT:
            return value
        raise ConfigError(origin, path, f"expected an integer between -{MAX_INT} and {MAX_INT}, got {_short(value)}")
    if tp is float:
        number = value
        if from_text and isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise fail() from None
        if isinstance(number, (int, float)) and not isinstance(number, bool):
            try:
                number = float(number)
            except OverflowError:
                raise fail() from None
            if math.isfinite(number):
                return number
            raise ConfigError(origin, path, f"expected a finite number, got {_short(value)}")
        raise fail()
    if tp is str:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a non-UTF-8 env value or flag arrives with surrogate escapes
                raise ConfigError(origin, path, "expected UTF-8 text, got undecodable bytes") from None
            return value
        raise fail()
    raise ConfigError(origin, path, f"unsupported type {tp}")  # schema bug


def _short(value: Any, limit: int = 60) -> str:
    """repr() of a bad value, cut so a 5,000-digit number or a huge list stays one readable line."""
    try:
        text = repr(float(value) if isinstance(value, Duration) else value)
    except ValueError:  # an int too long for repr (Python's 4,300-digit limit)
        return "a number with more than 4300 digits"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _check_bounds(value: Any, f: dataclasses.Field, origin: str, path: str) -> None:
    """The field's `ge`/`gt`/`le` bounds from its metadata."""
    meta = f.metadata
    if "ge" in meta and not value >= meta["ge"]:
        raise ConfigError(origin, path, f"expected a value >= {meta['ge']:g}, got {_short(value)}")
    if "gt" in meta and not value > meta["gt"]:
        raise ConfigError(origin, path, f"expected a value > {meta['gt']:g}, got {_short(value)}")
    if "le" in meta and not value <= meta["le"]:
        raise ConfigError(origin, path, f"expected a value <= {meta['le']:g}, got {_short(value)}")


def _build(cls: type, data: Mapping[str, Any], origin: str, prefix: str, *,
           from_text: bool = False) -> Any:
    hints = _hints(cls)
    for key in data:
        if key not in hints:
            close = difflib.get_close_matches(str(key), list(hints), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (expected one of: {', '.join(hints)})"
            raise ConfigError(origin, _join(prefix, _short(key, 40) if not isinstance(key, str) else key[:60]),
                              "unknown key" + hint)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {k: _coerce(v, hints[k], origin, _join(prefix, k), from_text=from_text) for k, v in data.items()}
    for k, v in kwargs.items():
        _check_bounds(v, fields[k], origin, _join(prefix, k))
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a section's own cross-field check (__post_init__)
        raise ConfigError(origin, prefix, str(exc)) from None


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


# --- layers -------------------------------------------------------------------------------
def leaves(cls: type = Config, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    """Every scalar or list setting as (dotted path, type, field) — for env names and flags."""
    for f in dataclasses.fields(cls):
        tp = _hints(cls)[f.name]
        path = _join(prefix, f.name)
        if dataclasses.is_dataclass(tp):
            yield from leaves(tp, path)
        else:
            yield path, tp, f


def env_name(path: str) -> str:
    return ENV_PREFIX + path.replace(".", "_").upper()


def flag_name(path: str) -> str:
    return "--" + path.replace("_", "-")


def _set(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[last] = value


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


MAX_FILE_BYTES = 1 << 20  # a config or web config file is a few kilobytes


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; ConfigError (one line) for anything else.

    Shared by the config file and the web config file: unreadable, too big, not UTF-8, invalid
    YAML, nested too deep, numbers too long for Python to read, or not a mapping.
    """
    origin = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(origin, "", f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(origin, "", f"expected a file of at most {MAX_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(origin, "", f"expected UTF-8 text, got an undecodable byte at offset {exc.start}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise ConfigError(origin, where, f"invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(origin, "", "invalid YAML: nested too deep") from None
    except (ValueError, OverflowError):  # PyYAML's int() of a 5,000-digit number
        raise ConfigError(origin, "", "invalid YAML value: a number with more than 4300 digits") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(origin, "", f"expected a mapping at the top level, got {type(data).__name__}")
    return data


def read_file(path: str | Path) -> dict[str, Any]:
    """Parse and validate a YAML file; returns its raw mapping (validated against the schema)."""
    data = read_yaml(path)
    _build(Config, data, str(path), "")
    return data


def load(*, file: str | Path | None = None, environ: Mapping[str, str] | None = None,
         flags: Mapping[str, str] | None = None) -> Config:
    """Resolve the four layers into one validated Config.

    `flags` maps dotted paths to the text given on the command line. Each layer is validated on
    its own first so an error names the layer it came from.
    """
    merged: dict[str, Any] = read_file(file) if file else {}
    environ = environ or {}
    by_path = {path: (tp, f) for path, tp, f in leaves()}
    for layer_name, values in (("env", {p: environ[env_name(p)] for p in by_path if env_name(p) in environ}),
                               ("flag", dict(flags or {}))):
        layer: dict[str, Any] = {}
        for path, text in values.items():
            origin = f"env {env_name(path)}" if layer_name == "env" else f"flag {flag_name(path)}"
            tp, f = by_path[path]
            value = _coerce(text, tp, origin, "", from_text=True)
            _check_bounds(value, f, origin, "")
            _set(layer, path, value)
        merged = _merge(merged, layer)
    return _build(Config, merged, "config", "")
