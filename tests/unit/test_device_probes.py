"""HTTP probes (requests mocked by `responses`): status checks, retries, and the per-target breaker."""
from __future__ import annotations

import pytest
import requests
import responses

from exporter.config import ProbeConfig
from exporter.device.probes import ProbeTarget
from exporter.device.status import ProbeStatus
from exporter.resilience import BreakerSettings, CircuitState, FakeClock, ResilienceRegistry

URL = "http://device.test/health"
PROBE_BREAKERS = BreakerSettings(failure_threshold=3, window=60.0, open_timeout=30.0, success_threshold=1)


def target(clock: FakeClock, registry: ResilienceRegistry, **kw: object) -> ProbeTarget:
    config = ProbeConfig(**{"name": "api", "url": URL, "timeout": 1, "attempts": 2, **kw})  # type: ignore[arg-type]
    return ProbeTarget(config, ProbeStatus(), registry, clock=clock, wall=clock, sleep=clock.sleep)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@responses.activate
def test_expected_status_is_success(clock: FakeClock) -> None:
    responses.get(URL, status=204)
    t = target(clock, ResilienceRegistry(breaker_settings=PROBE_BREAKERS), expected_status=204)
    result = t.check()
    assert result.success and result.status_code == 204
    assert t.status.get("api").checks == {"success": 1, "failure": 0, "rejected": 0}  # type: ignore[union-attr]


@responses.activate
def test_a_5xx_is_retried_once_then_succeeds(clock: FakeClock) -> None:
    responses.get(URL, status=503)
    responses.get(URL, status=200)
    registry = ResilienceRegistry(breaker_settings=PROBE_BREAKERS)
    t = target(clock, registry)
    assert t.check().success
    assert len(responses.calls) == 2 and len(clock.sleeps) == 1
    assert {s.name: s.kinds for s in registry.retry_snapshots()}["probe:api"]["successful_with_retry"] == 1


@responses.activate
def test_an_unexpected_4xx_fails_without_retry(clock: FakeClock) -> None:
    responses.get(URL, status=404)
    t = target(clock, ResilienceRegistry(breaker_settings=PROBE_BREAKERS))
    result = t.check()
    assert not result.success and result.status_code == 404 and "INVALID_RESPONSE" in result.error
    assert len(responses.calls) == 1


@responses.activate
def test_breaker_opens_then_probes_are_not_sent_then_half_open_trial_closes_it(clock: FakeClock) -> None:
    responses.get(URL, body=requests.ConnectionError("refused"))
    registry = ResilienceRegistry(breaker_settings=PROBE_BREAKERS)
    t = target(clock, registry)
    t.check()                          # two attempts -> two failures
    t.check()                          # third failure opens the breaker, the fourth attempt is not sent
    assert t.breaker.state is CircuitState.OPEN
    sent = len(responses.calls)
    assert sent == 3
    result = t.check()
    assert not result.success and len(responses.calls) == sent  # nothing sent while open
    assert t.status.get("api").checks == {"success": 0, "failure": 2, "rejected": 1}  # type: ignore[union-attr]
    assert t.breaker.snapshot().calls["rejected"] == 2
    clock.advance(30)
    assert t.breaker.state is CircuitState.HALF_OPEN
    responses.replace(responses.GET, URL, status=200)
    assert t.check().success
    assert t.breaker.state is CircuitState.CLOSED
