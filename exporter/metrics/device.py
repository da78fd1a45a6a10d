"""Device-side families: the role agent, HTTP probes and the textfile writers, read from status.

Names are the ones the fleet's alerts already use (`role_agent_*`); `failure_type` comes from
the configured exit-code map or `exit_<n>`, so its values are bounded. Circuit breakers of the
agent and probes are exported by the ResilienceCollector like every other breaker.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Protocol, Sequence

from exporter.device.status import PROBE_RESULTS, AgentSnapshot, AgentStatus, ProbeSnapshot, ProbeStatus, RunResult
from exporter.metrics.exposition import Collector
from exporter.metrics.family import COUNTER, GAUGE, Family, Sample, render

if TYPE_CHECKING:
    from exporter.device.components import DeviceSide


def _last(fn: Callable[[AgentSnapshot], float]) -> Callable[[AgentSnapshot], Iterable[Sample]]:
    """Samples of a last-run figure: absent until the first run finished."""
    def samples(s: AgentSnapshot) -> Iterable[Sample]:
        if s.last_run is not None:
            yield (s.host, s.name), fn(s)
    return samples


def _runs(s: AgentSnapshot) -> Iterable[Sample]:
    for result in RunResult:
        yield (s.host, s.name, result.value), s.runs.get(result.value, 0)


def _failure_info(s: AgentSnapshot) -> Iterable[Sample]:
    if s.last_failure_type is not None:
        yield (s.host, s.name, s.last_failure_type), 1


AGENT_LABELS = ("host", "agent")
"""`agent` (agent.name) makes two agents on one host two sets of series; `host` stays for old alerts."""

AGENT_FAMILIES: tuple[Family[AgentSnapshot], ...] = (
    Family("role_agent_last_run_success", GAUGE, "1 if the role agent's last run succeeded, 0 if it failed.",
           AGENT_LABELS, _last(lambda s: int(s.last_run.success))),  # type: ignore[union-attr]
    Family("role_agent_last_run_timestamp_seconds", GAUGE, "Unix time the role agent's last run ended.",
           AGENT_LABELS, _last(lambda s: s.last_run.ended_at)),  # type: ignore[union-attr]
    Family("role_agent_last_run_duration_seconds", GAUGE,
           "Time the role agent's last run took, summed over its attempts.",
           AGENT_LABELS, _last(lambda s: s.last_run.duration)),  # type: ignore[union-attr]
    Family("role_agent_last_exit_code", GAUGE,
           "Exit code of the role agent's last run (124 timeout, 128+n killed by signal n).",
           AGENT_LABELS, _last(lambda s: s.last_run.exit_code)),  # type: ignore[union-attr]
    Family("role_agent_runs_total", COUNTER,
           "Scheduled role agent runs by result: success, failure, skipped (previous still running), "
           "rejected (breaker open).", (*AGENT_LABELS, "result"), _runs),
    Family("role_agent_consecutive_failures", GAUGE, "Role agent runs that failed in a row (0 after a success).",
           AGENT_LABELS, lambda s: [((s.host, s.name), s.consecutive_failures)]),
    Family("role_agent_interval_seconds", GAUGE,
           "Longest expected time between scheduled role agent runs (agent.every + agent.jitter, or "
           "the longest gap of agent.cron); absent unless the agent is or was just scheduled.", AGENT_LABELS,
           lambda s: [((s.host, s.name), s.interval)] if s.interval is not None else []),
    Family("role_agent_last_failure_info", GAUGE,
           "Failure type of the role agent's most recent failed run (always 1).",
           (*AGENT_LABELS, "failure_type"), _failure_info),
)


class AgentCollector:
    """The role_agent_* families of one agent, read from its status at scrape time."""

    def __init__(self, status: AgentStatus) -> None:
        self._status = status

    def families(self) -> tuple[Family, ...]:
        return AGENT_FAMILIES

    def collect(self) -> Iterable[tuple[Family, str]]:
        snap = self._status.snapshot()
        for family in AGENT_FAMILIES:
            yield family, render(family, snap, "")


def _probe_last(fn: Callable[[ProbeSnapshot], float]) -> Callable[[ProbeSnapshot], Iterable[Sample]]:
    def samples(s: ProbeSnapshot) -> Iterable[Sample]:
        if s.last is not None:
            yield (s.target,), fn(s)
    return samples


def _checks(s: ProbeSnapshot) -> Iterable[Sample]:
    for result in PROBE_RESULTS:
        yield (s.target, result), s.checks.get(result, 0)


PROBE_FAMILIES: tuple[Family[ProbeSnapshot], ...] = (
    Family("resilience_probe_success", GAUGE, "1 if the last HTTP probe of the target got the expected status, else 0.",
           ("target",), _probe_last(lambda s: int(s.last.success))),  # type: ignore[union-attr]
    Family("resilience_probe_duration_seconds", GAUGE, "Time the last HTTP probe of the target took, retries included.",
           ("target",), _probe_last(lambda s: s.last.duration)),  # type: ignore[union-attr]
    Family("resilience_probe_checks_total", COUNTER,
           "HTTP probe checks by result: success, failure, rejected (breaker open, not sent).",
           ("target", "result"), _checks),
)


class ProbeCollector:
    """probe_* families of every configured target."""

    def __init__(self, status: ProbeStatus) -> None:
        self._status = status

    def families(self) -> tuple[Family, ...]:
        return PROBE_FAMILIES

    def collect(self) -> Iterable[tuple[Family, str]]:
        snaps = self._status.snapshots()
        for family in PROBE_FAMILIES:
            yield family, "".join(render(family, s, "") for s in snaps)


class CountsErrors(Protocol):
    """Anything counting its failed writes and its collisions (TextfileWriter)."""

    errors_total: int
    collisions_total: int


TEXTFILE_FAMILIES: tuple[Family[Sequence[CountsErrors]], ...] = (
    Family("resilience_exporter_textfile_write_errors_total", COUNTER,
           "Failed writes of the node_exporter textfile; the previous file is kept.", (),
           lambda ws: [((), sum(w.errors_total for w in ws))]),
    Family("resilience_exporter_textfile_collisions_total", COUNTER,
           "Textfile writes that found a series or family type of ours in another file of the directory "
           "(node_exporter drops one of them); the log names the file.", (),
           lambda ws: [((), sum(w.collisions_total for w in ws))]),
)


class TextfileCollector:
    """Failed writes and collisions of the textfile writers (their `WriteCounts`, made before them)."""

    def __init__(self, writers: Sequence[CountsErrors]) -> None:
        self._writers = writers

    def families(self) -> tuple[Family, ...]:
        return TEXTFILE_FAMILIES

    def collect(self) -> Iterable[tuple[Family, str]]:
        for family in TEXTFILE_FAMILIES:
            yield family, render(family, self._writers, "")


def device_collectors(side: DeviceSide, textfile: Sequence[CountsErrors] = ()) -> list[Collector]:
    """Collectors for what the configuration enabled: agent, probes, textfile (each optional)."""
    collectors: list[Collector] = []
    if side.agent_status is not None:
        collectors.append(AgentCollector(side.agent_status))
    if side.prober is not None:
        collectors.append(ProbeCollector(side.probe_status))
    if textfile:
        collectors.append(TextfileCollector(textfile))
    return collectors
