"""The status document and health.json are typed views now; what users read stays byte-for-byte
what it was (the fixtures were written by the code before the views)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from exporter.device.health import HealthView
from exporter.device.status import AgentRun, AgentStatus, ProbeResult, ProbeStatus
from exporter.resilience import FakeClock, ResilienceRegistry
from exporter.state import ContainerRecord, Health, Phase, Reason, Source, StateStore
from exporter.web.status import StatusDocument, StatusView

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "status"


def status_view() -> StatusView:
    """Two sources, a Docker container after an OOM kill, a crash-looping pod, a terminal one with
    a raw reason, an open and a closed breaker, an agent after a failed run, two probes."""
    store = StateStore(clock=lambda: 1.7e9)
    store.register_source("docker")
    store.set_source("docker", up=True, synced=True)
    store.count_event("docker", "ok", 3)
    store.count_dropped("docker")
    store.register_source("kubernetes")
    store.put(ContainerRecord(
        key="d1", source=Source.DOCKER, container="web", host="h", image="nginx:1", container_id="abc",
        phase=Phase.RUNNING, reason=Reason.RUNNING, restarts=2, last_exit_code=137,
        last_terminated_reason=Reason.OOM_KILLED, last_terminated_at=1.6e9, oom_kills=1, health=Health.HEALTHY,
        created_at=1.5e9, started_at=1.55e9, failures={Reason.OOM_KILLED: 1}))
    store.put(ContainerRecord(
        key="k1", source=Source.KUBERNETES, container="app", host="n1", namespace="shop", pod="api-0",
        image="reg/app:2", reason=Reason.CRASH_LOOP_BACK_OFF, message='back-off "5m"', retry_count=3,
        next_retry_at=1.7e9 + 30, failures={Reason.CRASH_LOOP_BACK_OFF: 4}))
    store.put(ContainerRecord(key="d2", source=Source.DOCKER, container="", host="h", image="busybox",
                              reason=Reason.OTHER, raw_reason="Weird", terminal=True, remedy_override="do the thing"))
    clock = FakeClock(500.0)
    registry = ResilienceRegistry()
    engine = registry.breaker("docker:engine", clock=clock)
    for _ in range(5):
        engine.on_error(RuntimeError("x"))
    clock.advance(10)
    registry.breaker("agent:edge", clock=clock).on_success()
    agent = AgentStatus("edge", "pi-1")
    agent.record_run(AgentRun(100.0, 101.5, 1.5, 3, "compose_failed", 2, ("l1", "l2")))
    agent.set_next_run(2000.0)
    agent.set_interval(300.0)
    probes = ProbeStatus()
    probes.add_target("zz")
    probes.record("api", ProbeResult(False, 0.25, 1.7e9, 503, "HTTP 503"), "failure")
    return StatusView(store, registry, host="edge-1", agent=agent, probes=probes, clock=lambda: 1.7e9 + 1)


def test_the_state_api_answers_the_same_bytes_as_before_the_views() -> None:
    document = status_view().document()
    assert json.dumps(document.as_dict(), default=str) + "\n" == (FIXTURES / "state.json").read_text()
    empty = StatusView(StateStore(), ResilienceRegistry(), host="", clock=lambda: 5.0).document()
    assert json.dumps(empty.as_dict(), default=str) + "\n" == (FIXTURES / "state-empty.json").read_text()
    assert StatusDocument.empty().as_dict().keys() == empty.as_dict().keys()


def test_views_are_frozen_and_typed() -> None:
    document = status_view().document()
    container = document.containers[0]
    assert (container.name, container.status, container.remedy) == ("busybox", "Weird", "do the thing")
    assert document.agents[0].last_run is not None and document.agents[0].last_run.stderr_tail == ("l1", "l2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        container.restarts = 9  # type: ignore[misc]


def test_health_json_schema_version_1_is_written_as_before() -> None:
    clock = FakeClock()
    breaker = ResilienceRegistry().breaker("agent:edge", failure_threshold=2, window=3600, open_timeout=600,
                                           success_threshold=1, clock=clock)
    status = AgentStatus("edge", "pi-1")
    docs = [HealthView.of(status.snapshot(), breaker, ["a.sh", "-x"], wall=lambda: 1000.0)]
    status.record_run(AgentRun(100.0, 101.5, 1.5, 0, None, 1, ("ok",)))
    docs.append(HealthView.of(status.snapshot(), breaker, ["a.sh"], wall=lambda: 1000.0))
    status.record_run(AgentRun(200.0, 201.5, 1.5, 3, "compose_failed", 2, ("line 1", "line 2")))
    status.set_next_run(3000.0)
    status.set_interval(60.0)
    docs.append(HealthView.of(status.snapshot(), breaker, ["a.sh"], wall=lambda: 1000.0))
    breaker.on_error(RuntimeError("x"))
    breaker.on_error(RuntimeError("x"))
    clock.advance(100)
    status.record_rejected("circuit breaker 'agent:edge' is open")
    docs.append(HealthView.of(status.snapshot(), breaker, ["a.sh"], wall=lambda: 5000.0))
    breaker.force_open()
    docs.append(HealthView.of(status.snapshot(), breaker, ["a.sh"], wall=lambda: 5000.0))
    assert [d.status for d in docs] == ["pending", "ok", "failing", "circuit_open", "circuit_open"]
    text = "".join(json.dumps(d.as_dict(), indent=2) + "\n" for d in docs)
    assert text == (FIXTURES / "health.json").read_text()


def test_the_status_command_reads_the_document_back_into_the_same_views() -> None:
    from exporter.statusview import render

    data = json.loads((FIXTURES / "state.json").read_text())
    assert StatusDocument.from_dict(data).as_dict() == data
    # the table the command printed before the views, from the same document
    assert render(data, wide=True, now=1.7e9 + 5) + "\n" == (FIXTURES / "state-wide.txt").read_text()
    partial = StatusDocument.from_dict({"containers": [{"name": "c", "status": "Running"}], "extra": 1})
    assert partial.containers[0].restarts == 0 and partial.containers[0].failures == {} and partial.breakers == ()
