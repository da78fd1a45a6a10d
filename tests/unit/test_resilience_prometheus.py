"""ResilienceCollector: the library's metrics in any prometheus_client registry, equal to our /metrics."""
from __future__ import annotations

import subprocess
import sys
from wsgiref.util import setup_testing_defaults

import pytest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics import Exposition, ResilienceCollector as ExporterCollector
from exporter.metrics.exposition import render_collectors
from exporter.resilience import BreakerSettings, FakeClock, ResilienceRegistry, RetryBudget, RetryPolicy
from exporter.resilience.prometheus import ResilienceCollector


def busy_registry() -> ResilienceRegistry:
    """A registry with a named breaker, a keyed set with one open key, retries and errors."""
    clock = FakeClock()
    registry = ResilienceRegistry(budget=RetryBudget.unlimited())
    registry.breaker("docker", clock=clock).call(lambda: None)
    devices = registry.keyed("devices", BreakerSettings(failure_threshold=1), label="deviceId", clock=clock)
    devices.call("ok-1", lambda: None)
    with pytest.raises(ZeroDivisionError):
        devices.call("bad-1", lambda: 1 / 0)
    policy = RetryPolicy(name="probe", max_attempts=2, registry=registry, sleep=clock.sleep)
    with pytest.raises(ConnectionError):
        policy.retry(lambda: (_ for _ in ()).throw(ConnectionError("down")))
    return registry


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def types(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def test_prometheus_client_shows_the_same_families_labels_and_values_as_our_metrics() -> None:
    registry = busy_registry()
    ours = render_collectors([ExporterCollector(registry)]).decode()
    target = CollectorRegistry()
    target.register(ResilienceCollector(registry))
    theirs = generate_latest(target).decode()
    assert samples(theirs) == samples(ours)
    assert types(theirs) == types(ours)
    assert types(theirs)["circuit_breaker_calls"] == "counter"
    assert samples(theirs)[("circuit_breaker_state", (("deviceId", "bad-1"),))] == 1
    assert samples(theirs)[("retry_calls_total", (("kind", "failed_with_retry"), ("name", "probe")))] == 1


def test_registering_twice_in_one_registry_is_prometheus_clients_duplicate_error() -> None:
    collector = ResilienceCollector(ResilienceRegistry())
    target = CollectorRegistry()
    target.register(collector)
    with pytest.raises(ValueError, match="Duplicated timeseries in CollectorRegistry"):
        target.register(ResilienceCollector(ResilienceRegistry()))


def test_one_collector_can_serve_two_registries() -> None:
    registry = busy_registry()
    collector = ResilienceCollector(registry)
    first, second = CollectorRegistry(), CollectorRegistry()
    first.register(collector)
    second.register(collector)
    assert samples(generate_latest(first).decode()) == samples(generate_latest(second).decode())


def test_registration_describes_without_collecting() -> None:
    class Counting(ResilienceCollector):
        collected = 0

        def collect(self):  # type: ignore[no-untyped-def]
            Counting.collected += 1
            return super().collect()

    CollectorRegistry().register(Counting(ResilienceRegistry()))
    assert Counting.collected == 0


def test_default_registry_and_the_process_wide_resilience_registry() -> None:
    from exporter.resilience import REGISTRY as RESILIENCE

    collector = ResilienceCollector()
    DEFAULT_REGISTRY.register(collector)
    try:
        RESILIENCE.keyed("test-prometheus-default", label="tenant").get("acme")
        text = generate_latest().decode()  # the default REGISTRY, process metrics included
    finally:
        DEFAULT_REGISTRY.unregister(collector)
    assert 'circuit_breaker_state{tenant="acme"} 0.0' in text
    assert "process_cpu_seconds_total" in text or "python_info" in text


def test_make_wsgi_app_serves_the_collector() -> None:
    target = CollectorRegistry()
    target.register(ResilienceCollector(busy_registry()))
    app = make_wsgi_app(target)
    environ: dict = {"PATH_INFO": "/metrics"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers: status.append(s)))
    assert status == ["200 OK"]
    assert 'circuit_breaker_state{deviceId="bad-1"} 1.0' in body.decode()


def test_the_exporter_exposition_still_renders_the_library_families() -> None:
    text = Exposition([ExporterCollector(busy_registry())]).render().decode()
    assert 'circuit_breaker_state{deviceId="bad-1"} 1\n' in text
    assert 'circuit_breaker_keys{name="devices"} 2\n' in text
    assert 'circuit_breaker_calls_total{name="devices",outcome="failure"} 1\n' in text


def test_importing_the_library_loads_neither_prometheus_client_nor_requests() -> None:
    code = ("import sys, exporter.resilience; "
            "print(sorted({'prometheus_client', 'requests', 'urllib3', 'asyncio'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
