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
- A pod the mapping cannot read raises TypeError, ValueError or AttributeError (the watcher
  counts it malformed) and changes nothing: a name, reason, message, image or id that is not a
  string, a name holding "/" (it would split the record key), a pod without a name, an exit code
  or restart count that is not a number.
"""
from __future__ import annotations

from functools import lru_cache
from types import MappingProxyType

from orjson import dumps as _dumps
from typing import Any, Callable, Hashable, Mapping

from exporter.sources.timestamps import parse_timestamp
from exporter.state import ContainerRecord, Health, Phase, PodMeta, Reason, Source

KEY_PREFIX = "k8s:"
DEFAULT_WAITING = "ContainerCreating"  # kubelet: the waiting reason of a container not yet created
STARTING = frozenset({Reason.CONTAINER_CREATING, Reason.POD_INITIALIZING})  # every pod passes: not failures
Pod = Mapping[str, Any]
Lookup = Callable[[str], "ContainerRecord | None"]


def container_key(namespace: str, pod: str, container: str) -> str:
    return f"{KEY_PREFIX}{namespace}/{pod}/{container}"


def pod_name(pod: Pod) -> tuple[str, str]:
    """(namespace, name); a value that is not a string reads as "" (and `records` refuses the pod)."""
    meta = pod.get("metadata") or {}
    namespace, name = meta.get("namespace") or "", meta.get("name") or ""
    return namespace if isinstance(namespace, str) else "", name if isinstance(name, str) else ""


def _text(value: Any, what: str) -> str:
    """A string field ("" when absent); any other type makes the pod malformed."""
    if value is None or isinstance(value, str):
        return value or ""
    raise TypeError(f"{what}: expected a string, got {type(value).__name__}")


def _name(value: Any, what: str) -> str:
    """A namespace, pod or container name: a string without "/", which would split the record key."""
    text = _text(value, what)
    if "/" in text:
        raise ValueError(f"{what}: {text[:100]!r} holds a '/'")
    return text


def _int(value: Any, what: str) -> int:
    try:
        return int(value or 0)
    except OverflowError:  # inf (json.loads reads Infinity): not a number either
        raise ValueError(f"{what}: expected an integer, got {value!r}") from None


_timestamp = lru_cache(maxsize=16384)(parse_timestamp)  # a termination is re-sent on every pod change


def _termination(term: Mapping[str, Any]) -> tuple[int, str, float | None]:
    code = _int(term.get("exitCode"), "terminated.exitCode")
    raw = _text(term.get("reason"), "terminated.reason") or ("Completed" if code == 0 else "Error")
    return code, raw, _timestamp(term.get("finishedAt"))


def _named(specs: Any, name: str | None) -> Mapping[str, Any]:
    for cspec in specs:
        if cspec.get("name") == name:
            return cspec
    return {}


def _signature(value: Any) -> Any:
    """What is remembered of a status to see whether the next one differs: the hash of its JSON.
    Kept as decoded dicts, ~60 objects per pod joined the heap that Python's cyclic garbage
    collector walks, and every watch event replaced them: a full collection every ~1,000 events
    over every pod's status (~15 % of Kubernetes ingest). An int is not tracked and is 32 bytes
    (its JSON would be ~2 KB per pod). Two different statuses of one container share a 64-bit
    SipHash (keyed per process) with odds of 2**-64: a change then waits for the next one."""
    try:
        return hash(_dumps(value))
    except TypeError:  # not JSON (a caller's own dict): remembered as it is
        return value


_NO_STATUS, _NO_STATUS_PRIMARY = object(), object()  # the signature of a container without a status yet
_ABSENT = object()  # a label the pod does not have (a label may hold any string, "" included)
_METAS = 4096  # distinct (owners, labels) memoised: ~ the controllers of a cluster; cleared when full


def _pod_signature(reason: str | None, message: str, node: str, images: list[Any], meta_seen: Hashable | None,
                   meta: PodMeta) -> Any:
    """What a pod's containers are mapped from beside their own status, remembered with each.

    An int (see _signature): kept as a tuple holding the images list and the PodMeta, two objects
    per pod joined the collector's heap on every event. Raw values that are not hashable (a
    caller's own dict as an image) are remembered as they are.
    """
    try:
        if meta_seen is not None:
            return hash((reason, message, node, meta_seen, *images))
    except TypeError:
        pass
    return (reason, message, node, images, meta)


def _newer(at: float | None, seen: float | None) -> bool:
    return seen is None or (at is not None and at > seen)


class PodMapper:
    """Maps pods to records; remembers each container's last raw status to skip unchanged ones."""

    def __init__(self, host: str, *, label_allowlist: tuple[str, ...] = ()) -> None:
        self.host = host
        self.label_allowlist = label_allowlist
        # key -> (its raw status, the pod-level facts it was mapped with), both as _signature/_pod_signature
        self._seen: dict[str, tuple[Any, Any]] = {}
        self._metas: dict[Hashable, PodMeta] = {}  # see _pod_meta

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)

    def records(self, pod: Pod, get: Lookup) -> list[ContainerRecord]:
        """Every container record of `pod`; unchanged containers return their stored record.

        Raises TypeError, ValueError or AttributeError for a pod it cannot read, remembering nothing
        of it: the next good state of the pod maps as if the bad one never came.
        Each container is compared on its own status (not the pod's whole status first): a watch
        event almost always changes some container, and hashing the whole status too cost ~10 %.
        """
        meta = pod.get("metadata") or {}
        namespace = _name(meta.get("namespace"), "metadata.namespace")
        name = _name(meta.get("name"), "metadata.name")
        if not name:
            raise ValueError("metadata.name: missing")
        spec = pod.get("spec") or {}
        status = pod.get("status") or {}
        node = _text(spec.get("nodeName"), "spec.nodeName") or self.host
        # A pod's spec is immutable but for its images (`kubectl set image`): the API server writes
        # the new image before the kubelet reports anything, so the images join the status here.
        images = [c.get("image") if type(c) is dict else None
                  for part in ("initContainers", "containers") for c in spec.get(part) or ()]
        meta_kept, meta_seen = self._pod_meta(meta)  # allow-listed labels and owners change records like images do
        pod_reason = _text(status.get("reason"), "status.reason") if status.get("phase") == "Failed" else None
        pod_message = _text(status.get("message"), "status.message")
        pod_level = _pod_signature(pod_reason, pod_message, node, images, meta_seen, meta_kept)
        out: list[ContainerRecord] = []
        seen = self._seen
        staged: list[tuple[str, tuple[Any, Any]]] = []  # signatures, written to `seen` once the whole pod mapped
        for statuses, specs, init in ((status.get("initContainerStatuses"), spec.get("initContainers"), True),
                                      (status.get("containerStatuses"), spec.get("containers"), False)):
            statuses, specs = statuses or (), specs or ()
            for cs in statuses:
                cname = _name(cs.get("name"), "containerStatuses.name")
                key = container_key(namespace, name, cname)
                old, signature = get(key), (_signature(cs), pod_level)
                if old is not None and seen.get(key) == signature:
                    out.append(old)
                    continue
                staged.append((key, signature))
                out.append(self._container(
                    key, old, cs, _named(specs, cs.get("name")), init, namespace=namespace, pod=name, node=node,
                    pod_reason=pod_reason, pod_message=pod_message, meta=meta_kept, primary=not out))
            if len(statuses) == len(specs):
                continue  # the usual case: every container has its status
            have = {cs.get("name") for cs in statuses}
            for cspec in specs:
                cname = _name(cspec.get("name"), "containers.name")
                if cname and cname not in have:
                    key = container_key(namespace, name, cname)
                    # no status yet: it maps from its spec (in the pod-level images) and its place alone
                    old, signature = get(key), (_NO_STATUS_PRIMARY if not out else _NO_STATUS, pod_level)
                    if old is not None and seen.get(key) == signature:
                        out.append(old)
                        continue
                    staged.append((key, signature))
                    out.append(self._container(
                        key, old, {"name": cname, "state": {}}, cspec, init, namespace=namespace, pod=name,
                        node=node, pod_reason=pod_reason, pod_message=pod_message, meta=meta_kept, primary=not out))
        for key, signature in staged:
            seen[key] = signature
        return out

    def _pod_meta(self, meta: Mapping[str, Any]) -> tuple[PodMeta, Hashable | None]:
        """Allow-listed labels and the ownerReferences (kind, name, controller) of a pod, and the
        raw values they were read from (None if those are not hashable).

        Memoised by those raw values: every watch event of a pod re-sends them unchanged, and the
        pods of one controller share one PodMeta.
        """
        labels = meta.get("labels") or {}
        owners = meta.get("ownerReferences")
        allowed = self.label_allowlist
        try:
            memo = (_dumps(owners), *[labels.get(k, _ABSENT) for k in allowed]) if allowed else _dumps(owners)
            kept = self._metas.get(memo)
        except (TypeError, AttributeError):  # not JSON, labels not a mapping: read (and refused) below
            memo, kept = None, None
        if kept is None:
            kept = self._read_pod_meta(labels, owners)
            if memo is not None:
                if len(self._metas) >= _METAS:
                    self._metas.clear()
                self._metas[memo] = kept
        return kept, memo

    def _read_pod_meta(self, labels: Any, owners: Any) -> PodMeta:
        kept = {k: _text(labels[k], f"metadata.labels.{k}") for k in self.label_allowlist if k in labels}
        owned = tuple((_text(o.get("kind"), "ownerReferences.kind"), _text(o.get("name"), "ownerReferences.name"),
                       o.get("controller") is True)
                      for o in owners or () if type(o) is dict)
        return PodMeta(MappingProxyType(kept), owned) if kept else PodMeta(owners=owned)

    def _container(self, key: str, old: ContainerRecord | None, cs: Mapping[str, Any], cspec: Mapping[str, Any],
                   init: bool, *, namespace: str, pod: str, node: str, pod_reason: str | None,
                   pod_message: str, meta: PodMeta, primary: bool) -> ContainerRecord:
        """One container's record, built with a single copy of the old one (pod-level facts included)."""
        state = cs.get("state") or {}
        last = (cs.get("lastState") or {}).get("terminated")
        restarts = _int(cs.get("restartCount"), "restartCount")
        current = state.get("terminated")
        ended = _termination(current) if current is not None else None
        started_at = None
        if pod_reason:
            phase, raw, message = Phase.TERMINATED, pod_reason, pod_message
        elif state.get("running") is not None:
            phase, raw, message = Phase.RUNNING, "Running", ""
            started_at = _timestamp((state["running"] or {}).get("startedAt"))
        elif ended is not None:
            phase, raw, message = (Phase.TERMINATED, ended[1], _text(current.get("message"), "terminated.message"))
        else:
            waiting = state.get("waiting") or {}
            phase, raw, message = (Phase.WAITING, _text(waiting.get("reason"), "waiting.reason") or DEFAULT_WAITING,
                                   _text(waiting.get("message"), "waiting.message"))
        reason = Reason.parse(raw)
        raw_kept = raw if reason is Reason.OTHER else ""
        if init:
            message = f"init container: {message}" if message else "init container"

        record = old or ContainerRecord(key=key, source=Source.KUBERNETES, container=cs.get("name") or "")
        seen_at = old.last_terminated_at if old is not None else None
        changes: dict[str, Any] = {}
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
        if failures:
            counts = dict(record.failures)
            for failure in failures:
                counts[failure] = counts.get(failure, 0) + 1
            changes["failures"] = MappingProxyType(counts)
        return record.evolve(
            pod_meta=meta if primary else None,
            host=node, namespace=namespace, pod=pod,
            image=_text(cspec.get("image"), "containers.image") or _text(cs.get("image"), "containerStatuses.image"),
            container_id=_text(cs.get("containerID"), "containerID"), phase=phase, reason=reason,
            raw_reason=raw_kept, message=message[:500], restarts=restarts,
            terminal=reason.is_terminal, health=health, started_at=started_at or record.started_at,
            oom_kills=record.oom_kills + oom, **changes)
