"""The pod decode that keeps only the fields the mapping reads (sources/kubernetes/wire.py) maps
every pod exactly as a full decode does: on the kubelet-shaped fixtures, on random damage to
them, and for every key the mapping and the watcher read."""
from __future__ import annotations

import ast
import copy
import json
from pathlib import Path
from typing import Any, get_args, get_type_hints

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.sources.kubernetes import pods, watcher, wire
from exporter.resilience import ResilienceRegistry
from exporter.sources.kubernetes.pods import PodMapper
from exporter.state import StateStore
from tests.integration.fake_kube import FIXTURES, load_pod

NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))


def mapped(pod: Any) -> Any:
    """The records a fresh mapper makes of `pod` (as comparable tuples), or the error it raises."""
    store: dict[str, Any] = {}
    try:
        for record in PodMapper("h", label_allowlist=("app", "team")).records(pod, store.get):
            store[record.key] = record
    except (TypeError, ValueError, AttributeError) as exc:
        return type(exc).__name__
    return sorted((k, repr(r)) for k, r in store.items())


def outcome(decode: Any, line: bytes) -> Any:
    """What the watcher makes of `line` with `decode`: the mapped records, or the refusal."""
    try:
        event = decode(line)
    except ValueError:
        return "not JSON"
    return mapped(event["object"])


def both(pod: Any) -> tuple[Any, Any]:
    """The old path (a full orjson decode) and the schema decode, on one MODIFIED event."""
    line = json.dumps({"type": "MODIFIED", "object": pod}).encode()
    return outcome(orjson.loads, line), outcome(wire.decode_event, line)


def test_every_fixture_maps_the_same_and_the_skipped_fields_are_gone() -> None:
    for name in NAMES:
        pod = load_pod(name)
        pod["metadata"]["labels"] = {"app": "web", "team": "shop", "other": "x"}
        full, kept = both(pod)
        assert full == kept and not isinstance(full, str), name
        typed = wire.decode_event(json.dumps({"type": "MODIFIED", "object": pod}))["object"]
        assert "managedFields" not in typed["metadata"] and "conditions" not in typed["status"], name
        assert "volumes" not in typed["spec"] and "env" not in typed["spec"]["containers"][0], name


def test_a_pod_list_keeps_its_version_and_every_pod() -> None:
    items = [load_pod(name) for name in NAMES]
    body = json.dumps({"kind": "PodList", "metadata": {"resourceVersion": "42"}, "items": items}).encode()
    decoded = wire.decode_list(body)
    assert decoded["metadata"]["resourceVersion"] == "42"
    assert [mapped(p) for p in decoded["items"]] == [mapped(p) for p in items]


def test_a_list_with_one_odd_pod_is_decoded_in_full_and_the_others_still_map() -> None:
    items = [load_pod("running"), {"metadata": {"name": "odd", "namespace": "x"}, "spec": "not an object"}]
    decoded = wire.decode_list(json.dumps({"metadata": {}, "items": items}))
    assert decoded["items"][1]["spec"] == "not an object"  # handed on whole: the mapping refuses it
    assert mapped(decoded["items"][0]) == mapped(items[0]) and mapped(decoded["items"][1]) == "AttributeError"


def test_error_and_bookmark_events_keep_what_the_watcher_reads() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                        "message": "too old resource version: 1 (5)", "reason": "Expired", "code": 410}}
    assert wire.decode_event(json.dumps(gone)) == {"type": "ERROR", "object": {
        "kind": "Status", "metadata": {}, "status": "Failure", "message": "too old resource version: 1 (5)",
        "reason": "Expired", "code": 410}}
    mark = {"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {
        "resourceVersion": "77", "annotations": {"k8s.io/initial-events-end": "true"}}}}
    assert wire.decode_event(json.dumps(mark))["object"]["metadata"] == {"resourceVersion": "77"}


def deep_event(depth: int, where: str) -> bytes:
    """A MODIFIED event of the running fixture whose metadata[where] nests `depth` objects (written
    as text: Python's own json cannot encode that deep)."""
    pod = load_pod("running")
    pod["metadata"][where] = "NESTED"
    return json.dumps({"type": "MODIFIED", "object": pod}).replace(
        '"NESTED"', '{"a":' * depth + '"x"' + "}" * depth).encode()


def test_nesting_deeper_than_msgspec_recurses_is_read_as_orjson_reads_it() -> None:
    """~1,000 levels: msgspec raises RecursionError; orjson (the decoder before) reads up to 1,024
    and refuses more. The watcher counts the refused line malformed and goes on."""
    for depth in (990, 1010, 1100):
        for where in ("labels", "managedFields"):  # kept whole (Any), and skipped
            line = deep_event(depth, where)
            assert outcome(orjson.loads, line) == outcome(wire.decode_event, line), (depth, where)
    assert outcome(wire.decode_event, deep_event(1100, "labels")) == "not JSON"
    assert outcome(wire.decode_event, deep_event(1010, "labels")) != "not JSON"
    store = StateStore()
    kube = watcher.KubernetesWatcher(store, ResilienceRegistry(), host="h", api_factory=lambda: None)
    kube.handle_line(deep_event(1100, "labels"), kube.scopes[0])
    kube.handle_line(json.dumps({"type": "MODIFIED", "object": load_pod("running")}), kube.scopes[0])
    assert store.sources()[0].events == {"malformed": 1, "ok": 1} and len(store) == 2


JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 3) | st.text(max_size=3),
                    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
                    max_leaves=4)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside a decoded pod."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths(v, (*prefix, i))
    return out


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(NAMES), picks=st.lists(st.tuples(st.integers(0, 10_000), JSON), min_size=1, max_size=3))
def test_a_damaged_pod_maps_or_fails_the_same_either_way(name: str, picks: list[tuple[int, Any]]) -> None:
    """Any field of a fixture replaced by any JSON value: the same records, or the same refusal."""
    pod = copy.deepcopy(load_pod(name))
    for index, value in picks:
        where = paths(pod)
        path = where[index % len(where)]
        parent = pod
        for step in path[:-1]:
            parent = parent[step]
        parent[path[-1]] = value
    full, kept = both(pod)
    assert full == kept


def declared_keys(hint: Any = wire._WatchEvent) -> set[str]:
    """Every key of the schema's TypedDicts, at any depth."""
    keys: set[str] = set()
    if isinstance(hint, type) and issubclass(hint, dict):
        for key, value in get_type_hints(hint).items():
            keys |= {key} | declared_keys(value)
    for arg in get_args(hint):  # list[...], Union[...]
        keys |= declared_keys(arg)
    return keys


# Keys read inside subtrees the schema keeps whole (`Any`): a container status and an owner.
INSIDE_KEPT = {"state", "lastState", "terminated", "running", "waiting", "startedAt", "finishedAt", "exitCode",
               "restartCount", "ready", "started", "containerID", "controller", "items"}


def test_every_key_the_mapping_and_the_watcher_read_is_kept() -> None:
    """`.get("k")`, `["k"]` and `"k" in` on a constant key, in pods.py and watcher.py."""
    read: set[str] = set()
    for module in (pods, watcher):
        for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                read.add(node.args[0].value)
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and isinstance(node.slice, ast.Constant) \
                    and isinstance(node.slice.value, str):
                read.add(node.slice.value)
    assert "containerStatuses" in read and "ownerReferences" in read  # the scan sees the mapping's reads
    assert read - declared_keys() - INSIDE_KEPT == set()
