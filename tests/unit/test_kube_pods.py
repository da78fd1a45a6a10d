"""Pod status -> record mapping, on kubelet-shaped fixtures (tests/fixtures/pods/)."""
from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from exporter.sources.kubernetes.pods import PodMapper, container_key
from exporter.state import Classification, ContainerRecord, Health, Phase, Reason, Source
from tests.integration.fake_kube import FIXTURES, load_pod

APP = container_key("shop", "web-7d4b9c8f6d-x2x9q", "app")
SHIPPER = container_key("shop", "web-7d4b9c8f6d-x2x9q", "log-shipper")


class Pods:
    """A mapper plus the records it produced, as the watcher keeps them in the store."""

    def __init__(self) -> None:
        self.mapper = PodMapper("fallback-host")
        self.records: dict[str, ContainerRecord] = {}

    def see(self, pod: dict[str, Any]) -> dict[str, ContainerRecord]:
        for record in self.mapper.records(pod, self.records.get):
            self.records[record.key] = record
        return self.records

    def app(self, fixture: str) -> ContainerRecord:
        return self.see(load_pod(fixture))[APP]


@pytest.mark.parametrize("fixture", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_fixtures_are_pods_the_official_client_deserializes(fixture: str) -> None:
    from kubernetes.client import ApiClient, V1Pod

    pod = ApiClient().deserialize((FIXTURES / f"{fixture}.json").read_text(), "V1Pod", "application/json")
    assert isinstance(pod, V1Pod) and pod.status.phase in ("Pending", "Running", "Failed")
    assert pod.status.container_statuses and all(cs.image and cs.state for cs in pod.status.container_statuses)


def test_running_pod_maps_identity_and_readiness() -> None:
    records = Pods().see(load_pod("running"))
    app, shipper = records[APP], records[SHIPPER]
    assert (app.source, app.namespace, app.pod, app.container, app.host) == (
        Source.KUBERNETES, "shop", "web-7d4b9c8f6d-x2x9q", "app", "worker-2")
    assert app.image == "registry.example.com/shop/web:1.8.2" and app.container_id.startswith("containerd://")
    assert (app.phase, app.reason, app.failures) == (Phase.RUNNING, Reason.RUNNING, {})
    assert app.health is Health.HEALTHY and shipper.health is Health.NONE  # shipper has no readiness probe
    assert app.started_at is not None


@pytest.mark.parametrize(("fixture", "reason", "terminal"), [
    ("err-image-pull", Reason.ERR_IMAGE_PULL, False),
    ("image-pull-backoff", Reason.IMAGE_PULL_BACK_OFF, False),
    ("err-image-never-pull", Reason.ERR_IMAGE_NEVER_PULL, True),
    ("create-container-config-error", Reason.CREATE_CONTAINER_CONFIG_ERROR, True),
    ("crash-loop-backoff", Reason.CRASH_LOOP_BACK_OFF, False),
])
def test_waiting_reasons_map_to_the_vocabulary_with_terminal_flag_and_remedy(
        fixture: str, reason: Reason, terminal: bool) -> None:
    app = Pods().app(fixture)
    assert (app.phase, app.reason, app.terminal) == (Phase.WAITING, reason, terminal)
    assert app.remedy == reason.remedy and app.message and app.failures == {reason: 1}
    assert (reason.classification is Classification.TERMINAL) is terminal


def test_image_pull_progression_counts_each_entry_and_not_repeats() -> None:
    pods = Pods()
    assert pods.app("running").failures == {}
    pods.app("err-image-pull")
    pods.app("err-image-pull")  # the same status again (e.g. a resync): no new entry
    pods.app("image-pull-backoff")
    app = pods.app("err-image-pull")
    assert app.failures == {Reason.ERR_IMAGE_PULL: 2, Reason.IMAGE_PULL_BACK_OFF: 1}
    assert app.terminal is False


def test_unknown_reason_is_bounded_as_other_with_the_raw_reason_visible() -> None:
    pod = load_pod("err-image-pull")
    pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] = "SignatureValidationFailed"
    app = Pods().see(pod)[APP]
    assert (app.reason, app.raw_reason, app.display_reason) == (Reason.OTHER, "SignatureValidationFailed",
                                                                "SignatureValidationFailed")
    assert app.failures == {Reason.OTHER: 1}


def test_crash_loop_keeps_restart_count_and_last_termination() -> None:
    app = Pods().app("crash-loop-backoff")
    assert app.restarts == 3 and app.last_exit_code == 1 and app.last_terminated_reason is Reason.ERROR
    assert app.last_terminated_at == datetime(2026, 11, 20, 9, 15, 32, tzinfo=timezone.utc).timestamp()


def test_oom_kill_between_two_events_is_counted_from_last_state() -> None:
    pods = Pods()
    pods.app("running")
    app = pods.app("oom-killed-last-state")  # restartCount 0 -> 1 with lastState OOMKilled
    assert (app.phase, app.restarts, app.oom_kills) == (Phase.RUNNING, 1, 1)
    assert app.failures == {Reason.OOM_KILLED: 1} and app.last_exit_code == 137
    assert pods.app("oom-killed-last-state").oom_kills == 1  # seen again: counted once


def test_oom_kill_seen_terminated_then_in_last_state_is_counted_once() -> None:
    pods = Pods()
    pods.app("running")
    app = pods.app("oom-killed")
    assert (app.phase, app.reason, app.oom_kills) == (Phase.TERMINATED, Reason.OOM_KILLED, 1)
    app = pods.app("oom-killed-last-state")  # the same kill (same finishedAt), now as lastState
    assert (app.oom_kills, app.failures) == (1, {Reason.OOM_KILLED: 1})


def test_restart_count_seen_first_at_list_counts_no_history() -> None:
    app = Pods().app("oom-killed-last-state")
    assert app.restarts == 1 and app.oom_kills == 0 and app.failures == {}
    assert app.last_terminated_reason is Reason.OOM_KILLED


def test_init_container_failure_is_marked_and_main_containers_wait() -> None:
    records = Pods().see(load_pod("init-crash-loop"))
    init = records[container_key("shop", "web-7d4b9c8f6d-x2x9q", "migrate")]
    assert (init.reason, init.restarts, init.last_exit_code) == (Reason.CRASH_LOOP_BACK_OFF, 2, 2)
    assert init.message.startswith("init container: back-off 20s")
    assert records[APP].reason is Reason.POD_INITIALIZING and records[APP].failures == {}


def test_evicted_pod_puts_the_pod_reason_on_every_container() -> None:
    pods = Pods()
    pods.see(load_pod("running"))
    records = pods.see(load_pod("evicted"))
    for key in (APP, SHIPPER):
        assert (records[key].phase, records[key].reason) == (Phase.TERMINATED, Reason.EVICTED)
        assert records[key].failures == {Reason.EVICTED: 1}
        assert records[key].message.startswith("The node was low on resource: memory")


def test_container_without_status_waits_in_container_creating() -> None:
    pod = load_pod("running")
    pod["status"] = {"phase": "Pending", "qosClass": "Burstable"}
    records = Pods().see(pod)
    assert {r.reason for r in records.values()} == {Reason.CONTAINER_CREATING}
    assert records[APP].failures == {}


def test_containers_without_status_show_theirs_once_the_kubelet_reports_it() -> None:
    pods = Pods()
    pending = load_pod("crash-loop-backoff")
    pending["status"] = {"phase": "Pending"}
    first = pods.see(pending)[APP]
    assert pods.see(copy.deepcopy(pending))[APP] is first  # nothing changed: the stored record
    records = pods.see(load_pod("crash-loop-backoff"))
    assert records[APP].reason is Reason.CRASH_LOOP_BACK_OFF and Reason.CRASH_LOOP_BACK_OFF in records[APP].failures
    assert records[SHIPPER].reason is Reason.RUNNING


def test_pods_of_one_owner_each_keep_their_own_owner_through_changes() -> None:
    pods = Pods()
    job = [{"kind": "Job", "name": "nightly", "controller": True}]
    other = container_key("shop", "web-other", "app")

    def owners(pod_name: str, refs: list[dict[str, Any]] | None = None) -> tuple[tuple[str, str, bool], ...]:
        pod = load_pod("running", name=pod_name)
        if refs is not None:
            pod["metadata"]["ownerReferences"] = refs
        key = container_key("shop", pod_name, "app")
        meta = pods.see(pod)[key].pod_meta
        assert meta is not None
        return meta.owners

    replica_set = (("ReplicaSet", "web-7d4b9c8f6d", True),)
    assert owners("web-7d4b9c8f6d-x2x9q") == owners("web-other") == replica_set
    assert owners("web-other", job) == (("Job", "nightly", True),)
    assert owners("web-7d4b9c8f6d-x2x9q") == replica_set
    assert owners("web-other") == replica_set and pods.records[other].pod_meta == pods.records[APP].pod_meta


def test_unchanged_container_status_returns_the_stored_record() -> None:
    pods = Pods()
    first = pods.see(load_pod("crash-loop-backoff"))[SHIPPER]
    pod = load_pod("crash-loop-backoff")
    pod["metadata"]["resourceVersion"] = "48999"
    assert pods.see(pod)[SHIPPER] is first


def test_image_changed_in_the_spec_shows_before_the_kubelet_reports() -> None:
    pods = Pods()  # `kubectl set image`: the API server writes the spec; the status is still the old one
    assert pods.app("running").image == "registry.example.com/shop/web:1.8.2"
    pod = load_pod("running")
    pod["spec"]["containers"][0]["image"] = "registry.example.com/shop/web:1.9.0"
    records = pods.see(pod)
    assert records[APP].image == "registry.example.com/shop/web:1.9.0"
    assert records[APP].reason is Reason.RUNNING and records[APP].failures == {}


def test_host_falls_back_to_the_configured_host_for_unscheduled_pods() -> None:
    pod = copy.deepcopy(load_pod("running"))
    del pod["spec"]["nodeName"]
    assert Pods().see(pod)[APP].host == "fallback-host"


def test_fixture_files_are_pretty_json_of_a_pod() -> None:
    for path in Path(FIXTURES).glob("*.json"):
        assert json.loads(path.read_text())["kind"] == "Pod"
