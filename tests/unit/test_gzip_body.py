"""The gzip body, one member of kept deflate segments, decompresses to exactly the text body.

Random sequences of adds, changes, removals and re-creations under an identity already shown,
with blocks of 3 containers so that most steps touch some blocks and leave others, checked for
the text and the OpenMetrics body after every step.
"""
from __future__ import annotations

import gzip
import zlib
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from exporter.metrics import ContainerCollector, Exposition, ResilienceCollector, SelfCollector
from exporter.metrics import cache, deflate
from exporter.resilience import ResilienceRegistry
from exporter.state import ContainerRecord, Phase, Reason, Source, StateStore

ops = st.lists(st.tuples(st.sampled_from(("add", "change", "remove", "recreate")),
                         st.integers(min_value=0, max_value=11)), min_size=1, max_size=30)


def record(index: int, clock: float, **kw: object) -> ContainerRecord:
    base: dict[str, object] = dict(key=f"id{index}-{clock}", source=Source.DOCKER, container=f"c{index}", host="h",
                                   pod="p", namespace="ns", container_id=f"id{index}", image=f"img:{index}",
                                   phase=Phase.RUNNING, reason=Reason.RUNNING, created_at=clock)
    base.update(kw)
    return ContainerRecord(**base)  # type: ignore[arg-type]


def exposition_of(store: StateStore) -> Exposition:
    exposition = Exposition([SelfCollector(store), ContainerCollector(store), ResilienceCollector(ResilienceRegistry())])
    exposition.process_registry = CollectorRegistry()  # CPU seconds move between two renders
    return exposition


def members(body: bytes) -> int:
    """How many gzip members `body` holds (each must be complete)."""
    count = 0
    while body:
        inflate = zlib.decompressobj(wbits=31)
        inflate.decompress(body)
        assert inflate.eof, "a cut member"
        body = inflate.unused_data
        count += 1
    return count


def test_segments_join_with_combined_crcs() -> None:
    texts = [b"", b"a 1\n" * 5000, b"", b"b{x=\"y\"} 2\n", bytes(range(256)) * 300, b"c 3\n" * 300_000]
    body = deflate.gzip_body(deflate.segment(t) for t in texts)
    assert gzip.decompress(body) == b"".join(texts) and members(body) == 1
    for a, b in ((b"", b""), (texts[1], b""), (b"", texts[4]), (texts[1], texts[4]), (texts[4], texts[5])):
        # texts[5] is 1.2 MB: far past _DIRECT, its factor is computed from squares
        assert deflate.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@settings(max_examples=150, deadline=None)
@given(steps=ops)
def test_gzip_body_decompresses_to_the_text_body_after_every_change(steps: list[tuple[str, int]]) -> None:
    with mock.patch.object(cache, "BLOCK_SIZE", 3):
        store = StateStore()
        exposition = exposition_of(store)
        keys: dict[int, str] = {}
        for clock, (op, index) in enumerate(steps, start=1):
            old = store.get(keys.get(index, ""))
            if op == "remove" and old is not None:
                store.remove(old.key)
            elif op == "change" and old is not None:
                store.put(old.with_failure(Reason.ERROR).evolve(restarts=old.restarts + 1, reason=Reason.ERROR))
            elif op == "recreate" and old is not None:  # same identity, new container: shadows the old one
                store.put(record(index, clock))
            else:
                keys[index] = record(index, clock).key
                store.put(store.get(keys[index]) or record(index, clock))
            for openmetrics in (False, True):
                text = exposition.render(openmetrics=openmetrics)
                body = exposition.render_gzip(openmetrics=openmetrics)
                assert gzip.decompress(body) == text
            assert text.endswith(b"# EOF\n")


def test_an_unchanged_scrape_sends_kept_bytes_and_a_change_recompresses_only_its_block() -> None:
    store = StateStore()
    records = [record(i, 1.0).with_failure(Reason.ERROR) for i in range(200)]
    for r in records:
        store.put(r)
    collector = ContainerCollector(store)
    first = dict(collector.collect_compressed())
    again = dict(collector.collect_compressed())
    kept = [dict(c._segments[i]) for c in (collector._cache,) for i in range(len(c.families))]  # noqa: SLF001
    changed = records[150].with_failure(Reason.ERROR)
    store.put(changed)
    after = dict(collector.collect_compressed())
    rekept = [dict(c._segments[i]) for c in (collector._cache,) for i in range(len(c.families))]  # noqa: SLF001
    for family, body in first.items():
        if isinstance(body, deflate.Segment):
            assert again[family] is body  # nothing compressed or joined again
    changed_families = []
    for family, before, now in zip(collector._cache.families, kept, rekept):  # noqa: SLF001
        assert len(before) == 4  # 200 containers in blocks of 64
        same = [before[block] is now[block] for block in before]
        assert same.count(False) <= 1  # at most the changed container's block was compressed again
        if not all(same):
            changed_families.append(family.name)
    assert "workload_container_failures_total" in changed_families
    exposition = exposition_of(store)
    body = exposition.render_gzip(openmetrics=True)
    assert members(body) == 1 and gzip.decompress(body) == exposition.render(openmetrics=True)


def test_a_length_factor_from_squares_equals_advancing_through_that_many_zeros() -> None:
    """x^(8 n) mod P, built from x^(2^k) per bit of n, against zlib.crc32 run over n real zero bytes
    (the factor a long family's CRC is combined with), for lengths around powers of two."""
    for n in (1, 2, 3, 255, 256, 4097, deflate._DIRECT, 65_535, 65_536, 1_000_003, (1 << 22) + 5):
        advanced = zlib.crc32(bytes(n), (1 << 31) ^ 0xFFFFFFFF) ^ 0xFFFFFFFF  # x^0 through n zero bytes
        assert deflate._x8nmodp(n) == advanced, n


def test_crc_combines_at_the_direct_boundary_and_far_past_it() -> None:
    """Lengths either side of _DIRECT (zeros run through, or a factor computed and kept) and far past it."""
    head = bytes(range(256)) * 7
    for n in (deflate._DIRECT - 1, deflate._DIRECT, deflate._DIRECT + 1, (1 << 20) - 1, 1 << 20, (1 << 20) + 1,
              (3 << 20) + 7):
        tail = (b"x{y=\"\\n\"} 1\n" * (n // 12 + 1))[:n]
        assert deflate.crc32_combine(zlib.crc32(head), zlib.crc32(tail), n) == zlib.crc32(head + tail), n
        assert deflate.crc32_combine(zlib.crc32(head), zlib.crc32(tail), n) == zlib.crc32(head + tail), n  # kept factor
