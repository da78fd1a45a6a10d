"""tests.harness.free_port: ports for processes the tests start, handed out before they bind."""
from __future__ import annotations

import socket
from pathlib import Path

from tests.harness import free_port


def test_ports_come_from_below_the_ephemeral_range_free_and_never_twice() -> None:
    """An outgoing connection takes its local port from the ephemeral range, so a port picked
    there could be taken before its process binds it (the fleet's 'Address already in use')."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports) and all(1024 <= p < low for p in ports)
    with socket.socket() as s:  # and a handed-out port is bindable now
        s.bind(("127.0.0.1", ports[-1]))
