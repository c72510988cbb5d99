"""lb.node.node.Node: an undrain listens again, and a drain that comes while it is
opening its listeners closes them for good.

A real node in this process, on uvloop, with real sockets: node a of a three-node
farm whose peers never come (it starts after connect_timeout). Its service listens
on two addresses, so the undrain's open awaits between them, and a drain can come
in that moment (an admin POST /drain, an ADMIN frame from worker 0, a SIGTERM).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import uvloop

from lb.config import parse_config, select_node
from lb.node.node import Node
from tests.support.config_data import base


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refused(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        try:
            s.connect((host, port))
        except ConnectionRefusedError:
            return True
        return False


def node_config() -> Any:
    data = base()
    data["limits"] = {"connect_timeout": 0.1}
    for node in data["nodes"]:
        node["forward"] = f"127.0.0.1:{free_port()}"
        port = free_port()
        node["listen"]["web"] = [f"127.0.0.1:{port}", f"127.0.0.2:{port}"]
        node["apps"]["web"] = f"127.0.0.1:{free_port()}"
    cfg = parse_config(data, base_dir=Path("."))
    return cfg, select_node(cfg, "a")


def test_a_drain_while_an_undrain_opens_its_listeners_leaves_none_open() -> None:
    cfg, me = node_config()
    addresses = [(a.host, a.port) for a in me.listen["web"]]

    async def run() -> None:
        node = Node(cfg, me)
        await node.start()
        try:
            assert not any(refused(*a) for a in addresses)
            node.start_draining()
            assert all(refused(*a) for a in addresses)
            node.stop_draining()
            # the undrain's task runs: it opens the first address, and awaits the next
            for _ in range(3):
                await asyncio.sleep(0)
            assert node.reopening is not None and not node.reopening.done()
            node.start_draining()  # a drain in the middle of the undrain's open
            for _ in range(20):
                await asyncio.sleep(0.01)
            assert node.draining
            assert all(refused(*a) for a in addresses), "a drained node listens"
        finally:
            await node.stop()

    uvloop.run(run())


def test_a_drain_while_the_node_starts_its_listeners_leaves_none_open() -> None:
    """The same at start: a drain (an ADMIN frame from worker 0, a SIGTERM) that comes while
    the node opens its listeners the first time."""
    cfg, me = node_config()
    addresses = [(a.host, a.port) for a in me.listen["web"]]

    async def run() -> None:
        node = Node(cfg, me)
        start = asyncio.ensure_future(node.start())
        try:
            while node.listeners is None:
                await asyncio.sleep(0)  # one pass of the loop at a time
            assert not start.done()  # in the middle of the listeners' open
            node.start_draining()
            await start
            assert node.draining
            assert all(refused(*a) for a in addresses), "a drained node listens"
        finally:
            await node.stop()

    uvloop.run(run())
