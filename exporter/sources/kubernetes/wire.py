"""Decoding the API server's pod JSON: only the fields the mapping reads, the rest skipped unread.

A kubelet-written pod is ~5-8 KB of JSON of which the mapping reads ~2: managedFields, volumes,
tolerations, conditions, env, resources and the like are never looked at. msgspec decodes
against the TypedDicts below (plain dicts holding only the declared keys; every other key is
skipped by the parser, not built and thrown away), which halves a watch event's decode and keeps a
5,000-pod list from building ~60 MiB of dicts it would drop at once (bench/kube.py).

The schema is a filter, not a validator: a declared field the mapping type-checks itself is
`Any`. When the JSON does not fit the declared shape (a `spec` that is not an object, ...) or
nests deeper than msgspec recurses (~1,000 levels, where it raises RecursionError), the body is
decoded again in full by orjson, the decoder used before, and handed on unchanged: the mapping
refuses it with its own message, and orjson's limits (1,024 levels) still hold. Skipped fields
are only checked to be well-formed JSON (orjson also refused invalid UTF-8 or an out-of-range
number in a field nobody reads); an integer beyond 64 bits decodes exactly (orjson: a float).
tests/unit/test_kube_wire.py checks that every key the mapping and the watcher read is declared.
"""
from __future__ import annotations

from typing import Any, TypedDict, Union

import msgspec
from orjson import loads as _whole


class _Metadata(TypedDict, total=False):
    name: Any
    namespace: Any
    resourceVersion: Any
    labels: Any
    ownerReferences: Any


class _ContainerSpec(TypedDict, total=False):
    name: Any
    image: Any
    readinessProbe: Any
    startupProbe: Any


class _PodSpec(TypedDict, total=False):
    nodeName: Any
    containers: list[_ContainerSpec]
    initContainers: list[_ContainerSpec]


class _PodStatus(TypedDict, total=False):
    phase: Any
    reason: Any
    message: Any
    containerStatuses: Any
    initContainerStatuses: Any


class _Object(TypedDict, total=False):
    """A Pod, or the Status of an ERROR event (whose `status` is a string, `code` a number)."""

    kind: Any
    metadata: _Metadata
    spec: _PodSpec
    status: Union[_PodStatus, str]
    code: Any
    reason: Any
    message: Any


class _WatchEvent(TypedDict, total=False):
    type: Any
    object: _Object


class _PodList(TypedDict, total=False):
    metadata: Any
    items: list[_Object]


_event = msgspec.json.Decoder(_WatchEvent)
_list = msgspec.json.Decoder(_PodList)


def decode_event(line: bytes | str) -> Any:
    """One watch event line -> a dict; raises ValueError for what is not JSON."""
    try:
        return _event.decode(line)
    except (msgspec.ValidationError, RecursionError):  # JSON not shaped like a pod event: the mapping says why
        return _whole(line)


def decode_list(body: bytes | str) -> Any:
    """A PodList body -> a dict; raises ValueError for what is not JSON."""
    try:
        return _list.decode(body)
    except (msgspec.ValidationError, RecursionError):  # one odd pod: all in full, each read (or refused) alone
        return _whole(body)
