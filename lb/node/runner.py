"""Run one node until SIGTERM/SIGINT: the process-level edge of the I/O layer.

Starts the uvloop event loop, the node, and the signal handlers (SIGTERM and
SIGINT stop, SIGUSR1 logs the pending and forward tables). No protocol logic.
"""

from __future__ import annotations

import asyncio
import signal

import structlog
import uvloop

from lb.config import FarmConfig, NodeConfig
from lb.logs import configure_logging
from lb.node.node import Node

log = structlog.get_logger("lb.runner")


async def serve(config: FarmConfig, me: NodeConfig) -> int:
    """Run the node in the current loop until a stop signal; the process exit code."""
    loop = asyncio.get_running_loop()
    node = Node(config, me)
    try:
        await node.start()
    except OSError as exc:
        log.error("node_start_failed", node=me.name, error=str(exc))
        await node.stop()
        return 1
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, node.dump_tables)
    await stop.wait()
    await node.stop()
    return 0


def run_node(config: FarmConfig, me: NodeConfig) -> int:
    """`lb run`: configure logging, run the node on uvloop, return the exit code."""
    configure_logging(config.log_level, config.log_format)
    return uvloop.run(serve(config, me))
