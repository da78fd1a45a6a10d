"""Log lines: logfmt by default, JSON on request, structured fields in both."""
from __future__ import annotations

import json
import logging

import pytest

from exporter import logs


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_one_line_per_event_with_fields(fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup("info", fmt)
    logging.getLogger("exporter.test").warning('source down', extra={"fields": {"source": "docker", "err": 'a "b"'}})
    logging.getLogger("exporter.test").debug("hidden")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    if fmt == "json":
        entry = json.loads(lines[0])
        assert entry["level"] == "warn" and entry["msg"] == "source down" and entry["err"] == 'a "b"'
    else:
        assert lines[0].startswith("ts=") and ' level=warn ' in lines[0]
        assert 'msg="source down"' in lines[0] and 'source=docker' in lines[0] and 'err="a \\"b\\""' in lines[0]
