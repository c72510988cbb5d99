"""Microbenchmark of one keep-alive HTTP exchange through a node's Python code.

A script, not a test: ``.venv/bin/python bench/micro_exchange.py [--requests N]``.
Builds a one-node farm in this process (no listeners, no sockets), one
`HttpClient` with a stand-in client transport and one pooled `LocalUpstream`
with a stand-in application transport, then drives N exchanges: the request
(carrying the node's home cookie) goes in as one read, the application's
response (an nginx-like head and a 7-byte body) as one read. Prints the CPU
microseconds per exchange (process time, the best of several rounds): lb's own
per-request Python work, without the kernel and event-loop costs that
bench/run.py measures as well. For comparing versions of lb on one machine;
`--profile FILE` writes cProfile output of one round.

`--instructions` counts instead of timing: it runs this script twice under
valgrind's callgrind (N and 3N exchanges) and prints the machine instructions
per exchange, the difference over 2N. The count does not depend on what else the
machine is doing, so two versions can be compared on a busy machine to a
fraction of a percent (timings here spread by 10-20 %). Needs valgrind; takes
about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from callgrind_count import per_call

from lb.config import load_config, select_node
from lb.node.http_client import HttpClient
from lb.node.node import Node
from lb.node.upstream import LocalUpstream

FARM = """
[farm]
name = "micro"
secret = "0123456789abcdef0123456789abcdef0123456789"
link_security = "plaintext"
cookie_name = "lbhome"

[log]
level = "warning"
access_log = "off"

[[services]]
name = "web"
protocol = "http"
extractors = [ { kind = "home-cookie" } ]

[[nodes]]
name = "a"
forward = "127.0.0.1:1"
listen = { web = "127.0.0.1:2" }
apps = { web = "127.0.0.1:3" }
"""
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Mon, 30 Nov 2026 11:39:13 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\nnode=a\n"
)


class StandInTransport:
    """What HttpClient and LocalUpstream call on a transport; keeps the last write."""

    def __init__(self, peer: tuple[str, int]) -> None:
        self.peer = peer
        self.last = b""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("127.0.0.1", 2)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.last = data

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...

    def is_closing(self) -> bool:
        return False

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...


async def measure(requests: int, rounds: int, profile: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "farm.toml"
        path.write_text(FARM)
        config = load_config(path)
    node = Node(config, select_node(config, "a"))
    entry = node.entry
    client = HttpClient(entry, node.services["web"])
    to_client = StandInTransport(("192.0.2.10", 40000))
    client.connection_made(to_client)  # type: ignore[arg-type]
    upstream = LocalUpstream(entry.pool, ("a", "web"), "a")
    to_app = StandInTransport(("127.0.0.1", 3))
    upstream.connection_made(to_app)  # type: ignore[arg-type]
    entry.pool.put(upstream)
    cookie = node.router.keyring.sign("a", int(time.time()) + 3600)
    request = f"GET / HTTP/1.1\r\nHost: shop\r\nCookie: lbhome={cookie}\r\n\r\n".encode()

    def exchange() -> None:
        client.data_received(request)
        upstream.data_received(RESPONSE)

    exchange()
    if not (to_app.last.startswith(b"GET / ") and to_client.last == RESPONSE):
        raise SystemExit(f"the exchange did not go through: {to_app.last!r} {to_client.last!r}")
    if profile:
        with cProfile.Profile() as prof:
            for _ in range(requests):
                exchange()
        prof.dump_stats(profile)
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(requests):
            exchange()
        best = min(best, (time.process_time() - start) / requests)
    return best * 1e6


def instructions_per_exchange(requests: int) -> float:
    """Machine instructions per exchange, counted by callgrind (see the module doc)."""
    return per_call(lambda n: [__file__, "--requests", str(n), "--rounds", "1"], requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", metavar="FILE")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions under callgrind"
    )
    args = parser.parse_args()
    if args.instructions:
        count = instructions_per_exchange(min(args.requests, 1000))
        print(f"{count:,.0f} instructions per keep-alive exchange (lb's Python, in process)")
        return
    uvloop.install()
    us = asyncio.run(measure(args.requests, args.rounds, args.profile))
    print(f"{us:.1f} CPU-µs per keep-alive exchange (lb's Python, in process)")


if __name__ == "__main__":
    main()
