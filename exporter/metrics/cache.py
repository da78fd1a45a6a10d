"""Rendered text per object, refreshed lazily: the kube-state-metrics store with dirty marks.

A change only marks its key dirty (cheap, on the source's thread); the next scrape re-renders
the dirty keys once, however many events hit them, then concatenates cached text per family.
Removing an object removes its text, so stale series cannot survive.

No two objects ever render the same series: objects whose text has the same prefix (identity
labels) claim it, and only the highest-ranked claimant (the newest container: an engine that
reused a name, a removal we missed) is rendered; the others are shadowed and counted, and come
back if it goes.

An object's text is kept as one bytes for all families, led by where each family's part ends,
each line's start (family name and identity labels) left out (`Packed`): one object and one map
entry per container instead of one per family, and a third of the bytes (~1.2 KB less per
container); a family's part is cut out and its lines' starts put back only when its text is
joined or compressed.
Each family's text is also kept compressed, per block of objects, as deflate segments
(exporter.metrics.deflate): a gzip scrape sends those bytes as they are and recompresses only
the blocks whose text changed.
"""
from __future__ import annotations

import logging
import struct
import threading
from typing import Any, Callable, Generic, Hashable, Iterable, Sequence, TypeVar

from exporter.metrics.deflate import Segment, join, segment
from exporter.metrics.family import Family, render

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

BLOCK_SIZE = 64  # objects per compressed block: ~7 KB of a family's text
MARK = b"\xff"  # never in UTF-8 text: stands for a line's family name and identity labels in kept text
_SPAN = struct.Struct("<II")
log = logging.getLogger(__name__)


class Packed:
    """The texts of several families of one object in one bytes: where each part ends (uint32),
    then the parts, each line's start (`name{` and the identity labels) kept as MARK.

    Every line of a family starts with its name and the object's identity labels, which make
    up three quarters of a container's text (`workload_container_phase{source=...,container=...`
    on nine lines); kept once per family and object instead, 1,000 containers hold ~0.9 MB less.
    A part is cut out and its lines' starts put back per family, as a scrape usually needs a few.
    """

    def __init__(self, families: Sequence[Family[Any]]) -> None:
        self._ends = struct.Struct(f"<{len(families) + 1}I")
        self.ends = self._ends.unpack_from  # (start of part 0, end of part 0, end of part 1, ...)
        self.span = _SPAN.unpack_from  # (start, end) of part i, read at offset 4 i
        self.heads = [f"{family.name}{{".encode() for family in families]  # a line's start before the labels

    def parts(self, texts: list[bytes], prefix: bytes) -> list[bytes]:
        """The texts as kept: each line's start left out (with no identity labels, kept whole)."""
        if not prefix:
            return texts
        return [text.replace(head + prefix, MARK) if text else text for text, head in zip(texts, self.heads)]

    def pack(self, parts: list[bytes]) -> bytes:
        ends, at = [self._ends.size], self._ends.size
        for part in parts:
            at += len(part)
            ends.append(at)
        return b"".join((self._ends.pack(*ends), *parts))


def _precedence(claim: tuple[Hashable, Any]) -> tuple[Any, str]:
    """Of two objects claiming one identity, the higher rank wins; equal ranks, the key's repr (stable)."""
    key, rank = claim
    return rank, repr(key)


class RenderCache(Generic[K, T]):
    """Rendered sample text per key, for a large, changing set of objects, joined per family."""

    def __init__(self, families: Sequence[Family[T]], prefix: Callable[[T], str],
                 lookup: Callable[[K], T | None], *, rank: Callable[[T], Any] | None = None,
                 block_size: int | None = None) -> None:
        self.families = tuple(families)
        self._prefix = prefix
        self._lookup = lookup
        self._rank = rank or (lambda _obj: 0)
        # prefix -> the key of the object claiming it; when several do, all of them are in _rivals
        # (almost never: a plain key per object is ~0.07 KB less than a tuple of one)
        self._claims: dict[bytes, K] = {}
        self._rivals: dict[bytes, tuple[K, ...]] = {}
        self._prefix_of: dict[K, bytes] = {}  # the identity labels the key's kept text was rendered with
        self._packing = Packed(self.families)
        self._text: dict[K, bytes] = {}  # every family's text of the object, packed
        self._joined: list[bytes | None] = [None for _ in self.families]  # per family, until it changes
        # objects are grouped in blocks, in the order they first got text; per family and block the
        # compressed text of that block is kept until one of its objects' text changes
        self._block_size = block_size or BLOCK_SIZE
        self._blocks: dict[int, dict[K, None]] = {}
        self._block_of: dict[K, int] = {}
        self._roomy: set[int] = set()  # blocks with room for a new object
        self._next_block = 0
        self._segments: list[dict[int, Segment]] = [{} for _ in self.families]
        self._packed: list[Segment | None] = [None for _ in self.families]  # the blocks' segments, in order
        self._dirty: set[K] = set()
        self._dirty_lock = threading.Lock()
        self._render_lock = threading.Lock()

    def mark(self, key: K) -> None:
        """Note that `key` changed or disappeared; rendering waits for the next scrape."""
        with self._dirty_lock:
            self._dirty.add(key)

    def mark_all(self, keys: Iterable[K]) -> None:
        with self._dirty_lock:
            self._dirty.update(keys)

    def refresh(self) -> int:
        """Re-render every dirty key; returns how many were rendered or dropped."""
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        if not dirty:
            return 0
        rendered: dict[K, tuple[bytes, int]] = {}
        affected: set[bytes] = set()  # prefixes whose claimants changed: their winner is decided again
        for key in dirty:
            old = self._prefix_of.pop(key, None)
            if old is not None:
                self._claim(old, tuple(other for other in self._claimants(old) if other != key))
                affected.add(old)
            obj = self._lookup(key)
            if obj is None:
                self._drop(key)
                continue
            fresh = self._safely(key, self._fresh, key, obj, old)
            if fresh is None or fresh[1] is None:
                self._drop(key)
                continue
            prefix, result = fresh
            self._claim(prefix, (*self._claimants(prefix), key))
            self._prefix_of[key] = prefix
            rendered[key] = result
            affected.add(prefix)
        for prefix in affected:
            claims = self._claimants(prefix)
            if not claims:
                continue
            winner = claims[0] if len(claims) == 1 else self._winner(claims)
            for other in claims:
                if other != winner:
                    self._drop(other)  # shadowed by a newer object with the same identity
            result = rendered.get(winner)
            if result is None:  # not dirty: shown again now that the object shadowing it went, or still shown
                obj = self._lookup(winner)
                kept = prefix if winner in self._text else None  # still shown: only its changed families count
                result = self._safely(winner, self._render, winner, obj, prefix.decode(), prefix, kept) \
                    if obj is not None else None
            if result is not None:
                self._store(winner, *result)
        return len(dirty)

    def _safely(self, key: K, step: Callable[..., Any], *args: Any) -> Any:
        """`step(*args)`, or None (the object left out, as if it had no text) if it raises: one record
        that cannot be rendered (a label value with a lone surrogate) must not leave the kept text
        without its identity labels (every later scrape failing) nor take /metrics down."""
        try:
            return step(*args)
        except Exception as exc:  # noqa: BLE001
            log.warning("cannot render a record; left out of /metrics until it changes",
                        extra={"fields": {"key": key, "err": exc}})
            return None

    def _fresh(self, key: K, obj: T, old: bytes | None) -> tuple[bytes, tuple[bytes, int] | None]:
        """`obj`'s identity labels and its text (`_render`)."""
        labels = self._prefix(obj)
        prefix = labels.encode()
        return prefix, self._render(key, obj, labels, prefix, old)

    def _claimants(self, prefix: bytes) -> tuple[K, ...]:
        rivals = self._rivals.get(prefix)
        if rivals is not None:
            return rivals
        return (self._claims[prefix],) if prefix in self._claims else ()

    def _claim(self, prefix: bytes, claims: tuple[K, ...]) -> None:
        """Set the claimants of `prefix` (none: it is free)."""
        if claims:
            self._claims[prefix] = claims[0]
        else:
            self._claims.pop(prefix, None)
        if len(claims) > 1:
            self._rivals[prefix] = claims
        else:
            self._rivals.pop(prefix, None)

    def _winner(self, claims: tuple[K, ...]) -> K:
        """The highest-ranked of several claimants, ranked as the store holds them now (one gone
        from it since its mark ranks lowest: it is dropped at the next refresh)."""
        ranked = []
        for key in claims:
            obj = self._lookup(key)
            ranked.append((key, (obj is not None, self._rank(obj) if obj is not None else 0)))
        return max(ranked, key=_precedence)[0]

    def _render(self, key: K, obj: T, labels: str, prefix: bytes,
                old_prefix: bytes | None) -> tuple[bytes, int] | None:
        """`obj`'s text of every family, packed, and a bit per family whose text differs from the
        key's kept text (rendered with `old_prefix`); None if all are empty. Packed at once: the
        per-family pieces die here, not after the refresh (kept till then, 10,000 containers'
        pieces left ~0.9 KB each of holes in the heap)."""
        texts = [render(family, obj, labels).encode() for family in self.families]
        if not any(texts):
            return None
        parts = self._packing.parts(texts, prefix)
        old = self._text.get(key)
        changed = 0
        if old is None or old_prefix != prefix:
            ends = self._packing.ends(old) if old is not None else ()
            for i, part in enumerate(parts):
                if part or (ends and ends[i + 1] > ends[i]):
                    changed |= 1 << i
        else:
            ends = self._packing.ends(old)
            for i, part in enumerate(parts):
                if part != old[ends[i]:ends[i + 1]]:
                    changed |= 1 << i
        return self._packing.pack(parts), changed

    def _store(self, key: K, packed: bytes, changed: int) -> None:
        block = self._block_of.get(key)
        if block is None:
            block = self._place(key)
        self._text[key] = packed
        i = 0
        while changed:
            if changed & 1:
                self._changed(i, block)
            changed >>= 1
            i += 1

    def _drop(self, key: K) -> None:
        block = self._block_of.pop(key, None)
        if block is None:
            return
        ends = self._packing.ends(self._text.pop(key))
        for i in range(len(self.families)):
            if ends[i + 1] > ends[i]:
                self._changed(i, block)
        keys = self._blocks[block]
        del keys[key]
        if keys:
            self._roomy.add(block)
        else:
            del self._blocks[block]
            self._roomy.discard(block)

    def _changed(self, family: int, block: int) -> None:
        self._joined[family] = None
        self._packed[family] = None
        self._segments[family].pop(block, None)

    def _place(self, key: K) -> int:
        """Put a newly rendered object in the first block with room (or a new one at the end)."""
        if self._roomy:
            block = min(self._roomy)
        else:
            block = self._next_block
            self._next_block += 1
            self._blocks[block] = {}
            self._roomy.add(block)
        keys = self._blocks[block]
        keys[key] = None
        if len(keys) >= self._block_size:
            self._roomy.discard(block)
        self._block_of[key] = block
        return block

    def _family_text(self, family: int, keys: Iterable[K]) -> bytes:
        """The text of `family` for `keys`, in order: each key's part cut out, its lines' starts put
        back (with no identity labels there is no MARK to replace: UTF-8 text never holds the byte)."""
        kept, prefix_of, span, at = self._text, self._prefix_of, self._packing.span, 4 * family
        head = self._packing.heads[family]
        return b"".join([packed[start:end].replace(MARK, head + prefix_of[key]) for key in keys
                         for packed in (kept[key],) for start, end in (span(packed, at),) if end > start])

    def shadowed(self) -> int:
        """Objects not rendered because a higher-ranked one has the same identity labels."""
        with self._render_lock:
            self.refresh()
            return sum(len(claims) - 1 for claims in self._rivals.values())

    def bodies(self) -> list[tuple[Family[T], bytes]]:
        """(family, the text of all its objects) for each family, after a refresh.

        A family's text is joined again only when one of its objects' text changed: with
        10,000 containers a scrape then copies the ~30 MB once, in the exposition's final join,
        instead of gathering 180,000 chunks each time.
        """
        with self._render_lock:
            self.refresh()
            joined = self._joined
            for i, text in enumerate(joined):
                if text is None:
                    joined[i] = self._family_text(i, (key for block in self._blocks.values() for key in block))
            return list(zip(self.families, joined))  # type: ignore[arg-type]

    def compressed(self) -> list[tuple[Family[T], Segment]]:
        """(family, its text compressed) for each family, after a refresh, in `bodies()` order.

        Only blocks whose text changed since the last call are compressed again; an unchanged scrape of 1,000 containers
        then sends ~190 KB of kept bytes instead of compressing 2.4 MB. A family's segment holds
        its blocks' compressed bytes as they are (`Segment.data` a tuple): no second copy.
        """
        with self._render_lock:
            self.refresh()
            blocks = self._blocks
            for i, (segments, packed) in enumerate(zip(self._segments, self._packed)):
                if packed is not None:
                    continue
                for block, keys in blocks.items():
                    if block not in segments:
                        segments[block] = segment(self._family_text(i, keys))
                self._packed[i] = join(segments[block] for block in blocks)
            return list(zip(self.families, self._packed))  # type: ignore[arg-type]
