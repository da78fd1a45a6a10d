"""After a relist, the memory its decoded JSON took goes back to the OS (exporter/sources/heap.py)."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# Fragments the C heap the way a relist does (many objects over 512 bytes, most of them freed
# while some stay), then prints VmRSS (KiB) before and after release_freed_memory().
CODE = """
import sys
from exporter.sources.heap import release_freed_memory
assert "ctypes" not in sys.modules  # imported at the first relist, not with the module
def rss():
    return int(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmRSS:")))
listed = [bytes([i % 251]) * 2000 for i in range(40_000)]  # ~80 MB, each its own malloc chunk
kept = listed[::16]  # what the records keep pins the heap: only the holes between can go back
del listed
before = rss()
released = release_freed_memory()
print(before, rss(), released, "ctypes" in sys.modules)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_the_memory_a_relist_freed_is_returned_to_the_os() -> None:
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60, check=True)
    before, after, released, ctypes_loaded = out.stdout.split()
    freed_kib = (int(before) - int(after))
    assert released == "True" and ctypes_loaded == "True"
    assert freed_kib > 40 * 1024, out.stdout  # of ~75 MB freed in 30 KB holes, most whole pages go back


def test_without_malloc_trim_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter.sources import heap

    monkeypatch.setattr(heap, "_looked_up", True)
    monkeypatch.setattr(heap, "_trim", None)  # musl, macOS: no malloc_trim
    assert heap.release_freed_memory() is False
