"""Textfile writes are atomic, keep the previous file on failure, log once and count errors."""
from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from exporter.device.atomic import replace_atomically, temp_prefix
from exporter.device.textfile import TextfilePublisher, TextfileWriter
from tests.harness import wait_until


def failing_opener(err: int):  # type: ignore[no-untyped-def]
    """Opens the temp file for real but fails its writes, like a disk that fills up mid-write."""
    def opener(path: str, flags: int) -> int:
        fd = os.open(path, flags, 0o600)
        os.close(fd)
        raise OSError(err, os.strerror(err), path)
    return opener


def test_write_replaces_the_file_whole_with_mode_0644_and_no_temp_left(tmp_path: Path) -> None:
    content = [b"# HELP a A.\n# TYPE a gauge\na 1\n"]
    writer = TextfileWriter(tmp_path, "x.prom", lambda: content[0])
    assert writer.write()
    content[0] = b"# HELP a A.\n# TYPE a gauge\na 2\n"
    assert writer.write()
    assert (tmp_path / "x.prom").read_bytes().endswith(b"a 2\n")
    assert oct((tmp_path / "x.prom").stat().st_mode & 0o777) == "0o644"
    assert os.listdir(tmp_path) == ["x.prom"]
    assert (writer.writes_total, writer.errors_total) == (2, 0)


def test_temp_file_name_is_hidden_and_never_ends_in_prom(tmp_path: Path) -> None:
    prefix = temp_prefix(tmp_path / "x.prom")
    assert prefix.startswith(".") and not (prefix + "123").endswith(".prom")


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS])
def test_failed_write_keeps_previous_file_logs_once_and_counts(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, err: int) -> None:
    (tmp_path / "x.prom").write_bytes(b"previous\n")
    writer = TextfileWriter(tmp_path, "x.prom", lambda: b"new\n", opener=failing_opener(err))
    with caplog.at_level(logging.INFO, logger="exporter.device.atomic"):
        assert not writer.write()
        assert not writer.write()
    assert (tmp_path / "x.prom").read_bytes() == b"previous\n"
    assert writer.errors_total == 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "keeping the previous file" in errors[0].getMessage()
    assert errors[0].fields["err"].startswith(errno.errorcode[err])  # type: ignore[attr-defined]
    assert os.listdir(tmp_path) == ["x.prom"]  # the temp file is cleaned up
    writer._opener = lambda path, flags: os.open(path, flags, 0o600)
    with caplog.at_level(logging.INFO, logger="exporter.device.atomic"):
        assert writer.write()
    assert caplog.records[-1].getMessage() == "textfile written again"


def test_stale_temp_files_of_a_killed_writer_are_removed_at_start(tmp_path: Path) -> None:
    stale = tmp_path / f"{temp_prefix(tmp_path / 'x.prom')}4242"
    stale.write_bytes(b"half")
    other = tmp_path / ".other.prom.tmp-1"
    other.write_bytes(b"not ours")
    TextfileWriter(tmp_path, "x.prom", lambda: b"")
    assert not stale.exists() and other.exists()


def test_textfile_name_must_end_in_prom(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must be a file name ending in .prom"):
        TextfileWriter(tmp_path, "x.txt", lambda: b"")


def test_replace_atomically_raises_and_leaves_target_alone_on_error(tmp_path: Path) -> None:
    target = tmp_path / "h.json"
    target.write_text("{}")
    with pytest.raises(OSError):
        replace_atomically(target, b"new", opener=failing_opener(errno.ENOSPC))
    assert target.read_text() == "{}"


def test_publisher_writes_every_interval_and_once_more_on_stop(tmp_path: Path) -> None:
    count = [0]

    def render() -> bytes:
        count[0] += 1
        return f"n {count[0]}\n".encode()

    publisher = TextfilePublisher(TextfileWriter(tmp_path, "x.prom", render), 0.01)
    publisher.start()
    wait_until(lambda: count[0] >= 3, timeout=5, message="three periodic writes")
    publisher.stop()
    final = count[0]
    assert (tmp_path / "x.prom").read_text() == f"n {final}\n"
