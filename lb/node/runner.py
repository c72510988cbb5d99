"""Run one node until SIGTERM/SIGINT: the process-level edge of the I/O layer.

Starts the uvloop event loop, the node, and the signal handlers: SIGTERM
drains (no new sessions; existing flows run on until they end or
`limits.drain_timeout`) and then exits 0, SIGINT stops at once, SIGUSR1 logs
the pending and forward tables, SIGHUP re-reads the farm file (nodes that
joined or left apply live). With several workers it starts the
supervisor instead (lb.node.workers). No protocol logic.
"""

from __future__ import annotations

import asyncio
import resource
import signal
import socket

import structlog
import uvloop

from lb.config import FarmConfig, NodeConfig, load_config
from lb.errors import ConfigError
from lb.logs import configure_logging
from lb.node.node import Node
from lb.node.workers import EXIT_START_FAILED, Supervisor

log = structlog.get_logger("lb.runner")


async def serve(
    config: FarmConfig,
    me: NodeConfig,
    worker: int | None = None,
    bus_fd: int | None = None,
    drained: bool = False,
) -> int:
    """Run the node in the current loop until a stop signal; the process exit code.
    `drained`: start drained (a worker restarted while an operator's drain is in force).
    A start that fails returns 2 (configuration) or 1 (an address); a worker's returns
    EXIT_START_FAILED either way, which its supervisor does not restart on a first start."""
    loop = asyncio.get_running_loop()
    try:
        node = Node(config, me, worker=worker, bus_fd=bus_fd, start_drained=drained)
    except ConfigError as exc:
        for key, message in exc.errors:
            log.error("node_start_failed", node=me.name, key=key, error=message)
        return 2 if worker is None else EXIT_START_FAILED
    try:
        await node.start()
    except OSError as exc:
        log.error("node_start_failed", node=me.name, error=str(exc))
        await node.stop()
        return 1 if worker is None else EXIT_START_FAILED
    stop = node.exit_requested  # also set when a worker loses its supervisor
    drain = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, drain.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, node.dump_tables)
    loop.add_signal_handler(signal.SIGHUP, reload, node, config.source)
    stop_wait = loop.create_task(stop.wait())
    drain_wait = loop.create_task(drain.wait())
    await asyncio.wait({stop_wait, drain_wait}, return_when=asyncio.FIRST_COMPLETED)
    if drain.is_set():
        # SIGTERM: drain (no new sessions, existing flows go on), then exit; SIGINT cuts it short
        draining = loop.create_task(node.drain_and_stop())
        await asyncio.wait({draining, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not draining.done():
            draining.cancel()
            await node.stop()
    else:
        await node.stop()
    for task in (stop_wait, drain_wait):
        task.cancel()
    return 0


def reload(node: Node, path: str) -> None:
    """SIGHUP: re-read the farm file; a bad file is reported by key and changes nothing."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        for key, message in exc.errors:
            log.error("reload_config_error", node=node.name, key=key, error=message)
        return
    node.reload(config)


def already_served(me: NodeConfig, timeout: float = 0.5) -> str | None:
    """The forward address if something already accepts connections on it, else None."""
    host = me.forward.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    try:
        with socket.create_connection((host, me.forward.port), timeout=timeout):
            return f"{host}:{me.forward.port}"
    except OSError:
        return None


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open descriptors to the hard limit; return the new soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("descriptor_limit_unchanged", soft=soft, hard=hard, error=str(exc))
    return soft


def run_node(
    config: FarmConfig,
    me: NodeConfig,
    worker: int | None = None,
    bus_fd: int | None = None,
    drained: bool = False,
) -> int:
    """`lb run`: configure logging, run the node on uvloop, return the exit code.

    With `workers > 1` (and no `worker` given) this process supervises the
    workers instead (lb.node.workers); each worker runs this same function.
    """
    configure_logging(config.log_level, config.log_format)
    if worker is None:
        other = already_served(me)
        if other is not None:
            log.error(
                "node_already_running",
                node=me.name,
                address=other,
                reason="a process already accepts on this node's forward address; with "
                "SO_REUSEPORT a second one would silently share its traffic",
            )
            return 2
    raise_descriptor_limit()
    if worker is None and me.workers > 1:
        return uvloop.run(Supervisor(config, me).run())
    return uvloop.run(serve(config, me, worker, bus_fd, drained))
