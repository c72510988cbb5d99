"""json logs of a real node stay one JSON object per line, asyncio's own warnings included.

A tls-terminate client that ends its TLS session (close_notify) before its
request head is complete makes the TLS layer call the client protocol's
eof_received; lb keeps the socket to answer, so asyncio warns "returning true
from eof_received() has no effect when using ssl" on its stdlib logger. That
warning must arrive as a JSON record (logger "asyncio"), like every other line.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
from collections.abc import Callable

import pytest

from tests.support.farm import DEFAULT_SERVICES, Farm, make_cert
from tests.support.wait import eventually

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
]

EOF_WARNING = "returning true from eof_received() has no effect when using ssl"


def _half_request_then_close_notify(addr: tuple[str, int]) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(addr, timeout=5) as raw:
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(b"GET / HTTP/1.1\r\nHost: lb.test\r\n")  # no blank line: head incomplete
        # close_notify; lb then answers 400 and closes (its close may cross ours: the
        # warning is what this test waits for)
        with contextlib.suppress(OSError, ssl.SSLError):
            tls.unwrap()


def test_asyncio_warning_is_a_json_line(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    workdir = tmp_path_factory.mktemp("certs")
    cert, key = make_cert(workdir)
    farm = make_farm(
        nodes=("a",),
        services={
            "web": DEFAULT_SERVICES["web"],
            "secure": ("tls-terminate", '[ { kind = "home-cookie" } ]'),
        },
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
    )
    for _ in range(3):
        _half_request_then_close_notify(farm.addr("a", "secure"))

    def warned() -> bool:
        return any(r.get("event") == EOF_WARNING for r in farm.events("a"))

    eventually(warned, timeout=10, what="asyncio's eof_received warning in the node log")
    lines = [line for line in farm.logs("a").splitlines() if line.strip()]
    bad = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(rec, dict):
            bad.append(line)
    assert not bad, f"{len(bad)} of {len(lines)} lines are not JSON objects: {bad[:5]}"
    rec = next(r for r in farm.events("a") if r.get("event") == EOF_WARNING)
    assert (rec["logger"], rec["level"]) == ("asyncio", "warning")
