"""Pod labels (allow-listed) and owners, like kube_pod_labels and kube_pod_owner: one series per
pod however many containers it has, and a label change reaches the series."""
from __future__ import annotations

import copy
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics import ContainerCollector, Exposition
from exporter.sources.kubernetes.pods import PodMapper
from exporter.state import StateStore
from tests.integration.fake_kube import load_pod

POD = {"source": "kubernetes", "host": "worker-2", "namespace": "shop", "pod": "web-7d4b9c8f6d-x2x9q"}


def series(exposition: Exposition, name: str) -> list[dict[str, str]]:
    return [s.labels for f in text_string_to_metric_families(exposition.render().decode()) for s in f.samples
            if s.name == name]


def see(store: StateStore, mapper: PodMapper, pod: dict[str, Any]) -> None:
    for record in mapper.records(pod, store.get):
        store.put(record)


def test_one_owner_and_one_labels_series_per_pod_with_only_allow_listed_keys() -> None:
    store = StateStore()
    exposition = Exposition([ContainerCollector(store, pod_label_allowlist=["app.kubernetes.io/name", "team"])])
    mapper = PodMapper("fallback", label_allowlist=("app.kubernetes.io/name", "team"))
    pod = load_pod("running")
    assert len(pod["spec"]["containers"]) == 2  # app and log-shipper: still one pod series
    see(store, mapper, pod)
    assert series(exposition, "workload_pod_owner") == [
        {**POD, "owner_kind": "ReplicaSet", "owner_name": "web-7d4b9c8f6d", "owner_is_controller": "true"}]
    assert series(exposition, "workload_pod_labels") == [
        {**POD, "label_app_kubernetes_io_name": "web", "label_team": ""}]
    assert "pod-template-hash" not in exposition.render().decode()  # not allow-listed
    assert not [s for s in series(exposition, "workload_container_info") if "owner_kind" in s]

    relabelled = copy.deepcopy(pod)
    relabelled["metadata"]["labels"]["team"] = "payments"
    relabelled["metadata"]["ownerReferences"] = []
    see(store, mapper, relabelled)  # only metadata changed: the records must still change
    assert series(exposition, "workload_pod_labels") == [
        {**POD, "label_app_kubernetes_io_name": "web", "label_team": "payments"}]
    assert series(exposition, "workload_pod_owner") == [
        {**POD, "owner_kind": "<none>", "owner_name": "<none>", "owner_is_controller": "false"}]


def test_without_an_allowlist_there_is_no_labels_family_and_docker_has_no_pod_series() -> None:
    store = StateStore()
    exposition = Exposition([ContainerCollector(store)])
    see(store, PodMapper("fallback"), load_pod("running"))
    assert "workload_pod_labels" not in exposition.render().decode()
    assert len(series(exposition, "workload_pod_owner")) == 1
