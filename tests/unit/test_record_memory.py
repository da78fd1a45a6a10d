"""Per-container memory (issue 18): a record's instance dict stays in CPython's shared-key form."""
from __future__ import annotations

import sys
from dataclasses import fields

from exporter.sources.docker.life import NO_RUN
from exporter.sources.docker.lifecycle import DockerLifecycle
from exporter.state import ContainerRecord, Reason, Source
from exporter.state.model import PodMeta

INSPECT = {"Id": "a" * 64, "Name": "/web", "RestartCount": 0, "Created": "2026-01-01T00:00:00Z",
           "State": {"Status": "running", "ExitCode": 0, "StartedAt": "2026-01-01T00:00:01Z",
                     "FinishedAt": "0001-01-01T00:00:00Z"},
           "Config": {"Image": "nginx:1", "Labels": {}}, "HostConfig": {"RestartPolicy": {"Name": "always"}}}


def test_a_record_has_at_most_29_fields_so_records_share_one_key_table() -> None:
    # From the 30th field on, CPython 3.11 gives each instance a key table of its own (0.8-1.6 KB).
    assert len(fields(ContainerRecord)) <= 29


def test_records_built_from_an_inspect_and_evolved_stay_under_half_a_kilobyte() -> None:
    record = DockerLifecycle("h").from_inspect(INSPECT, None)
    evolved = record.evolve(restarts=2, reason=Reason.CRASH_LOOP_BACK_OFF).with_failure(Reason.ERROR)
    for r in (record, evolved, ContainerRecord(key="k", source=Source.KUBERNETES, container="c", pod_meta=PodMeta())):
        assert sys.getsizeof(r.__dict__) < 400, sys.getsizeof(r.__dict__)  # a key table of its own: 800+
    assert evolved.restarts == 2 and evolved.failures == {Reason.ERROR: 1} and evolved.container == "web"


def test_docker_records_without_allow_listed_labels_share_one_empty_mapping() -> None:
    lifecycle = DockerLifecycle("h")
    one = lifecycle.from_inspect(INSPECT, None)
    other = lifecycle.from_inspect({**INSPECT, "Id": "b" * 64, "Name": "/db"}, None)
    assert one.labels == {} and one.labels is other.labels


def test_a_container_inspected_once_has_no_older_run_of_its_own() -> None:
    lifecycle = DockerLifecycle("h")
    one = lifecycle.from_inspect(INSPECT, None).engine
    other = lifecycle.from_inspect({**INSPECT, "Id": "b" * 64}, None).engine
    assert one.older is other.older is NO_RUN and one.run is not other.run
    assert one.run.started is not None and not one.run.start_seen


def test_containers_of_one_compose_service_share_its_project_service_and_image_strings() -> None:
    def inspect(cid: str) -> dict:  # each decoded separately, as two inspects are: equal strings, two objects
        labels = {"com.docker.compose.project": "".join(["sh", "op"]),
                  "com.docker.compose.service": "".join(["we", "b"])}
        return {**INSPECT, "Id": cid, "Config": {"Image": "".join(["nginx", ":1"]), "Labels": labels}}

    lifecycle = DockerLifecycle("h")
    a, b = lifecycle.from_inspect(inspect("a" * 64), None), lifecycle.from_inspect(inspect("b" * 64), None)
    assert (a.namespace, a.pod, a.image) == ("shop", "web", "nginx:1")
    assert a.namespace is b.namespace and a.pod is b.pod and a.image is b.image
