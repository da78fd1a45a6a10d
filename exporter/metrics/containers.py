"""Container state families, one table for both sources, rendered from the state store.

Names follow kube-state-metrics' shape under our own `workload_container_` prefix (cAdvisor owns
`container_*`, kube-state-metrics owns `kube_*`). Every series carries the same identity labels
so one alert or panel serves Docker hosts and clusters alike. Like kube-state-metrics, `image` is
only on `workload_container_info` (join it with `group_left(image)`), so an image bump replaces one
series of a container, not all of them; the pull guard's desired images (`container=""`) keep
`image` on every family, as it is what tells them apart.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

from exporter.metrics.cache import RenderCache
from exporter.metrics.deflate import Segment
from exporter.metrics.family import COUNTER, GAUGE, Family, Sample, escape, label_prefix, render
from exporter.state import ContainerRecord, Health, Phase, Source, StateStore

IDENTITY_LABELS = ("source", "host", "namespace", "pod", "container")
IMAGE_KIND = "image"  # the pull guard's records of desired images


def _info(r: ContainerRecord) -> Iterable[Sample]:
    if r.kind == IMAGE_KIND:
        yield (r.container_id,), 1  # `image` is in its identity already
    else:
        yield (r.container_id, r.image), 1


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
           "Information about a watched container (always 1); the only container family with `image`.",
           ("container_id", "image"), _info),
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
    identity = label_prefix(IDENTITY_LABELS, (r.source.value, r.host, r.namespace, r.pod, r.container))
    return f'{identity},image="{escape(r.image)}"' if r.kind == IMAGE_KIND else identity


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


POD_LABELS = ("source", "host", "namespace", "pod")


def _pod_identity(r: ContainerRecord) -> str:
    return label_prefix(POD_LABELS, (r.source.value, r.host, r.namespace, r.pod))


def _owners(r: ContainerRecord) -> Iterable[Sample]:
    """kube_pod_owner's shape: one series per ownerReference, `<none>` for a pod without one."""
    meta = r.pod_meta
    if meta is None:
        return
    if not meta.owners:
        yield ("<none>", "<none>", "false"), 1
    for kind, name, controller in meta.owners:
        yield (kind, name, "true" if controller else "false"), 1


POD_OWNER: Family[ContainerRecord] = Family(
    "workload_pod_owner", GAUGE, "The pod's owners from metadata.ownerReferences (always 1), like kube_pod_owner.",
    ("owner_kind", "owner_name", "owner_is_controller"), _owners)


def pod_labels_family(allowlist: Sequence[str]) -> Family[ContainerRecord]:
    """workload_pod_labels with one label per allow-listed pod label key, like kube_pod_labels."""
    keys = tuple(allowlist)

    def samples(r: ContainerRecord) -> Iterable[Sample]:
        if r.pod_meta is not None:
            yield tuple(r.pod_meta.labels.get(k, "") for k in keys), 1

    return Family("workload_pod_labels", GAUGE, "Allow-listed labels of the Kubernetes pod (always 1).",
                  tuple(label_name(k) for k in keys), samples)


class ContainerCollector:
    """Keeps rendered container text in step with the store through change notifications.

    Pod-level families (owner, labels) come from a second cache with the pod's identity as
    prefix, filled from each pod's first container record only (kube-state-metrics keeps one
    store per resource the same way).
    """

    def __init__(self, store: StateStore, *, label_allowlist: Sequence[str] = (),
                 pod_label_allowlist: Sequence[str] = ()) -> None:
        families = CONTAINER_FAMILIES + ((labels_family(label_allowlist),) if label_allowlist else ())
        pod_families = (POD_OWNER, *((pod_labels_family(pod_label_allowlist),) if pod_label_allowlist else ()))
        self._families = families + pod_families
        self._cache: RenderCache[str, ContainerRecord] = RenderCache(families, _identity, store.get, rank=_newest)
        self._pods: RenderCache[str, ContainerRecord] = RenderCache(pod_families, _pod_identity, store.get, rank=_newest)
        store.subscribe(self._mark)
        keys = [r.key for r in store.records()]
        self._cache.mark_all(keys)
        self._pods.mark_all(keys)

    def _mark(self, key: str, record: ContainerRecord | None) -> None:
        self._cache.mark(key)
        if record is None or record.source is Source.KUBERNETES:  # only pods have pod-level text
            self._pods.mark(key)

    def collect(self) -> Iterable[tuple[Family, bytes]]:
        return self._with_shadowed([*self._cache.bodies(), *self._pods.bodies()])

    def collect_compressed(self) -> Iterable[tuple[Family, bytes | Segment]]:
        """As `collect`, with each cached family's text compressed (kept per block; same order)."""
        return self._with_shadowed([*self._cache.compressed(), *self._pods.compressed()])

    def _with_shadowed(self, bodies: list) -> list:  # type: ignore[type-arg]
        shadowed = render(SHADOWED, self._cache.shadowed(), "").encode()  # pods: deduplicated, not counted
        return [*bodies, (SHADOWED, shadowed)]

    def families(self) -> tuple[Family, ...]:
        return (*self._families, SHADOWED)


def _newest(r: ContainerRecord) -> tuple[float, float]:
    """Of two records with the same identity labels, the one created (then started) last is shown."""
    return (r.created_at or 0.0, r.started_at or 0.0)


SHADOWED: Family[int] = Family(
    "resilience_exporter_shadowed_records", GAUGE,
    "Records not exported because a newer record has the same identity labels (a removal the "
    "exporter missed, an engine reusing a name): /metrics never holds two series alike.", (), lambda n: [((), n)])
