"""The configuration schema: a tree of dataclasses, one per section, with help text and bounds.

Each section is what one part of the program receives (`DockerConfig` for the Docker source,
`AgentConfig` for the agent runner, ...). Cross-field checks live in `__post_init__` and raise
ValueError; `exporter.config.validation` turns that into a ConfigError naming the key path.
The agent's exit-code defaults live here, so `exporter.device` imports config and never the reverse.
"""
from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

DEFAULT_PORT = 10099
MAX_SECONDS = 10 * 365 * 86400.0   # any longer duration is a typo; APScheduler's datetimes overflow on huge ones
MAX_INT = 10**9                    # every integer setting is a count, a size or an exit code


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



FLEET_EXIT_CODES: dict[int, str] = {2: "inventory_missing", 3: "compose_failed", 4: "rollback_failed"}
"""The role-agent's own codes; the default of `agent.exit_codes`."""


def check_exit_codes(codes: Mapping[int, str]) -> None:
    """Exit codes 1-255 mapped to failure type names usable as label values; ValueError names the bad one."""
    for code, name in codes.items():
        if not (0 < code <= 255):
            raise ValueError(f"exit_codes: exit code must be 1-255, got {code}")
        if not name or not all(c.isalnum() or c == "_" for c in name):
            raise ValueError(f"exit_codes[{code}]: failure type must be letters, digits and _, got {name!r}")


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
    cgroup_root: str = field(default="/sys/fs/cgroup", metadata=_doc(
        "Where the host's cgroup tree is seen: running containers' OOM kill counters are read there "
        "(the engine loses some); empty: off."))
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
        check_exit_codes(self.exit_codes)  # ValueError names the bad code or type
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
