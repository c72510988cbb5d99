"""One source address with ~300 silent sockets does not deny a tls-terminate listener to others.

Handshakes are capped at 256 per process and 32 per source (an IPv4 address, an
IPv6 /64); each slot lasts head_timeout, and the source's other sockets wait for
one of its slots. A stranger who keeps 300 silent sockets open from one address
(and reopens each the moment it is closed) holds 32 handshake slots and queues
the rest behind them: real clients from other addresses are served.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable

import pytest

from tests.support.farm import DEFAULT_SERVICES, HOST, TLS_TERMINATE_SERVICE, Farm, make_cert

pytestmark = pytest.mark.integration

SILENT = 300  # from one address, 127.0.0.1


async def _hold(port: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.01)
            continue
        try:
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(10):
                    while await reader.read(4096):
                        pass
        finally:
            writer.close()


async def _client_served(port: int, source: str = "127.0.0.2") -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        async with asyncio.timeout(3):
            reader, writer = await asyncio.open_connection(
                HOST, port, ssl=ctx, local_addr=(source, 0)
            )
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status = await reader.readline()
            writer.close()
            return status.startswith(b"HTTP/1.1 200")
    except (OSError, TimeoutError, ssl.SSLError):
        return False


async def test_one_source_with_silent_sockets_denies_tls_clients(
    make_farm: Callable[..., Farm], tmp_path_factory: pytest.TempPathFactory
) -> None:
    cert, key = make_cert(tmp_path_factory.mktemp("tlsdos"))
    farm = make_farm(
        nodes=("a", "b"),
        services={
            "web": DEFAULT_SERVICES["web"],
            "secure": TLS_TERMINATE_SERVICE,
        },
        service_extra={"secure": (f'tls = {{ cert = "{cert}", key = "{key}" }}',)},
    )
    port = farm.ports["a"].listen["secure"]
    assert await _client_served(port), "no TLS client served even before the flood"
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_hold(port, stop)) for _ in range(SILENT)]
    try:
        await asyncio.sleep(1.0)
        served = [await _client_served(port) for _ in range(8)]
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(served) >= 6, f"real TLS clients served under a one-source flood: {served}"
