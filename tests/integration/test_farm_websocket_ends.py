"""A WebSocket whose two ends both closed leaves nothing behind in its entry.

After a 101 the entry tunnels bytes both ways (lb.node.http_client TUNNEL). When
the client closes and the application, seeing EOF, ends its side too, both
directions are finished: the entry must close its client connection and the
application connection and release the client (its admission slot, and for a
local tunnel the node's load). Real processes; tests/support/backend_ext.py is
the application (it ends a WebSocket at EOF or after echoing a close frame).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.farm import Farm
from tests.support.http11 import app_farm, finish
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    f = app_farm(tmp_path_factory.mktemp("ws-ends"))
    yield f
    crashed = finish(f)
    assert not crashed, f"processes exited during the tests: {crashed}"


def open_websocket(farm: Farm, entry: str, home: str) -> socket.socket:
    s = socket.create_connection(farm.addr(entry), timeout=5)
    s.sendall(
        b"GET /ws HTTP/1.1\r\nHost: lb\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        + f"Cookie: {farm.cookie_header(home)}\r\n\r\n".encode()
    )
    got = b""
    while b"node=" not in got:  # the 101, then the application's first message
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 101 "), got
    return s


@pytest.mark.parametrize("how", ["close", "close-frame"])
@pytest.mark.parametrize("path", ["local", "forwarded"])
def test_an_ended_websocket_is_released(farm: Farm, path: str, how: str) -> None:
    entry, home = ("b", "b") if path == "local" else ("a", "b")
    before = farm.tables(entry)
    s = open_websocket(farm, entry, home)
    if how == "close-frame":
        s.sendall(b"\x88\x80" + os.urandom(4))  # a masked close frame, no payload
        deadline = time.monotonic() + 5
        while s.recv(4096) and time.monotonic() < deadline:
            pass  # the echoed close frame, then the entry's EOF
    s.close()

    def released() -> None:
        t = farm.tables(entry)
        assert (t["clients"], t["local"]) == (before["clients"], before["local"]), (before, t)

    eventually_passes(released, timeout=5, what=f"{entry} released the ended WebSocket")
