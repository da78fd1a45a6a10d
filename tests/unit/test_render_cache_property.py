"""The render cache against a plain render of the same objects, after any sequence of changes.

The cache keeps each object's text packed, each line's start (family name and identity labels)
left out, and per block compressed segments; none of that may show. Random puts, identity
changes, shadowing and un-shadowing, objects whose text becomes empty and removals, with label
values holding `{`, quotes, backslashes, newlines, non-ASCII and text that looks like a line's
start, scraped at random points: every family's body holds exactly the winners' fresh render,
and the gzip body (one family's segment alone, and all of them) decompresses to the text body.
"""
from __future__ import annotations

import gzip
import threading
import zlib
from dataclasses import dataclass
from typing import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.metrics.cache import RenderCache
from exporter.metrics.deflate import gzip_body
from exporter.metrics.family import COUNTER, GAUGE, Family, Sample, label_prefix, render

IDENTITY = ("a", "b")
ODD = ("", "x", "a{b}", 'q"u"ote', "back\\slash\\", "new\nline", "ünï€😀", "ÿ\u00ff", 't_info{a="x"',
       'a="x",b="y"', "\\\"", "}", "z" * 600)  # 600: cut to 512, so two identities may become one


@dataclass(frozen=True)
class Obj:
    ident: tuple[str, ...]  # () for an object with no identity labels
    value: str
    n: int
    rank: int


def _info(o: Obj) -> Iterable[Sample]:
    yield (o.value,), 1


def _count(o: Obj) -> Iterable[Sample]:
    yield (), o.n


def _sometimes(o: Obj) -> Iterable[Sample]:  # empty for most objects, several lines for others
    for i in range(o.n % 3):
        yield (f"{o.value}{i}", "t_info{"), i


FAMILIES = (
    Family("t_info", GAUGE, "h", ("v",), _info),
    Family("t_count_total", COUNTER, "h", (), _count),
    Family("t_sometimes", GAUGE, "h", ("k", "w"), _sometimes),
    Family("t_never", GAUGE, "h", (), lambda _o: ()),
)


def prefix(o: Obj) -> str:
    return label_prefix(IDENTITY[:len(o.ident)], o.ident)


def expected(store: dict[str, Obj], families: tuple[Family[Obj], ...]) -> dict[str, list[bytes]]:
    """Each family's sorted lines as a fresh render shows them: per identity, the highest-ranked
    object (ties: the key's repr) of those with any text."""
    winners: dict[str, tuple[tuple[int, str], Obj]] = {}
    for key, o in store.items():
        if not any(render(f, o, prefix(o)) for f in families):
            continue
        rank = (o.rank, repr(key))
        p = prefix(o)
        if p not in winners or winners[p][0] < rank:
            winners[p] = (rank, o)
    return {f.name: sorted(render(f, o, p).encode() for p, (_r, o) in winners.items()
                           for _ in [0] if render(f, o, p)) for f in families}


def check(cache: RenderCache[str, Obj], store: dict[str, Obj]) -> None:
    bodies = cache.bodies()
    compressed = cache.compressed()
    want = expected(store, cache.families)
    for (family, body), (family2, seg) in zip(bodies, compressed):
        assert family is family2
        got = [line + b"\n" for line in body.split(b"\n")[:-1]]
        # a fresh render joins each winner's lines; compare per object: lines of one render stay together
        assert sorted(got) == sorted(line for text in want[family.name] for line in text.splitlines(keepends=True)), \
            family.name
        assert gzip.decompress(gzip_body([seg])) == body, family.name
    text = b"".join(body for _f, body in bodies)
    whole = gzip_body(seg for _f, seg in compressed)
    assert gzip.decompress(whole) == text
    inflate = zlib.decompressobj(wbits=31)
    assert inflate.decompress(whole) == text and inflate.eof and not inflate.unused_data
    shown = len({prefix(o) for o in store.values() if any(render(f, o, prefix(o)) for f in cache.families)})
    with_text = sum(1 for o in store.values() if any(render(f, o, prefix(o)) for f in cache.families))
    assert cache.shadowed() == with_text - shown


idents = st.sampled_from([(), *((v,) for v in ODD), *((v, w) for v in ODD[:6] for w in ODD[-5:])])
objs = st.builds(Obj, ident=idents, value=st.sampled_from(ODD), n=st.integers(0, 5), rank=st.integers(0, 3))
steps = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, 9), objs),
    st.tuples(st.just("remove"), st.integers(0, 9), st.none()),
    st.tuples(st.just("scrape"), st.none(), st.none()),
), max_size=60)


@settings(max_examples=int(__import__("os").environ.get("RV_EX", "300")), deadline=None)
@given(steps=steps, block_size=st.integers(1, 4), empty_families=st.booleans())
def test_bodies_and_gzip_body_equal_a_fresh_render_after_any_changes(
        steps: list[tuple[str, int | None, Obj | None]], block_size: int, empty_families: bool) -> None:
    families = FAMILIES if not empty_families else (FAMILIES[3], FAMILIES[2])  # an object may have no text
    store: dict[str, Obj] = {}
    cache: RenderCache[str, Obj] = RenderCache(families, prefix, store.get, rank=lambda o: o.rank,
                                               block_size=block_size)
    for op, index, obj in steps:
        if op == "scrape":
            check(cache, store)
            continue
        key = f"k{index}"
        if op == "put":
            assert obj is not None
            store[key] = obj
        else:
            store.pop(key, None)
        cache.mark(key)
    check(cache, store)


def test_marks_arriving_during_scrapes_leave_the_body_of_the_last_state() -> None:
    store: dict[str, Obj] = {}
    cache: RenderCache[str, Obj] = RenderCache(FAMILIES, prefix, store.get, rank=lambda o: o.rank, block_size=3)
    done = threading.Event()

    def writer() -> None:
        try:
            for i in range(4000):
                key = f"k{i % 37}"
                if i % 11 == 0:
                    store.pop(key, None)
                else:
                    store[key] = Obj((ODD[i % 7], ODD[i % 5]), ODD[i % 13], i % 6, i % 4)
                cache.mark(key)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    scrapes = 0
    while not done.is_set() and scrapes < 10_000:
        cache.bodies()
        cache.compressed()
        scrapes += 1
    thread.join(timeout=60)
    assert not thread.is_alive()
    check(cache, store)


names = st.sampled_from(("web", *ODD[1:8]))


@settings(max_examples=100, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(("add", "remove", "rename", "restart")), st.integers(0, 5),
                                names, names), max_size=25))
def test_container_text_with_odd_names_equals_a_fresh_collector_and_its_gzip(
        steps: list[tuple[str, int, str, str]]) -> None:
    from exporter.metrics import ContainerCollector, Exposition
    from exporter.metrics.exposition import render_collectors
    from exporter.state import ContainerRecord, Phase, Reason, Source, StateStore
    from prometheus_client import CollectorRegistry

    store = StateStore()
    collector = ContainerCollector(store, label_allowlist=("app",))
    exposition = Exposition([collector])
    exposition.process_registry = CollectorRegistry()
    for clock, (op, index, name, other) in enumerate(steps, start=1):
        key = f"id{index}"
        old = store.get(key)
        if op == "remove":
            store.remove(key)
        elif op == "rename" and old is not None:
            store.put(old.evolve(container=name, namespace=other))
        elif op == "restart" and old is not None:
            store.put(old.evolve(restarts=old.restarts + 1, reason=Reason.CRASH_LOOP_BACK_OFF, started_at=clock))
        else:
            from types import MappingProxyType
            store.put(ContainerRecord(key=key, source=Source.DOCKER, container=name, host="h", pod=other,
                                      namespace="", container_id=key, image=other, phase=Phase.RUNNING,
                                      reason=Reason.RUNNING, created_at=float(clock),
                                      labels=MappingProxyType({"app": other})))
        fresh = ContainerCollector(store, label_allowlist=("app",))
        assert sorted(render_collectors([collector]).split(b"\n")) == sorted(render_collectors([fresh]).split(b"\n"))
        text = exposition.render(openmetrics=True)
        assert gzip.decompress(exposition.render_gzip(openmetrics=True)) == text


def test_a_record_that_cannot_be_rendered_is_left_out_and_later_scrapes_work(
        caplog: pytest.LogCaptureFixture) -> None:
    """A lone surrogate (no UTF-8 for it) in an identity label: that object is left out with a
    warning naming its key; the others stay, later changes join and compress, and it comes back
    once it renders."""
    store = {"k": Obj(("a",), "v", 1, 0), "j": Obj(("b",), "v", 1, 0)}
    cache: RenderCache[str, Obj] = RenderCache(FAMILIES, prefix, store.get, block_size=2)
    cache.mark_all(store)
    check(cache, store)
    store["k"] = Obj(("a\ud800",), "v", 2, 0)
    cache.mark("k")
    body = dict(cache.bodies())[FAMILIES[0]]
    assert body == b't_info{a="b",v="v"} 1\n'
    assert any(getattr(r, "fields", {}).get("key") == "k" for r in caplog.records)
    store["j"] = Obj(("b",), "w", 3, 0)  # another object of the same block changes: joined and compressed again
    cache.mark("j")
    assert dict(cache.bodies())[FAMILIES[0]] == b't_info{a="b",v="w"} 1\n'
    assert gzip.decompress(gzip_body(seg for _f, seg in cache.compressed())) == b"".join(b for _f, b in cache.bodies())
    store["k"] = Obj(("a",), "v", 2, 0)
    cache.mark("k")
    check(cache, store)


def test_a_change_of_a_shadowed_object_keeps_the_shown_ones_compressed_text() -> None:
    """Every container of a pod claims the pod's identity and one is shown: an event on another
    (most events in a cluster) leaves the pod families' text as it is, joined and compressed."""
    store = {"shown": Obj(("p",), "v", 1, 2), "other": Obj(("p",), "v", 1, 1)}
    cache: RenderCache[str, Obj] = RenderCache(FAMILIES, prefix, store.get, rank=lambda o: o.rank)
    cache.mark_all(store)
    before = cache.compressed()
    store["other"] = Obj(("p",), "v", 4, 1)
    cache.mark("other")
    after = cache.compressed()
    assert all(a[1] is b[1] for a, b in zip(before, after))
    check(cache, store)
