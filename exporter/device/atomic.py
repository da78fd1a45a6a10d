"""Atomic file replacement for files other processes read while we write them.

node_exporter's textfile collector and health.json readers must never see half a file, even
when this process is killed mid-write: write a temp file in the same directory (its name does
not end in `.prom`, so node_exporter ignores it), flush, fsync, chmod 0644, rename over the
target, fsync the directory so the rename itself survives a power cut.

The temp file gets an unpredictable name and is created with O_EXCL | O_NOFOLLOW (what
tempfile.mkstemp does), so a link planted in the directory is never followed: a root-run agent
cannot be made to overwrite a file elsewhere. rename() replaces a link at the target itself.
"""
from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

Opener = Callable[[str, int], int]
"""Like `os.open(path, flags)` minus the mode; injectable so tests can simulate a full disk."""

TEMP_INFIX = ".tmp-"


def temp_prefix(target: Path) -> str:
    """Hidden name prefix of our temp files for `target`: `.name.tmp-` (no `.prom` suffix)."""
    return f".{target.name}{TEMP_INFIX}"


def _default_opener(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def replace_atomically(target: Path, data: bytes, *, mode: int = 0o644, opener: Opener = _default_opener) -> None:
    """Replace `target` with `data` so readers see the old file or the new one, never a mix.

    On any error the temp file is removed and `target` is left as it was; the OSError is raised.
    """
    directory = target.parent
    temp, fd = _create_temp(target, opener)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        os.fchmod(fd, mode)
        os.close(fd)
        fd = -1
        os.rename(temp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        _unlink_quietly(temp)  # our own fresh temp
        raise
    fsync_directory(directory)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _create_temp(target: Path, opener: Opener) -> tuple[Path, int]:
    """A new file `.name.tmp-<pid>-<random>` next to `target`; never an existing name or a link."""
    for _ in range(100):
        temp = target.parent / f"{temp_prefix(target)}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            return temp, opener(str(temp), _CREATE)
        except FileExistsError:  # a planted file or link under this name: pick another
            continue
        except OSError:  # ENOSPC, EROFS...: leave no half-made temp behind
            _unlink_quietly(temp)
            raise
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target.parent))


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def warn_if_others_can_plant(directory: Path) -> None:
    """As root, a directory others may write to (without the sticky bit) lets them swap files under us."""
    try:
        st = os.stat(directory)
    except OSError:
        return
    others_write = st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX
    if os.geteuid() == 0 and (others_write or st.st_uid != 0):
        log.warning("writing as root into a directory another user controls; give it to root (0755) or run "
                    "as an unprivileged user", extra={"fields": {"directory": str(directory), "owner_uid": st.st_uid,
                                                                 "mode": oct(st.st_mode & 0o7777)}})


def fsync_directory(directory: Path) -> None:
    """Persist a rename; some filesystems refuse fsync on directories, which is harmless."""
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def remove_stale_temps(target: Path) -> int:
    """Delete temp files a killed writer of `target` left behind; returns how many."""
    removed = 0
    prefix = temp_prefix(target)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return 0
    for name in names:
        if name.startswith(prefix):
            try:
                os.unlink(target.parent / name)
                removed += 1
            except OSError:
                pass
    return removed


@dataclass
class WriteCounts:
    """A file's failed writes and collisions, in an object of their own: the collector that
    exports them is built before the file, whose text it is part of."""

    errors_total: int = 0
    collisions_total: int = 0


class AtomicFile:
    """A file rewritten whole from `render()`; a failed write keeps the previous file.

    Failures are counted in `errors_total` and logged once per streak of failures (then once
    when writing works again), so a full disk does not flood the journal.
    """

    def __init__(self, path: str | Path, render: Callable[[], bytes], *, kind: str,
                 opener: Opener | None = None, counts: WriteCounts | None = None) -> None:
        self.path = Path(path)
        self.kind = kind
        self._render = render
        self._opener = opener or _default_opener
        self._lock = threading.Lock()
        self.counts = counts if counts is not None else WriteCounts()
        self.writes_total = 0
        self._failing = False
        remove_stale_temps(self.path)
        warn_if_others_can_plant(self.path.parent)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def errors_total(self) -> int:
        return self.counts.errors_total

    def write(self) -> bool:
        """Render and replace the file; False (counted, logged once) when the write failed."""
        with self._lock:
            data = self._data()
            try:
                replace_atomically(self.path, data, opener=self._opener)
            except OSError as exc:
                self.counts.errors_total += 1
                if not self._failing:
                    self._failing = True
                    log.error(f"cannot write {self.kind}; keeping the previous file", extra={"fields": {
                        "path": str(self.path), "err": describe(exc), "remedy": remedy(exc)}})
                return False
            self.writes_total += 1
            if self._failing:
                self._failing = False
                log.info(f"{self.kind} written again", extra={"fields": {"path": str(self.path)}})
            return True

    def _data(self) -> bytes:
        """The bytes to write; subclasses check them against their neighbours."""
        return self._render()


def describe(exc: OSError) -> str:
    """`ENOSPC: No space left on device` style text for logs."""
    name = errno.errorcode.get(exc.errno or 0, "")
    return f"{name}: {exc.strerror}" if name and exc.strerror else str(exc)


def remedy(exc: OSError) -> str:
    """What a person should do about a failed write."""
    if exc.errno == errno.ENOSPC:
        return "free space on the directory's filesystem"
    if exc.errno == errno.EROFS:
        return "the filesystem is read-only; remount it read-write or configure another directory"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "let the exporter's user write to the directory"
    if exc.errno == errno.ENOENT:
        return "create the directory"
    return "check the directory and its filesystem"
