"""Rendering: cached per-object text, no stale series, both exposition formats, escaping."""
from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from exporter.metrics import ContainerCollector, Exposition, ResilienceCollector, SelfCollector
from exporter.metrics.exposition import render_collectors
from exporter.metrics.family import COUNTER, GAUGE, Family, escape
from exporter.resilience import ResilienceRegistry
from exporter.state import ContainerRecord, Health, Phase, Reason, Source, StateStore


def record(key: str = "c1", **kw: object) -> ContainerRecord:
    base: dict[str, object] = {"key": key, "source": Source.DOCKER, "container": key, "host": "h1",
                               "image": "busybox:1", "container_id": "abc"}
    base.update(kw)
    return ContainerRecord(**base)  # type: ignore[arg-type]


def scrape(exposition: Exposition, *, openmetrics: bool = False) -> str:
    return exposition.render(openmetrics=openmetrics).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def ident(container: str = "c1", **extra: str) -> tuple[tuple[str, str], ...]:
    labels = {"source": "docker", "host": "h1", "namespace": "", "pod": "", "container": container, **extra}
    return tuple(sorted(labels.items()))


def make() -> tuple[StateStore, Exposition, ResilienceRegistry]:
    store = StateStore()
    registry = ResilienceRegistry()
    exposition = Exposition([SelfCollector(store), ContainerCollector(store), ResilienceCollector(registry)])
    return store, exposition, registry


def test_container_record_becomes_its_series() -> None:
    store, exposition, _ = make()
    r = record(phase=Phase.TERMINATED, reason=Reason.OOM_KILLED, restarts=3, oom_kills=1, last_exit_code=137,
               last_terminated_reason=Reason.OOM_KILLED, last_terminated_at=1700000000.5,
               health=Health.UNHEALTHY).with_failure(Reason.OOM_KILLED).with_failure(Reason.ERROR, 2)
    store.put(r)
    s = samples(scrape(exposition))
    assert s[("workload_container_info", ident(container_id="abc", image="busybox:1"))] == 1
    assert not [k for k in s if k[0].startswith("workload_container_") and k[0] != "workload_container_info"
                and "image" in dict(k[1])]  # an image bump replaces one series, not all of them
    assert s[("workload_container_phase", ident(phase="terminated"))] == 1
    assert s[("workload_container_phase", ident(phase="running"))] == 0
    assert s[("workload_container_reason", ident(reason="OOMKilled", classification="transient"))] == 1
    assert s[("workload_container_restarts_total", ident())] == 3
    assert s[("workload_container_oom_kills_total", ident())] == 1
    assert s[("workload_container_failures_total", ident(reason="OOMKilled"))] == 1
    assert s[("workload_container_failures_total", ident(reason="Error"))] == 2
    assert s[("workload_container_last_exit_code", ident())] == 137
    assert s[("workload_container_last_terminated_reason", ident(reason="OOMKilled"))] == 1
    assert s[("workload_container_last_terminated_timestamp_seconds", ident())] == 1700000000.5
    assert s[("workload_container_health_status", ident(status="unhealthy"))] == 1
    assert ("workload_container_waiting_reason", ident(reason="OOMKilled")) not in s  # not waiting


def test_waiting_reason_and_terminal_only_while_they_apply() -> None:
    store, exposition, _ = make()
    store.put(record(phase=Phase.WAITING, reason=Reason.ERR_IMAGE_NEVER_PULL, terminal=True, next_retry_at=5.0))
    s = samples(scrape(exposition))
    assert s[("workload_container_waiting_reason", ident(reason="ErrImageNeverPull"))] == 1
    assert s[("workload_container_terminal", ident(reason="ErrImageNeverPull"))] == 1
    assert s[("workload_container_next_retry_timestamp_seconds", ident())] == 5.0
    store.update("c1", lambda r: r.evolve(phase=Phase.RUNNING, reason=Reason.RUNNING, terminal=False, next_retry_at=None))
    text = scrape(exposition)
    assert "workload_container_waiting_reason{" not in text
    assert "workload_container_terminal{" not in text
    assert "workload_container_next_retry_timestamp_seconds{" not in text


def test_removed_container_leaves_no_series() -> None:
    store, exposition, _ = make()
    store.put(record("a"))
    store.put(record("b"))
    assert 'container="a"' in scrape(exposition)
    store.remove("a")
    text = scrape(exposition)
    assert 'container="a"' not in text and 'container="b"' in text


def test_burst_of_changes_renders_once_per_scrape() -> None:
    store = StateStore()
    collector = ContainerCollector(store)
    store.put(record("a"))
    for i in range(100):
        store.update("a", lambda r: r.evolve(restarts=r.restarts + 1))
    assert collector._cache.refresh() == 1  # one dirty key, whatever the number of events
    assert collector._cache.refresh() == 0


def test_label_values_are_escaped() -> None:
    assert escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    store, exposition, _ = make()
    store.put(record("weird", image='img"x\\y\nz'))
    s = samples(scrape(exposition))
    assert s[("workload_container_info", ident("weird", container_id="abc", image='img"x\\y\nz'))] == 1


def test_the_pull_guards_desired_images_keep_image_on_every_family() -> None:
    """Their `container` is empty: the image is what tells two of them apart."""
    store, exposition, _ = make()
    for image in ("shop/web:1", "shop/api:2"):
        store.put(record(f"img:{image}", container="", kind="image", image=image, container_id="",
                         reason=Reason.ERR_IMAGE_NEVER_PULL, terminal=True))
    s = samples(scrape(exposition))
    for image in ("shop/web:1", "shop/api:2"):
        assert s[("workload_container_terminal", ident("", image=image, reason="ErrImageNeverPull"))] == 1
        assert s[("workload_container_info", ident("", image=image, container_id=""))] == 1


def test_breaker_and_retry_families_exist_from_the_start() -> None:
    _, exposition, registry = make()
    text = scrape(exposition)
    for name in ("circuit_breaker_state", "circuit_breaker_transitions_total", "circuit_breaker_calls_total",
                 "retry_calls_total", "retry_budget_exhausted_total", "resilience_errors_total",
                 "resilience_exporter_build_info", "resilience_exporter_source_up",
                 "resilience_exporter_events_total", "resilience_exporter_scrape_duration_seconds"):
        assert f"# TYPE {name} " in text, name
    registry.breaker("probe:device-1")
    s = samples(scrape(exposition))
    assert s[("circuit_breaker_state", (("name", "probe:device-1"),))] == 0  # exists before it trips
    for outcome in ("success", "failure", "rejected", "ignored"):
        assert s[("circuit_breaker_calls_total", (("name", "probe:device-1"), ("outcome", outcome)))] == 0


def test_openmetrics_names_counters_without_total_and_ends_with_eof() -> None:
    store, exposition, _ = make()
    store.put(record())
    text = scrape(exposition, openmetrics=True)
    assert "# TYPE workload_container_restarts counter\n" in text
    assert "workload_container_restarts_total{" in text
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    plain = scrape(exposition)
    assert "# TYPE workload_container_restarts_total counter\n" in plain and "# EOF" not in plain


def test_content_negotiation_and_gzip() -> None:
    _, exposition, _ = make()
    body, headers = exposition.response("application/openmetrics-text; version=1.0.0", "gzip")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body).decode().endswith("# EOF\n")
    body, headers = exposition.response("text/plain", None)
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "Content-Encoding" not in headers and body.startswith(b"# HELP")
    # What Prometheus sends, and refusals by q=0
    prometheus = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
    assert exposition.response(prometheus, "gzip, deflate")[1]["Content-Encoding"] == "gzip"
    assert exposition.response(prometheus, None)[1]["Content-Type"].startswith("application/openmetrics-text")
    body, headers = exposition.response("application/openmetrics-text;q=0, text/plain", "gzip;q=0, identity")
    assert headers["Content-Type"].startswith("text/plain") and "Content-Encoding" not in headers
    assert not body.endswith(b"# EOF\n")


def test_family_rows_enforce_counter_naming() -> None:
    for bad in (("x_total", GAUGE), ("x", COUNTER)):
        try:
            Family(bad[0], bad[1], "h", (), lambda _: [])
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "remove", "scrape"]), st.sampled_from("abcd"),
                          st.sampled_from(list(Phase)), st.integers(0, 3), st.booleans()), max_size=40))
def test_cached_scrape_always_equals_a_fresh_render(ops: list[tuple[str, str, Phase, int, bool]]) -> None:
    # The per-object text and the per-family joined text are invalidated piecemeal; whatever the
    # sequence of changes and scrapes, the result must be what rendering from scratch gives.
    store = StateStore()
    cached = ContainerCollector(store)
    for op, key, phase, restarts, terminal in ops:
        if op == "put":
            store.put(record(key, phase=phase, restarts=restarts, terminal=terminal,
                             reason=Reason.ERR_IMAGE_NEVER_PULL if terminal else Reason.RUNNING))
        elif op == "remove":
            store.remove(key)
        else:
            render_collectors([cached])
        fresh = ContainerCollector(store)
        assert samples(render_collectors([cached]).decode()) == samples(render_collectors([fresh]).decode())

