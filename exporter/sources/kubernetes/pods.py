"""Pod statuses -> ContainerRecords. The kubelet already speaks the vocabulary; this maps fields.

Pure logic (no I/O): the watcher feeds it decoded pod dicts and writes the records it returns.
Rules (also in README):
- One record per container and init container status, key `k8s:<namespace>/<pod>/<container>`;
  init containers say so in their message. Spec containers without a status yet are waiting
  in ContainerCreating (the kubelet's default waiting reason, kubelet_pods.go).
- phase/reason from state.{waiting,running,terminated}; unknown reasons fold into Other with
  the raw reason kept. A terminated container without a reason is Completed (exit 0) or Error.
- A Failed pod with a pod-level reason (Evicted, NodeLost, ...) puts that reason on every one
  of its containers, phase terminated.
- restarts mirror restartCount (kube-state-metrics semantics); last exit code, reason and time
  come from state.terminated, else lastState.terminated.
- failures{reason} +1 on each entry into a failure reason (not ContainerCreating/PodInitializing,
  which every pod passes through), and +1 for lastState's reason on each
  observed increase of restartCount whose termination (finishedAt) was not seen before, so an
  OOM kill between two events or across a relist is never missed; oom_kills likewise.
- health (readiness) only for containers whose spec has a readiness or startup probe.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Mapping

from exporter.sources.docker.events import parse_timestamp
from exporter.state import ContainerRecord, Health, Phase, Reason, Source

KEY_PREFIX = "k8s:"
DEFAULT_WAITING = "ContainerCreating"  # kubelet: the waiting reason of a container not yet created
STARTING = frozenset({Reason.CONTAINER_CREATING, Reason.POD_INITIALIZING})  # every pod passes: not failures
Pod = Mapping[str, Any]
Lookup = Callable[[str], "ContainerRecord | None"]


def container_key(namespace: str, pod: str, container: str) -> str:
    return f"{KEY_PREFIX}{namespace}/{pod}/{container}"


def pod_name(pod: Pod) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


_timestamp = lru_cache(maxsize=16384)(parse_timestamp)  # a termination is re-sent on every pod change


def _termination(term: Mapping[str, Any]) -> tuple[int, str, float | None]:
    code = int(term.get("exitCode") or 0)
    raw = term.get("reason") or ("Completed" if code == 0 else "Error")
    return code, raw, _timestamp(term.get("finishedAt"))


def _named(specs: Any, name: str | None) -> Mapping[str, Any]:
    for cspec in specs:
        if cspec.get("name") == name:
            return cspec
    return {}


def _newer(at: float | None, seen: float | None) -> bool:
    return seen is None or (at is not None and at > seen)


class PodMapper:
    """Maps pods to records; remembers each container's last raw status to skip unchanged ones."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._pods: dict[tuple[str, str], tuple[Any, str, tuple[str, ...]]] = {}  # (status, node, keys)

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)
        namespace, _, rest = key[len(KEY_PREFIX):].partition("/")
        self._pods.pop((namespace, rest.rpartition("/")[0]), None)

    def records(self, pod: Pod, get: Lookup) -> list[ContainerRecord]:
        """Every container record of `pod`; unchanged containers return their stored record."""
        namespace, name = pod_name(pod)
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node = spec.get("nodeName") or self.host
        last = self._pods.get((namespace, name))
        if last is not None and last[0] == status and last[1] == node:  # labels/annotations-only change
            unchanged = [get(k) for k in last[2]]
            if None not in unchanged:
                return unchanged  # type: ignore[return-value]
        pod_reason = status.get("reason") if status.get("phase") == "Failed" else None
        pod_message = status.get("message") or ""
        pod_level = (pod_reason, pod_message, node)
        out: list[ContainerRecord] = []
        seen = self._seen
        for statuses, specs, init in ((status.get("initContainerStatuses"), spec.get("initContainers"), True),
                                      (status.get("containerStatuses"), spec.get("containers"), False)):
            statuses, specs = statuses or (), specs or ()
            for cs in statuses:
                key = container_key(namespace, name, cs.get("name") or "")
                old = get(key)
                signature = seen.get(key)
                if old is not None and signature is not None and signature[1] == pod_level and signature[0] == cs:
                    out.append(old)
                    continue
                seen[key] = (cs, pod_level)
                out.append(self._container(
                    key, old, cs, _named(specs, cs.get("name")), init, namespace=namespace, pod=name, node=node,
                    pod_reason=pod_reason, pod_message=pod_message))
            if len(statuses) == len(specs):
                continue  # the usual case: every container has its status
            have = {cs.get("name") for cs in statuses}
            for cspec in specs:
                cname = cspec.get("name")
                if cname and cname not in have:
                    key = container_key(namespace, name, cname)
                    seen.pop(key, None)
                    out.append(self._container(
                        key, get(key), {"name": cname, "state": {}}, cspec, init, namespace=namespace, pod=name,
                        node=node, pod_reason=pod_reason, pod_message=pod_message))
        self._pods[(namespace, name)] = (status, node, tuple(r.key for r in out))
        return out

    def _container(self, key: str, old: ContainerRecord | None, cs: Mapping[str, Any], cspec: Mapping[str, Any],
                   init: bool, *, namespace: str, pod: str, node: str, pod_reason: str | None,
                   pod_message: str) -> ContainerRecord:
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated")
        restarts = int(cs.get("restartCount") or 0)
        current = state.get("terminated")
        started_at = None
        if pod_reason:
            phase, raw, message = Phase.TERMINATED, pod_reason, pod_message
        elif state.get("running") is not None:
            phase, raw, message = Phase.RUNNING, "Running", ""
            started_at = _timestamp((state["running"] or {}).get("startedAt"))
        elif current is not None:
            phase, raw, message = Phase.TERMINATED, _termination(current)[1], current.get("message") or ""
        else:
            waiting = state.get("waiting") or {}
            phase, raw, message = Phase.WAITING, waiting.get("reason") or DEFAULT_WAITING, waiting.get("message") or ""
        reason = Reason.parse(raw)
        raw_kept = raw if reason is Reason.OTHER else ""
        if init:
            message = f"init container: {message}" if message else "init container"

        record = old or ContainerRecord(key=key, source=Source.KUBERNETES, container=cs.get("name") or "")
        seen_at = old.last_terminated_at if old is not None else None
        changes: dict[str, Any] = {}
        ended = _termination(current) if current is not None else None
        ended_before = _termination(last) if last is not None else None
        term = ended or ended_before
        if term is not None:
            code, term_raw, at = term
            changes.update(last_exit_code=code, last_terminated_reason=Reason.parse(term_raw))
            if at is not None and (seen_at is None or at > seen_at):
                changes["last_terminated_at"] = at
        # Failures: entering a failure reason (a new termination counts as a new entry).
        new_exit = ended is not None and old is not None and _newer(ended[2], seen_at)
        entered = old is None or old.reason is not reason or old.raw_reason != raw_kept or new_exit
        failures: list[Reason] = [reason] if entered and reason.is_failure and reason not in STARTING else []
        oom = 1 if current is not None and entered and reason is Reason.OOM_KILLED else 0
        # A restart we saw no terminated state for: count lastState's reason once.
        if (old is not None and ended_before is not None and restarts > old.restarts and ended is None
                and _newer(ended_before[2], seen_at)):
            last_reason = Reason.parse(ended_before[1])
            if last_reason.is_failure:
                failures.append(last_reason)
            oom += last_reason is Reason.OOM_KILLED
        health = Health.NONE
        if phase is Phase.RUNNING and (cspec.get("readinessProbe") or cspec.get("startupProbe")):
            health = (Health.STARTING if cs.get("started") is False
                      else Health.HEALTHY if cs.get("ready") else Health.UNHEALTHY)
        record = record.evolve(
            host=node, namespace=namespace, pod=pod, image=cspec.get("image") or cs.get("image") or "",
            container_id=cs.get("containerID") or "", phase=phase, reason=reason,
            raw_reason=raw_kept, message=message[:500], restarts=restarts,
            terminal=reason.is_terminal, health=health, started_at=started_at or record.started_at,
            oom_kills=record.oom_kills + oom, **changes)
        for failure in failures:
            record = record.with_failure(failure)
        return record
