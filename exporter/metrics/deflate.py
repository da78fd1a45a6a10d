"""Deflate segments compressed once and joined into one gzip stream at scrape time.

A segment is text compressed on its own (fresh dictionary) and ended by a sync flush: a run of
non-final deflate blocks ending on a byte boundary (RFC 1951 3.2.3, zlib's Z_SYNC_FLUSH), so
segments may follow one another in one stream. A scrape sends one gzip member (RFC 1952): a
fixed header, the kept segments, a final empty block, and the CRC-32 and size of the whole text,
the CRC combined from each segment's own (zlib's crc32_combine) instead of read over the text
again. One member, not concatenated members: curl (7.88) stops after the first member.
"""
from __future__ import annotations

import struct
import zlib
from typing import Callable, Iterable, NamedTuple

HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # gzip, deflate, no flags, no mtime, unknown OS
FINAL = b"\x03\x00"  # a final, empty block with fixed Huffman codes: ends the deflate stream
LEVEL = 1  # about 3x cheaper than the default for the same text


class Segment(NamedTuple):
    """Compressed bytes of a text, with the text's CRC-32 and length (for the gzip trailer)."""

    data: bytes
    crc: int
    size: int


EMPTY = Segment(b"", 0, 0)


def segment(text: bytes) -> Segment:
    if not text:
        return EMPTY
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, -15)
    return Segment(compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH), zlib.crc32(text), len(text))


def _zlib_combine() -> Callable[[int, int, int], int] | None:
    """zlib's own crc32_combine64 (the library Python's zlib module wraps); None where it cannot load."""
    import ctypes  # here, not at import: only a gzip scrape needs it

    try:
        combine = ctypes.CDLL("libz.so.1").crc32_combine64
    except (OSError, AttributeError):
        return None
    combine.restype = ctypes.c_ulong
    combine.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int64]
    return combine  # type: ignore[no-any-return]


_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC-32 polynomial, reflected (zlib's multmodp)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


def _python_combine(crc1: int, crc2: int, len2: int) -> int:
    """crc32(A + B) from crc32(A), crc32(B) and len(B): x^(8 len2) * crc1 + crc2 (zlib's algorithm)."""
    power, x = 1 << 31, 1 << 30  # x^0, then x^1, squared as the bits of 8 * len2 are walked
    n = 8 * len2
    while n:
        if n & 1:
            power = _multmodp(x, power)
        x = _multmodp(x, x)
        n >>= 1
    return _multmodp(power, crc1) ^ crc2


_combine: list[Callable[[int, int, int], int]] = []


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """crc32(A + B) from crc32(A), crc32(B) and len(B)."""
    if not _combine:
        _combine.append(_zlib_combine() or _python_combine)
    return _combine[0](crc1, crc2, len2)


def join(segments: Iterable[Segment]) -> Segment:
    """One segment standing for the segments in order (their bytes joined, CRCs combined)."""
    parts, crc, size = [], 0, 0
    for seg in segments:
        if seg.size:
            parts.append(seg.data)
            crc = crc32_combine(crc, seg.crc, seg.size)
            size += seg.size
    return Segment(b"".join(parts), crc, size)


def gzip_body(segments: Iterable[Segment]) -> bytes:
    """The gzip member that decompresses to the segments' texts in order."""
    whole = join(segments)
    return b"".join((HEADER, whole.data, FINAL, struct.pack("<II", whole.crc, whole.size & 0xFFFFFFFF)))
