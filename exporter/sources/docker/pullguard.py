"""The image pull guard: the kubelet's pull back-off for Docker hosts, which have none.

Opt-in. Every `interval` it reconciles the desired images (configured, and/or those of the
host's containers): a present image is Pulled; a missing one is pulled on the kubelet schedule
per image (10 s doubling to 300 s, RetryTracker). Failures read like the kubelet's: the failed
attempt is ErrImagePull, the wait before the next one ImagePullBackOff. Terminal at once, never
retried: InvalidImageName (malformed reference), ErrImageNeverPull (policy Never, image absent),
auth failures (401/403: remedy `docker login <registry>`). A missing tag/manifest keeps backing
off but becomes terminal after `max_manifest_attempts`. Network and DNS errors stay transient.
Pulls run on a small pool, so one slow or failing image never holds up the others.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterable

import docker

from exporter.resilience import KubeletBackoff, RetryTracker
from exporter.sources.docker.reference import InvalidReference, parse_reference
from exporter.state import ContainerRecord, Phase, Reason, Source, StateStore

log = logging.getLogger(__name__)
KIND = "image"


class PullError(Enum):
    """Why a pull failed, from the engine's error text (it passes registry errors through)."""

    AUTH = "auth"
    MANIFEST_UNKNOWN = "manifest_unknown"
    NETWORK = "network"
    OTHER = "other"


_MARKERS: tuple[tuple[PullError, tuple[str, ...]], ...] = (
    (PullError.AUTH, ("unauthorized", "authentication required", "pull access denied", "denied:",
                      "no basic auth credentials", "403 forbidden")),
    (PullError.MANIFEST_UNKNOWN, ("manifest unknown", "not found", "name unknown")),
    (PullError.NETWORK, ("no such host", "connection refused", "i/o timeout", "timeout", "network is unreachable",
                         "server misbehaving", "connection reset", "tls handshake", "eof", "dial tcp", "lookup ")),
)


# A bare status code counts only as a word of its own: "127.0.0.1:54013" is a port, not a 401.
_AUTH_STATUS = re.compile(r"(?<![\w:.])40[13](?![\w.])")


def classify_pull_error(message: str) -> PullError:
    text = message.lower()
    if _AUTH_STATUS.search(text):
        return PullError.AUTH
    for kind, markers in _MARKERS:
        if any(m in text for m in markers):
            return kind
    return PullError.OTHER


@dataclass(frozen=True)
class DesiredImage:
    reference: str
    pull_policy: str = "IfNotPresent"  # IfNotPresent | Always | Never


class PullGuard:
    """Reconciles desired images against one engine and reports each as a record."""

    def __init__(self, store: StateStore, *, host: str, client_factory: Callable[[], Any],
                 images: Iterable[DesiredImage] = (), images_from_containers: bool = False,
                 backoff: KubeletBackoff | None = None, max_manifest_attempts: int = 10,
                 interval: float = 10.0, pull_timeout: float = 300.0, workers: int = 4,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.host = host
        self._client_factory = client_factory
        self.images = {i.reference: i for i in images}
        self.images_from_containers = images_from_containers
        self.tracker = RetryTracker(backoff=backoff or KubeletBackoff(), clock=clock)
        self.max_manifest_attempts = max_manifest_attempts
        self.interval = interval
        self.pull_timeout = pull_timeout
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pull")
        self._in_flight: dict[str, Future[None]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    name = "docker-pull-guard"

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="pull-guard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception:
                log.exception("pull guard reconcile failed")
            self._stop.wait(self.interval)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait for every pull under way (tests and one-shot runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                pending = list(self._in_flight.values())
            if not pending:
                return True
            for future in pending:
                try:
                    future.result(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:
                    pass
        return False

    def desired(self) -> dict[str, DesiredImage]:
        wanted = dict(self.images)
        if self.images_from_containers:
            for record in self.store.records():
                if record.kind == "container" and record.source is Source.DOCKER and record.image:
                    wanted.setdefault(record.image, DesiredImage(record.image))
        return wanted

    # -- one reconcile pass --------------------------------------------------------------------
    def reconcile(self) -> None:
        wanted = self.desired()
        self.store.retain((self._key(r) for r in wanted), source=Source.DOCKER.value, kind=KIND)
        client = self._client_factory()
        for ref, image in wanted.items():
            with self._lock:
                if ref in self._in_flight:
                    continue
            self._reconcile_one(client, image)

    def _reconcile_one(self, client: Any, image: DesiredImage) -> None:
        ref = image.reference
        try:
            parsed = parse_reference(ref)
        except InvalidReference as exc:
            self._report(ref, Reason.INVALID_IMAGE_NAME, terminal=True, message=str(exc))
            return
        present = self._present(client, ref)
        if present and image.pull_policy != "Always":
            self.tracker.record_success(ref)
            self._report(ref, Reason.PULLED, phase=Phase.RUNNING)
            return
        if image.pull_policy == "Never":
            self._report(ref, Reason.ERR_IMAGE_NEVER_PULL, terminal=True,
                         message=f'Container image "{ref}" is not present with pull policy of Never')
            return
        current = self.store.get(self._key(ref))
        if current is not None and current.terminal:
            return  # terminal failures are never retried
        if not self.tracker.should_retry(ref):
            state = self.tracker.state(ref)
            if state is not None and current is not None and current.reason is Reason.ERR_IMAGE_PULL:
                self._report(ref, Reason.IMAGE_PULL_BACK_OFF, retries=state.count, next_retry=state.next_retry,
                             message=f'Back-off pulling image "{ref}": {state.last_error}')
            return
        with self._lock:
            self._in_flight[ref] = self._pool.submit(self._pull, client, ref, parsed.name, parsed.pull_tag,
                                                     parsed.registry)

    def _present(self, client: Any, ref: str) -> bool:
        try:
            client.inspect_image(ref)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.status_code in (400, 404):  # some engines answer 400 for odd names
                return False
            raise

    def _pull(self, client: Any, ref: str, repository: str, tag: str, registry: str) -> None:
        try:
            error = ""
            try:
                for line in client.pull(repository, tag=tag, stream=True, decode=True):
                    if isinstance(line, dict) and line.get("error"):
                        error = str(line["error"])
            except docker.errors.APIError as exc:
                error = str(exc.explanation or exc)
            except Exception as exc:  # transport failure: the engine itself is unreachable
                error = f"{type(exc).__name__}: {exc}"
            if not error:
                self.tracker.record_success(ref)
                self._report(ref, Reason.PULLED, phase=Phase.RUNNING, message="Successfully pulled image")
                log.info("pulled image", extra={"fields": {"image": ref}})
                return
            self._failed(ref, error, registry)
        finally:
            with self._lock:
                self._in_flight.pop(ref, None)

    def _failed(self, ref: str, error: str, registry: str) -> None:
        kind = classify_pull_error(error)
        state = self.tracker.record_failure(ref, error)
        log.warning("image pull failed", extra={"fields": {"image": ref, "kind": kind.value, "attempt": state.count,
                                                           "err": error}})
        if kind is PullError.AUTH:
            self._report(ref, Reason.ERR_IMAGE_PULL, terminal=True, retries=state.count, message=error, attempt=True,
                         remedy=f"The registry refused the credentials: run `docker login {registry}` on the host "
                                f"(or fix the image's repository name and access rights).")
            return
        if kind is PullError.MANIFEST_UNKNOWN and state.count >= self.max_manifest_attempts:
            self._report(ref, Reason.ERR_IMAGE_PULL, terminal=True, retries=state.count, message=error, attempt=True,
                         remedy=f"The tag or digest does not exist in {registry} after {state.count} attempts: "
                                f"push it or correct the reference.")
            return
        self._report(ref, Reason.ERR_IMAGE_PULL, retries=state.count, next_retry=state.next_retry, message=error,
                     attempt=True)

    # -- records ---------------------------------------------------------------------------
    @staticmethod
    def _key(ref: str) -> str:
        return f"image:{ref}"

    def _report(self, ref: str, reason: Reason, *, phase: Phase = Phase.WAITING, terminal: bool = False,
                retries: int = 0, next_retry: float | None = None, message: str = "", remedy: str = "",
                attempt: bool = False) -> None:
        """Write the image's record; a failed pull `attempt` always counts as a failure entry."""
        key = self._key(ref)
        old = self.store.get(key) or ContainerRecord(key=key, source=Source.DOCKER, container="", kind=KIND,
                                                     host=self.host, image=ref, created_at=self.clock())
        record = old.evolve(phase=phase, reason=reason, terminal=terminal, retry_count=retries,
                            next_retry_at=None if terminal else next_retry, message=message[:500],
                            remedy_override=remedy)
        if reason.is_failure and (attempt or old.reason is not reason):
            record = record.with_failure(reason)
        if record != old or self.store.get(key) is None:
            self.store.put(record, message=message[:200])
