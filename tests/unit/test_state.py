"""The reason vocabulary and the state store's notifications, transitions and source status."""
from __future__ import annotations

import threading

from exporter.state import Classification, ContainerRecord, Phase, Reason, Source, StateStore


def record(key: str = "c1", **kw: object) -> ContainerRecord:
    base: dict[str, object] = {"key": key, "source": Source.DOCKER, "container": key, "host": "h1", "image": "busybox"}
    base.update(kw)
    return ContainerRecord(**base)  # type: ignore[arg-type]


def test_every_reason_has_a_classification_and_a_remedy_sentence() -> None:
    for reason in Reason:
        assert isinstance(reason.classification, Classification)
        assert reason.remedy.endswith(".") and len(reason.remedy) > 10


def test_terminal_reasons_are_exactly_the_ones_that_never_heal() -> None:
    assert {r.value for r in Reason if r.is_terminal} == {
        "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"}


def test_unknown_raw_reasons_fold_into_other_but_stay_visible() -> None:
    assert Reason.parse("SomethingNew") is Reason.OTHER
    r = record(reason=Reason.parse("SomethingNew"), raw_reason="SomethingNew")
    assert r.display_reason == "SomethingNew"
    assert Reason.parse("OOMKilled") is Reason.OOM_KILLED


def test_record_remedy_override_wins() -> None:
    r = record(reason=Reason.ERR_IMAGE_PULL, remedy_override="Run docker login registry.example.")
    assert r.remedy == "Run docker login registry.example."
    assert record(reason=Reason.OOM_KILLED).remedy == Reason.OOM_KILLED.remedy


def test_failures_counter_is_copied_not_shared() -> None:
    a = record()
    b = a.with_failure(Reason.OOM_KILLED)
    c = b.with_failure(Reason.OOM_KILLED)
    assert dict(a.failures) == {} and b.failures[Reason.OOM_KILLED] == 1 and c.failures[Reason.OOM_KILLED] == 2


def test_store_notifies_on_put_update_and_remove() -> None:
    store = StateStore()
    seen: list[tuple[str, str | None]] = []
    store.subscribe(lambda key, rec: seen.append((key, rec.reason.value if rec else None)))
    store.put(record(reason=Reason.RUNNING, phase=Phase.RUNNING))
    store.update("c1", lambda r: r.evolve(reason=Reason.ERROR, phase=Phase.TERMINATED))
    store.update("missing", lambda r: r.evolve(reason=Reason.ERROR))
    store.remove("c1")
    store.remove("c1")
    assert seen == [("c1", "Running"), ("c1", "Error"), ("c1", None)]
    assert store.get("c1") is None and len(store) == 0


def test_transitions_are_recorded_newest_first_and_filterable() -> None:
    clock = iter(range(100))
    store = StateStore(clock=lambda: float(next(clock)))
    store.put(record("a", reason=Reason.RUNNING))
    store.put(record("a", reason=Reason.RUNNING))  # same reason: no transition
    store.update("a", lambda r: r.evolve(reason=Reason.CRASH_LOOP_BACK_OFF), message="exit 3")
    store.put(record("b", reason=Reason.OOM_KILLED))
    all_ = store.transitions()
    assert [(t.container, t.from_reason, t.to_reason) for t in all_] == [
        ("b", "", "OOMKilled"), ("a", "Running", "CrashLoopBackOff"), ("a", "", "Running")]
    assert all_[1].message == "exit 3"
    assert [t.to_reason for t in store.transitions(container="a")] == ["CrashLoopBackOff", "Running"]
    assert [t.container for t in store.transitions(reason="OOMKilled")] == ["b"]
    assert len(store.transitions(limit=1)) == 1


def test_transition_ring_is_bounded() -> None:
    store = StateStore(transitions=5)
    for i in range(20):
        store.put(record("a", reason=Reason.RUNNING if i % 2 else Reason.ERROR))
    assert len(store.transitions()) == 5


def test_retain_removes_records_missing_after_a_relist() -> None:
    store = StateStore()
    for key in ("a", "b", "c"):
        store.put(record(key))
    store.put(record("k", source=Source.KUBERNETES))
    assert sorted(store.retain(["b"], source="docker")) == ["a", "c"]
    assert sorted(r.key for r in store.records()) == ["b", "k"]


def test_readiness_waits_for_every_source_sync() -> None:
    store = StateStore()
    assert store.ready()  # nothing to wait for
    store.register_source("docker")
    assert not store.ready()
    store.set_source("docker", up=True, synced=True)
    assert store.ready()
    store.count_event("docker", "ok", 3)
    store.count_event("docker", "malformed")
    (status,) = store.sources()
    assert status.up and status.events == {"ok": 3, "malformed": 1}


def test_concurrent_updates_lose_nothing() -> None:
    store = StateStore()
    store.put(record("a"))
    start = threading.Barrier(8)

    def bump() -> None:
        start.wait()
        for _ in range(500):
            store.update("a", lambda r: r.evolve(restarts=r.restarts + 1))

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("a").restarts == 4000  # type: ignore[union-attr]


def test_a_failing_listener_does_not_break_writes() -> None:
    store = StateStore()
    store.subscribe(lambda key, rec: 1 / 0)
    store.put(record("a"))
    assert store.get("a") is not None


def test_event_counts_from_several_threads_of_one_source_lose_nothing() -> None:
    store = StateStore()
    start = threading.Barrier(4)

    def count() -> None:
        start.wait()
        for _ in range(20_000):
            store.count_event("kubernetes", "ok")

    threads = [threading.Thread(target=count) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.sources()[0].events == {"ok": 80_000}
