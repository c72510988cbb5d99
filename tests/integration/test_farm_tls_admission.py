"""tls-terminate listeners count a connection from accept on, TLS handshake included.

500 silent sockets against max_connections = 50: the node holds at most 50 of
them (the rest are closed at once, before a byte is read), its memory barely
moves, the silent ones are closed after head_timeout, and then a real TLS client
is served.
"""

from __future__ import annotations

import resource
import socket
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.support.farm import DEFAULT_SERVICES, HOST, Farm, make_cert

pytestmark = pytest.mark.integration

SILENT = 500
LIMIT = 50


def _still_open(socks: list[socket.socket]) -> int:
    """Sockets the node has not closed (a closed one reads EOF or an error at once)."""
    n = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b"":
                continue
        except BlockingIOError:
            n += 1
            continue
        except OSError:
            continue
    return n


def test_silent_tls_sockets_count_against_max_connections(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < SILENT + 200:
        pytest.skip(f"descriptor limit {hard} too low")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    cert, key = make_cert(tmp_path_factory.mktemp("tlsadm"))
    farm = make_farm(
        nodes=("a", "b"),
        services={
            "web": DEFAULT_SERVICES["web"],
            "secure": ("tls-terminate", '[ { kind = "home-cookie" } ]'),
        },
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
        limits={"max_connections": LIMIT, "head_timeout": 3.0},
    )
    before = farm.rss_mib("a")
    port = farm.ports["a"].listen["secure"]
    socks = []
    try:
        for _ in range(SILENT):
            s = socket.create_connection((HOST, port))
            socks.append(s)
        time.sleep(1.0)  # let the node accept them all; what it holds is measured below
        held = _still_open(socks)
        assert held <= LIMIT, f"{held} silent TLS sockets held with max_connections = {LIMIT}"
        assert held >= LIMIT // 2, f"only {held} held: the listener refuses too much"
        grown = farm.rss_mib("a") - before
        assert grown < 20, f"RSS grew {grown:.1f} MiB"
        # the silent ones are closed after head_timeout (the TLS handshake deadline)
        time.sleep(3.5)
        assert _still_open(socks) == 0
    finally:
        for s in socks:
            s.close()
    # a real client is served afterwards
    out = subprocess.run(
        ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"https://{HOST}:{port}/"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert out.stdout == "200", out
