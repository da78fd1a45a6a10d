"""Give the memory a relist freed back to the operating system.

A relist decodes every container or pod at once (5,000 kubelet-shaped pods are ~40 MB of JSON
and several times that decoded) and drops it once the records are built. CPython hands objects
over 512 bytes to the C allocator, and glibc keeps the freed chunks inside its heaps, where the
process's resident size still counts them: cluster mode stayed at ~230 MiB after listing 5,000
pods x 2 containers. `malloc_trim(0)` returns the free pages of every heap (glibc >= 2.8 does so
inside the heap too, not only at its top): 231 -> 196 MiB there, -1.2 MiB after the first
sync of 1,000 Docker containers. Called once per relist, not per event: it walks the heaps.

glibc only; elsewhere (musl, macOS) it does nothing. ctypes (~0.4 MiB) is imported at the first
relist, not at start.
"""
from __future__ import annotations

import logging
import sys
from typing import Callable

log = logging.getLogger(__name__)

_trim: Callable[[int], int] | None = None
_looked_up = False


def _malloc_trim() -> Callable[[int], int] | None:
    global _trim, _looked_up
    if not _looked_up:
        _looked_up = True
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                _trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # absent from musl
            except OSError as exc:  # no dynamic loader (a static build)
                log.debug("malloc_trim unavailable", extra={"fields": {"err": exc}})
    return _trim


def release_freed_memory() -> bool:
    """Return the C heaps' free pages to the OS; True if the C library did so."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
