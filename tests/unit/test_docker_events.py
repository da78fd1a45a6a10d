"""Docker event parsing and lifecycle rules, without an engine (the engine tests are integration)."""
from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.resilience import ResilienceRegistry
from exporter.sources.docker.events import DockerEvent
from exporter.sources.timestamps import parse_timestamp
from exporter.sources.docker.lifecycle import CRASH_LOOP_RESET, DockerLifecycle
from exporter.sources.docker.watcher import DockerWatcher
from exporter.state import Health, Phase, Reason, StateStore

CID = "c" * 64


def inspect(status: str = "running", *, restarts: int = 0, exit_code: int = 0, started: str = "2026-01-01T00:00:00.5Z",
            finished: str = "0001-01-01T00:00:00Z", policy: str = "always", oom: bool = False) -> dict[str, Any]:
    return {"Id": CID, "Name": "/web", "RestartCount": restarts, "Created": "2026-01-01T00:00:00Z",
            "State": {"Status": status, "ExitCode": exit_code, "StartedAt": started, "FinishedAt": finished,
                      "OOMKilled": oom, "Error": ""},
            "Config": {"Image": "busybox:1", "Labels": {}}, "HostConfig": {"RestartPolicy": {"Name": policy}}}


def ev(action: str, t: float, **kw: Any) -> DockerEvent:
    return DockerEvent("container", action, CID, int(t * 1e9), **kw)


def test_timestamps_with_nanoseconds_and_go_zero_time() -> None:
    assert parse_timestamp("2026-01-01T00:00:01.123456789Z") == 1767225601.123456
    assert parse_timestamp("0001-01-01T00:00:00Z") is None and parse_timestamp("") is None


def test_crash_loop_starts_on_the_second_crash_and_ends_after_ten_quiet_minutes() -> None:
    life = DockerLifecycle("h")
    t0 = 1767225600.0
    r = life.from_inspect(inspect(started="2026-01-01T00:00:00Z"), None)
    r = life.apply(ev("die", t0 + 1, exit_code=3), r)
    assert r is not None and r.reason is Reason.ERROR and r.restarts == 1 and r.phase is Phase.WAITING
    r = life.apply(ev("start", t0 + 1.2), r)
    r = life.apply(ev("die", t0 + 1.3, exit_code=3), r)
    assert r is not None and r.reason is Reason.CRASH_LOOP_BACK_OFF and r.restarts == 2
    assert r.next_retry_at is not None and abs(r.next_retry_at - (t0 + 1.3 + 0.2)) < 1e-6  # engine: 100 ms doubling
    r = life.apply(ev("start", t0 + 1.6), r)
    assert r is not None and r.reason is Reason.CRASH_LOOP_BACK_OFF and r.phase is Phase.RUNNING  # sticky
    assert life.settle(r, t0 + 1.3 + CRASH_LOOP_RESET - 1) is r
    settled = life.settle(r, t0 + 1.3 + CRASH_LOOP_RESET + 1)
    assert settled.reason is Reason.RUNNING and settled.failures[Reason.CRASH_LOOP_BACK_OFF] == 1


def test_unhealthy_is_counted_once_per_entry_and_a_repeated_status_changes_nothing() -> None:
    store = StateStore()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url="unix:///nonexistent")
    store.put(watcher.lifecycle.from_inspect(inspect(), None))
    changes: list[str] = []
    store.subscribe(lambda key, record: changes.append(key))
    t = 1767225601.0
    for i, (action, health) in enumerate([("health_status", "healthy"), ("health_status", "healthy"),
                                          ("health_status", "unhealthy"), ("health_status", "unhealthy"),
                                          ("pause", ""), ("pause", ""), ("unpause", ""), ("unpause", ""),
                                          ("health_status", "healthy"), ("health_status", "unhealthy")]):
        watcher.handle(ev(action, t + i, health=health))
    r = store.get(CID)
    assert r is not None and r.reason is Reason.UNHEALTHY and r.health is Health.UNHEALTHY
    assert r.failures[Reason.UNHEALTHY] == 2  # entered twice; a repeated unhealthy status is no new entry
    assert len(changes) == 6  # the repeats (healthy, unhealthy, pause, unpause) left the record as it was
    assert store.sources()[0].events == {"ok": 10}


def test_a_stop_is_not_a_scheduled_restart() -> None:
    life = DockerLifecycle("h")
    r = life.from_inspect(inspect(), None)
    r = life.apply(ev("kill", 1767225601.0, signal=15), r)
    r = life.apply(ev("die", 1767225601.1, exit_code=143), r)
    assert r is not None and r.restarts == 0 and r.phase is Phase.TERMINATED and r.reason is Reason.ERROR


def test_events_already_in_the_inspect_are_not_counted_twice() -> None:
    life = DockerLifecycle("h")
    r = life.from_inspect(inspect("exited", restarts=4, exit_code=3, started="2026-01-01T00:00:05Z",
                                  finished="2026-01-01T00:00:06Z", policy="no"), None)
    assert r.restarts == 4 and r.failures[Reason.ERROR] == 1
    t = 1767225606.0
    same = life.apply(ev("die", t + 0.004, exit_code=3), r)   # the inspected exit, stamped a few ms later
    assert same == r  # nothing visible changes (only its Life notes the die as seen)
    older = life.apply(ev("die", t - 3, exit_code=3), r)       # an exit the inspect does not show
    assert older is not None and older.failures[Reason.ERROR] == 2 and older.last_terminated_at == r.last_terminated_at
    assert life.apply(ev("start", t - 1.5), r) == r            # older than the inspected start


def test_oom_then_die_counts_one_oom_kill() -> None:
    life = DockerLifecycle("h")
    r = life.from_inspect(inspect(policy="no"), None)
    r = life.apply(ev("oom", 1767225601.0), r)
    r = life.apply(ev("die", 1767225601.01, exit_code=137), r)
    assert r is not None and r.reason is Reason.OOM_KILLED and r.oom_kills == 1
    assert dict(r.failures) == {Reason.OOM_KILLED: 1} and r.last_exit_code == 137


def test_on_failure_stops_restarting_at_its_maximum() -> None:
    life = DockerLifecycle("h")
    data = inspect()
    data["HostConfig"]["RestartPolicy"] = {"Name": "on-failure", "MaximumRetryCount": 1}
    r = life.from_inspect(data, None)
    r = life.apply(ev("die", 1767225601.0, exit_code=1), r)
    r = life.apply(ev("start", 1767225601.2), r)
    r = life.apply(ev("die", 1767225601.3, exit_code=1), r)
    assert r is not None and r.restarts == 1 and r.phase is Phase.TERMINATED


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
event_like = st.fixed_dictionaries({}, optional={
    "Type": st.sampled_from(["container", "network", "image", 3]) | st.text(max_size=5),
    "Action": st.sampled_from(["start", "die", "oom", "destroy", "health_status: unhealthy", "exec_die", "kill"]) | json_values,
    "Actor": st.fixed_dictionaries({}, optional={"ID": st.text(max_size=5) | json_values,
                                                 "Attributes": st.dictionaries(st.sampled_from(["exitCode", "name", "image", "signal", "container"]),
                                                                               json_values | st.text(max_size=5), max_size=4) | json_values}) | json_values,
    "timeNano": st.integers() | json_values, "time": st.integers(min_value=0) | json_values})


@settings(max_examples=300, deadline=None)
@given(payload=event_like | json_values)
def test_malformed_or_unknown_events_are_counted_and_never_crash(payload: Any) -> None:
    store = StateStore()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url="unix:///nonexistent")
    watcher.handle_line(json.dumps(payload))
    watcher.handle_line(b"{not json")
    (status,) = store.sources()
    assert sum(status.events.values()) == 2 and status.events["malformed"] >= 1
    assert set(status.events) <= {"ok", "malformed", "ignored", "duplicate"}


def limited(policy: str = "no") -> dict[str, Any]:
    data = inspect(policy=policy)
    data["HostConfig"]["Memory"] = 8 * 1024 * 1024
    return data


def test_exit_137_under_a_memory_limit_without_a_kill_is_an_inferred_oom_kill() -> None:
    life = DockerLifecycle("h")
    r = life.from_inspect(limited(), None)
    r = life.apply(ev("die", 1767225601.0, exit_code=137), r)  # the engine lost this run's `oom`
    assert r is not None and r.reason is Reason.OOM_KILLED and r.oom_kills == 1
    assert dict(r.failures) == {Reason.OOM_KILLED: 1} and "inferred" in r.message
    r = life.apply(ev("oom", 1767225601.05), r)                # ... or sent it after the die
    assert r is not None and r.oom_kills == 1 and dict(r.failures) == {Reason.OOM_KILLED: 1}


def test_exit_137_after_a_kill_from_the_engine_is_no_oom_kill() -> None:
    life = DockerLifecycle("h")
    r = life.from_inspect(limited(), None)
    r = life.apply(ev("kill", 1767225601.0, signal=9), r)
    r = life.apply(ev("die", 1767225601.1, exit_code=137), r)
    assert r is not None and r.reason is Reason.ERROR and r.oom_kills == 0


def test_a_childs_oom_kill_counts_once_and_leaves_the_container_running() -> None:
    life = DockerLifecycle("h")
    r = life.from_inspect(limited(), None)
    r = life.apply(ev("oom", 1767225601.0), r)
    assert r is not None and r.oom_kills == 1 and r.reason is Reason.RUNNING and not r.failures
    r = life.apply(ev("kill", 1767225605.0, signal=15), r)
    r = life.apply(ev("die", 1767225605.1, exit_code=143), r)  # stopped later: an exit of its own
    assert r is not None and r.oom_kills == 1 and dict(r.failures) == {Reason.ERROR: 1}


def test_an_event_stream_out_of_time_order_loses_nothing_and_replays_count_once() -> None:
    store = StateStore()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url="unix:///nonexistent")
    store.put(watcher.lifecycle.from_inspect(limited(), None))
    t = 1767225601_000_000_000

    def line(action: str, nano: int, cid: str = CID, **attrs: str) -> bytes:
        return json.dumps({"Type": "container", "Action": action, "timeNano": nano,
                           "Actor": {"ID": cid, "Attributes": {"name": "web", **attrs}}}).encode()

    watcher.handle_line(line("destroy", t + 300_000_000, "d" * 64))    # another container's event came first ...
    watcher.handle_line(line("oom", t))                                 # ... this one stamped 0.3 s earlier
    watcher.handle_line(line("die", t + 400_000_000, exitCode="137"))
    watcher.handle_line(line("oom", t))                                 # a replay after a reconnect
    record = store.get(CID)
    assert record is not None and record.oom_kills == 1 and dict(record.failures) == {Reason.OOM_KILLED: 1}
    assert store.sources()[0].events == {"ignored": 1, "ok": 2, "duplicate": 1}


class _Engine:
    """What the engine answers an inspect with: here, a container its restart monitor left down."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data, self.inspects = data, 0

    def inspect_container(self, cid: str) -> dict[str, Any]:
        self.inspects += 1
        return self.data


def test_a_restart_the_policy_promised_that_never_came_is_asked_of_the_engine() -> None:
    # A failed `docker update --restart no` (the run exited meanwhile) still switches dockerd's
    # restart monitor to "no" and restores HostConfig alone: the next exit is not restarted, no
    # event says so, and HostConfig still reads "always".
    t0 = 1767225600.0
    now = [t0 + 1.0]
    store = StateStore()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url="unix:///nonexistent",
                            clock=lambda: now[0])
    store.put(watcher.lifecycle.from_inspect(inspect(restarts=1), None))
    watcher.handle(ev("die", t0 + 2.0, exit_code=3))   # the policy says always: a restart is expected
    record = store.get(CID)
    assert record is not None and record.phase is Phase.WAITING and record.restarts == 2
    engine = _Engine(inspect("exited", restarts=1, exit_code=3, finished="2026-01-01T00:00:02Z"))
    watcher._client, watcher._up = engine, True
    now[0] = t0 + 3.0
    watcher.settle()                                    # within the engine's restart delay: nothing asked
    assert engine.inspects == 0 and store.get(CID).phase is Phase.WAITING  # type: ignore[union-attr]
    now[0] = t0 + 2.0 + 0.2 + 11.0
    watcher.settle()                                    # overdue: the engine says exited, restarted once
    record = store.get(CID)
    assert engine.inspects == 1 and watcher.rechecks == 1
    assert record is not None and record.phase is Phase.TERMINATED and record.restarts == 1
    assert record.last_exit_code == 3 and dict(record.failures) == {Reason.ERROR: 1}  # the exit counted once
    watcher.settle()
    assert engine.inspects == 1                         # settled: asked once


class _Summary(dict):  # type: ignore[type-arg]
    """A `docker ps` entry that can be watched for being freed (a plain dict takes no weakref)."""


def test_a_relist_frees_the_engines_container_list_before_inspecting() -> None:
    # The list's summaries of every container, held through a thousand inspects, left
    # pymalloc arenas the records were then allocated beside: 1.9 MiB more resident memory with
    # 1,000 containers (a real serve, 40.1 -> 38.2 MiB). Only the ids may outlive the list.
    import gc
    import weakref

    ids = [f"{i:064x}" for i in range(3)]

    class Engine:
        def __init__(self) -> None:
            self.summaries: list[weakref.ref[_Summary]] = []
            self.alive_while_inspecting: list[int] = []

        def containers(self, all: bool = False) -> list[_Summary]:
            listed = [_Summary(Id=cid, Names=[f"/c{cid[-1]}"], Labels={"a": "b"}) for cid in ids]
            self.summaries = [weakref.ref(s) for s in listed]
            return listed

        def inspect_container(self, cid: str) -> dict[str, Any]:
            gc.collect()
            self.alive_while_inspecting.append(sum(ref() is not None for ref in self.summaries))
            return {**inspect(), "Id": cid, "Name": f"/c{cid[-1]}"}

    engine, store = Engine(), StateStore()
    watcher = DockerWatcher(store, ResilienceRegistry(), host="h", base_url="unix:///nonexistent")
    watcher._relist(engine)
    assert sorted(r.key for r in store.records()) == ids
    assert engine.alive_while_inspecting == [0, 0, 0]
