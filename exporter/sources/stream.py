"""What both sources' event streams share: lines split from raw chunks, and one log line per
change of connection state.

Lines stay bytes (the decoders take bytes): kubernetes.watch's iter_resp_lines decodes each to
str and copies its buffer per line, docker-py's decode=True parses twice.
"""
from __future__ import annotations

import logging
from typing import Iterable, Iterator


def event_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-blank lines of a newline-delimited stream; both engines send mostly one whole
    event per chunk, so that case yields the chunk itself."""
    pending = b""
    for chunk in chunks:
        if pending:
            chunk, pending = pending + chunk, b""
        if chunk.endswith(b"\n") and chunk.find(b"\n") == len(chunk) - 1:
            if len(chunk) > 1:  # not a bare keep-alive newline
                yield chunk
            continue
        *lines, pending = chunk.split(b"\n")
        yield from (line for line in lines if line.strip())
    if pending.strip():
        yield pending


def log_connection(log: logging.Logger, source: str, was_up: bool | None, up: bool, problem: str = "",
                   **fields: object) -> None:
    """One log line per change of a source's connection, never one per retry."""
    if up == was_up:
        return
    if up:
        log.info(f"{source} source connected", extra={"fields": fields})
    else:
        log.warning(f"{source} source down", extra={"fields": {"err": problem, **fields}})
