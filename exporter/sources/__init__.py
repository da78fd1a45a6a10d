"""Sources: the only code that talks to engines (dockerd, the Kubernetes API).

A source writes records into the state store and its own status (up, synced, events); it never
renders metrics. `build_sources` decides which sources the `docker` and `kubernetes` sections ask for.
"""
from __future__ import annotations

import logging
import os
from typing import Protocol

from exporter.config import DockerConfig, KubernetesConfig, PullGuardConfig
from exporter.resilience import ResilienceRegistry
from exporter.state import StateStore

log = logging.getLogger(__name__)
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"


class Source(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def docker_address(docker: DockerConfig) -> str | None:
    """The engine to watch, or None when docker.enabled=auto finds no engine configured."""
    explicit = docker.host or os.environ.get("DOCKER_HOST", "")
    if docker.enabled == "false":
        return None
    if explicit:
        return explicit
    if docker.enabled == "true" or os.path.exists(DEFAULT_DOCKER_SOCKET):
        return f"unix://{DEFAULT_DOCKER_SOCKET}"
    return None


def _pull_guard(guard: PullGuardConfig, store: StateStore, host: str, address: str) -> Source:
    import docker

    from exporter.resilience import KubeletBackoff
    from exporter.sources.docker.pullguard import DesiredImage, PullGuard

    log.info("image pull guard enabled: the exporter will pull images (POST requests to the engine)",
             extra={"fields": {"images": len(guard.images), "images_from": guard.images_from or "-"}})
    return PullGuard(
        store, host=host,
        client_factory=lambda: docker.APIClient(base_url=address, version="auto", timeout=300),
        images=[DesiredImage(i.image, i.pull_policy) for i in guard.images],
        images_from_containers=guard.images_from == "containers",
        backoff=KubeletBackoff(float(guard.backoff_initial), float(guard.backoff_max)),
        max_manifest_attempts=guard.max_manifest_attempts, interval=float(guard.interval))


def _kubernetes(kube: KubernetesConfig, store: StateStore, registry: ResilienceRegistry, host: str) -> Source:
    from exporter.sources.kubernetes import KubernetesWatcher  # imports the kubernetes client
    from exporter.sources.kubernetes.client import api_client

    log.info("kubernetes source enabled", extra={"fields": {
        "namespaces": ",".join(kube.namespaces) or "*", "node": kube.node or "*", "selector": kube.label_selector or "-"}})
    return KubernetesWatcher(
        store, registry, host=host, api_factory=lambda: api_client(kube.kubeconfig, kube.context),
        namespaces=kube.namespaces, label_selector=kube.label_selector, node=kube.node,
        max_containers=kube.max_containers, reconnect_max_backoff=float(kube.reconnect_max_backoff),
        label_allowlist=tuple(kube.label_allowlist))


def build_sources(store: StateStore, registry: ResilienceRegistry, *, host: str, docker: DockerConfig,
                  kubernetes: KubernetesConfig) -> list[Source]:
    """The sources these sections enable; none is a normal, logged situation."""
    sources: list[Source] = []
    address = docker_address(docker)
    if address:
        from exporter.sources.docker import DockerWatcher

        sources.append(DockerWatcher(
            store, registry, host=host, base_url=address, max_containers=docker.max_containers,
            label_allowlist=tuple(docker.label_allowlist), reconnect_max_backoff=float(docker.reconnect_max_backoff),
            cgroup_root=docker.cgroup_root))
        log.info("docker source enabled", extra={"fields": {"address": address}})
        if docker.pull_guard.enabled:
            sources.append(_pull_guard(docker.pull_guard, store, host, address))
    if kubernetes.enabled:
        sources.append(_kubernetes(kubernetes, store, registry, host))
    if not sources:
        log.warning("no Docker or Kubernetes source is configured or reachable; "
                    "serving resilience and self metrics only")
    return sources
