"""Container state families, one table for both sources, rendered from the state store.

Names follow kube-state-metrics' shape under our own `workload_container_` prefix (cAdvisor owns
`container_*`, kube-state-metrics owns `kube_*`). Every series carries the same identity labels
so one alert or panel serves Docker hosts and clusters alike.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from exporter.metrics.cache import RenderCache
from exporter.metrics.family import COUNTER, GAUGE, Family, Sample, label_prefix
from exporter.state import ContainerRecord, Health, Phase, StateStore

IDENTITY_LABELS = ("source", "host", "namespace", "pod", "container", "image")


def _info(r: ContainerRecord) -> Iterable[Sample]:
    yield (r.container_id,), 1


def _phase(r: ContainerRecord) -> Iterable[Sample]:
    for phase in Phase:
        yield (phase.value,), int(r.phase is phase)


def _reason(r: ContainerRecord) -> Iterable[Sample]:
    yield (r.reason.value, r.reason.classification.value), 1


def _waiting_reason(r: ContainerRecord) -> Iterable[Sample]:
    if r.phase is Phase.WAITING:
        yield (r.reason.value,), 1


def _health(r: ContainerRecord) -> Iterable[Sample]:
    if r.health is not Health.NONE:
        for health in (Health.STARTING, Health.HEALTHY, Health.UNHEALTHY):
            yield (health.value,), int(r.health is health)


def _restarts(r: ContainerRecord) -> Iterable[Sample]:
    yield (), r.restarts


def _oom_kills(r: ContainerRecord) -> Iterable[Sample]:
    yield (), r.oom_kills


def _failures(r: ContainerRecord) -> Iterable[Sample]:
    for reason, count in r.failures.items():
        yield (reason.value,), count


def _last_exit_code(r: ContainerRecord) -> Iterable[Sample]:
    if r.last_exit_code is not None:
        yield (), r.last_exit_code


def _last_terminated_reason(r: ContainerRecord) -> Iterable[Sample]:
    if r.last_terminated_reason is not None:
        yield (r.last_terminated_reason.value,), 1


def _last_terminated_at(r: ContainerRecord) -> Iterable[Sample]:
    if r.last_terminated_at is not None:
        yield (), r.last_terminated_at


def _terminal(r: ContainerRecord) -> Iterable[Sample]:
    if r.terminal:
        yield (r.reason.value,), 1


def _retries(r: ContainerRecord) -> Iterable[Sample]:
    yield (), r.retry_count


def _next_retry(r: ContainerRecord) -> Iterable[Sample]:
    if r.next_retry_at is not None:
        yield (), r.next_retry_at


def _started(r: ContainerRecord) -> Iterable[Sample]:
    if r.started_at is not None:
        yield (), r.started_at


CONTAINER_FAMILIES: tuple[Family[ContainerRecord], ...] = (
    Family("workload_container_info", GAUGE,
           "Information about a watched container (always 1).", ("container_id",), _info),
    Family("workload_container_phase", GAUGE,
           "Container phase: 1 for the current one of running, waiting, terminated.", ("phase",), _phase),
    Family("workload_container_reason", GAUGE,
           "Current reason of the container (always 1), with its classification ok, transient or terminal.",
           ("reason", "classification"), _reason),
    Family("workload_container_waiting_reason", GAUGE,
           "Reason the container is waiting; present only while waiting (like kube-state-metrics).",
           ("reason",), _waiting_reason),
    Family("workload_container_health_status", GAUGE,
           "Health-check status: 1 for the current one; absent when no health check is defined.",
           ("status",), _health),
    Family("workload_container_restarts_total", COUNTER,
           "Restarts of the container as counted by the engine or kubelet.", (), _restarts),
    Family("workload_container_oom_kills_total", COUNTER,
           "Times the container was killed for running out of memory.", (), _oom_kills),
    Family("workload_container_failures_total", COUNTER,
           "Entries into each failure reason, so states shorter than a scrape are not missed.",
           ("reason",), _failures),
    Family("workload_container_last_exit_code", GAUGE,
           "Exit code of the container's last termination.", (), _last_exit_code),
    Family("workload_container_last_terminated_reason", GAUGE,
           "Reason of the container's last termination (always 1).", ("reason",), _last_terminated_reason),
    Family("workload_container_last_terminated_timestamp_seconds", GAUGE,
           "Unix time of the container's last termination.", (), _last_terminated_at),
    Family("workload_container_terminal", GAUGE,
           "1 when the container is in a failure that will not heal without a human.", ("reason",), _terminal),
    Family("workload_container_retries", GAUGE,
           "Retries made so far for the container's current failure (pulls, restarts).", (), _retries),
    Family("workload_container_next_retry_timestamp_seconds", GAUGE,
           "Unix time of the next expected retry or restart.", (), _next_retry),
    Family("workload_container_started_timestamp_seconds", GAUGE,
           "Unix time the container last started.", (), _started),
)


def _identity(r: ContainerRecord) -> str:
    return label_prefix(IDENTITY_LABELS, (r.source.value, r.host, r.namespace, r.pod, r.container, r.image))


def label_name(key: str) -> str:
    """An engine label key as a Prometheus label name, as kube-state-metrics does: label_<key>."""
    return "label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def labels_family(allowlist: Sequence[str]) -> Family[ContainerRecord]:
    """workload_container_labels with one label per allow-listed engine label key."""
    keys = tuple(allowlist)

    def samples(r: ContainerRecord) -> Iterable[Sample]:
        yield tuple(r.labels.get(k, "") for k in keys), 1

    return Family("workload_container_labels", GAUGE,
                  "Allow-listed engine labels of the container (always 1).",
                  tuple(label_name(k) for k in keys), samples)


class ContainerCollector:
    """Keeps rendered container text in step with the store through change notifications."""

    def __init__(self, store: StateStore, *, label_allowlist: Sequence[str] = ()) -> None:
        families = CONTAINER_FAMILIES + ((labels_family(label_allowlist),) if label_allowlist else ())
        self._families = families
        self._cache: RenderCache[str, ContainerRecord] = RenderCache(families, _identity, store.get)
        store.subscribe(lambda key, _record: self._cache.mark(key))
        self._cache.mark_all(r.key for r in store.records())

    def collect(self) -> Iterable[tuple[Family[ContainerRecord], bytes]]:
        return self._cache.bodies()

    def families(self) -> tuple[Family[ContainerRecord], ...]:
        return self._families
