"""The fleet's uplink relay (tests/integration/fleet.py Link): a cut refuses, a restore listens on
the same port, and a link is never set up on a port something else can take first."""
from __future__ import annotations

import socket

import pytest

from tests.harness import wait_until
from tests.integration.fleet import Link


def test_a_cut_link_refuses_connections_at_once_and_restores_on_its_port() -> None:
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", 0))
    upstream.listen(8)
    link = Link(upstream.getsockname())
    try:
        client = socket.create_connection(("127.0.0.1", link.port), timeout=5)
        wait_until(lambda: len(link.conns) == 2, message="the relay's two ends")
        port = link.port
        link.cut()  # the accepting thread is blocked on the listener: a close alone kept it listening
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        link.restore()
        assert link.port == port
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        client.close()
    finally:
        link.cut()
        upstream.close()
