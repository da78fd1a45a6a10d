"""Keyed breakers: one breaker per key from shared settings, bounded by idle time and a key cap."""
from __future__ import annotations

import asyncio

import pytest

from exporter.resilience import (BreakerSettings, CircuitOpenError, CircuitState, FakeClock, KeyedBreakers,
                                 ResilienceRegistry)


def fail() -> None:
    raise ConnectionError("device unreachable")


def trip(keyed: KeyedBreakers, key: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises((ConnectionError, CircuitOpenError)):
            keyed.call(key, fail)


def test_each_key_gets_its_own_breaker_built_from_the_shared_settings() -> None:
    clock = FakeClock()
    keyed = KeyedBreakers("devices", BreakerSettings(failure_threshold=2, open_timeout=10.0), clock=clock)
    trip(keyed, "d1", 2)
    assert keyed.get("d1").state is CircuitState.OPEN
    assert keyed.call("d2", lambda: "ok") == "ok"
    assert keyed.get("d2").state is CircuitState.CLOSED
    assert keyed.get("d1") is keyed.get("d1") and keyed.get("d1").failure_threshold == 2
    with pytest.raises(CircuitOpenError) as err:
        keyed.call("d1", lambda: "never called")
    assert err.value.name == "d1" and err.value.retry_after == 10.0
    clock.advance(10.0)
    assert keyed.get("d1").state is CircuitState.HALF_OPEN


def test_async_calls_use_the_keys_breaker() -> None:
    keyed = KeyedBreakers("tenants", BreakerSettings(failure_threshold=1))

    async def boom() -> None:
        raise TimeoutError

    async def scenario() -> CircuitState:
        with pytest.raises(TimeoutError):
            await keyed.call_async("t1", boom)
        with pytest.raises(CircuitOpenError):
            await keyed.call_async("t1", boom)
        return keyed.get("t1").state

    assert asyncio.run(scenario()) is CircuitState.OPEN


def test_idle_keys_are_evicted_and_start_again_closed() -> None:
    clock = FakeClock()
    keyed = KeyedBreakers("hosts", BreakerSettings(failure_threshold=1, open_timeout=30.0),
                          idle_timeout=60.0, clock=clock)
    trip(keyed, "old", 1)
    clock.advance(30.0)
    keyed.call("busy", lambda: None)
    clock.advance(31.0)  # "old" idle 61 s, "busy" 31 s
    assert keyed.evict_idle() == 1
    assert keyed.keys() == ["busy"] and keyed.evicted == {"idle": 1, "cap": 0}
    assert keyed.get("old").state is CircuitState.CLOSED


def test_use_sweeps_idle_keys_without_an_explicit_call() -> None:
    clock = FakeClock()
    keyed = KeyedBreakers("hosts", idle_timeout=80.0, clock=clock)
    for i in range(100):
        keyed.get(f"h{i}")
    clock.advance(81.0)
    keyed.get("fresh")
    assert len(keyed) == 1 and keyed.evicted["idle"] == 100


def test_the_key_cap_evicts_the_least_recently_used_key_and_counts_it() -> None:
    clock = FakeClock()
    keyed = KeyedBreakers("devices", max_keys=3, clock=clock)
    for key in ("a", "b", "c"):
        keyed.get(key)
    clock.advance(1.0)  # uses are ordered to within a second (TOUCH_SECONDS)
    keyed.get("a")  # b is now the least recently used
    keyed.get("d")
    assert sorted(keyed.keys()) == ["a", "c", "d"]
    assert keyed.evicted == {"idle": 0, "cap": 1}


def test_call_counts_survive_eviction() -> None:
    clock = FakeClock()
    keyed = KeyedBreakers("devices", max_keys=1, clock=clock)
    keyed.call("a", lambda: None)
    keyed.call("b", lambda: None)  # evicts a
    trip(keyed, "b", 1)
    snap = keyed.snapshot()
    assert snap.calls == {"success": 2, "failure": 1, "rejected": 0, "ignored": 0}
    assert snap.states == [("b", CircuitState.CLOSED)] and snap.evicted == {"idle": 0, "cap": 1}


def test_memory_is_bounded_by_the_cap_under_many_distinct_keys() -> None:
    keyed = KeyedBreakers("devices", max_keys=500, clock=FakeClock())
    for i in range(5_000):
        keyed.get(f"d{i}")
    assert len(keyed) == 500 and keyed.evicted["cap"] == 4_500


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_keys": 0}, "max_keys must be an int >= 1, got 0"),
    ({"idle_timeout": 5.0}, "idle_timeout must be >= open_timeout"),
    ({"label": "device-id"}, "label must be a Prometheus label name, got 'device-id'"),
])
def test_bad_configuration_is_refused_with_what_and_where(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match="keyed breakers 'devices': " + message):
        KeyedBreakers("devices", **kwargs)


def test_bad_shared_settings_fail_when_built_not_at_first_use() -> None:
    with pytest.raises(ValueError, match="failure_threshold must be an int >= 1, got 0"):
        BreakerSettings(failure_threshold=0)


def test_keys_must_be_strings_because_they_become_label_values() -> None:
    with pytest.raises(TypeError, match="keys are label values and must be str, got int 7"):
        KeyedBreakers("devices").get(7)  # type: ignore[arg-type]


def test_registry_creates_a_keyed_set_once_and_refuses_a_name_clash() -> None:
    registry = ResilienceRegistry()
    devices = registry.keyed("devices", BreakerSettings(failure_threshold=3), label="deviceId")
    assert registry.keyed("devices", label="other") is devices and devices.label == "deviceId"
    assert registry.register_keyed(devices) is devices
    with pytest.raises(ValueError, match="'devices' is already registered"):
        registry.register_keyed(KeyedBreakers("devices"))
    devices.get("d1")
    (snap,) = registry.keyed_snapshots()
    assert (snap.name, snap.label, snap.states) == ("devices", "deviceId", [("d1", CircuitState.CLOSED)])


def test_threads_sharing_a_capped_set_keep_it_bounded_and_consistent() -> None:
    import threading

    keyed = KeyedBreakers("devices", max_keys=50, idle_timeout=3600.0)
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(2_000):
                keyed.call(f"d{(i * 7 + offset) % 200}", lambda: None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(keyed) == 50
    snap = keyed.snapshot()
    assert len(snap.states) == 50 and all(state is CircuitState.CLOSED for _, state in snap.states)
    # a call still running when its key is evicted lands in the evicted breaker, after its counts
    # were carried over; so at most, not exactly, every call
    assert 0 < snap.calls["success"] <= 8_000 and snap.evicted["cap"] > 0


def test_a_key_in_steady_use_is_never_idle_though_most_uses_take_the_lock_free_path() -> None:
    clock = FakeClock()
    keyed = KeyedBreakers("devices", idle_timeout=30.0, clock=clock)
    keyed.get("other")
    for _ in range(200):  # 100 s of use every 0.5 s
        keyed.call("steady", lambda: None)
        clock.advance(0.5)
    assert keyed.keys() == ["steady"] and keyed.evicted == {"idle": 1, "cap": 0}
    assert keyed.snapshot().calls["success"] == 200
