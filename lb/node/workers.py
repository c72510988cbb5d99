"""Workers: N processes of one node sharing its ports, and the bus between them.

With `workers = N > 1` the `lb run` process becomes a small supervisor: it
starts N worker processes (`lb run ... --worker I --bus-fd FD`), each a full
node instance with SO_REUSEPORT listeners on the node's client and forward
addresses, and restarts a worker that dies (one that cannot start at all, on
the node's first start, stops the node instead: exit 1). Workers share what must be shared
by message, never by locks: the supervisor relays every frame one worker writes
on its bus socket to all the others.

The bus speaks the link frame codec (docs/protocol.md) on a socketpair that
only the node's own processes hold, so it needs no HELLO/AUTH:
- DIRECTORY_UPDATE (0x40): entries a worker learned or merged as new;
- PING (0x07) with token = worker index and load = that worker's load: a
  node's load is the sum over its workers;
- the bus's own frames (lb.wire.bus): RELAYED membership frames, APP_HEALTH,
  METRICS, ADMIN, OWN_STATE (worker 0 speaks for the node in membership), and
  PLACE / PLACED (worker 0 says where a client source's new sessions go).

Signals: SIGTERM (drain), SIGINT, SIGUSR1 and SIGHUP are passed to every worker; the
supervisor exits when they all have, with 0 when they all exited 0. The supervisor
remembers the last ADMIN it relayed: a worker restarted while an operator's drain
is in force starts drained (`--drained`), so a crash does not undo the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys

import structlog

from lb.config import FarmConfig, NodeConfig
from lb.errors import FrameError
from lb.wire import frames as fr
from lb.wire.bus import ADMIN, ADMIN_DRAIN, ADMIN_UNDRAIN, decode_admin, encode_admin

log = structlog.get_logger("lb.workers")

RESTART_DELAY = 1.0
# a worker's exit code when its node could not start (bad certificates, an address
# taken or not resolvable): on a first start the supervisor stops the node instead
# of restarting the worker, which would fail the same way each second forever
EXIT_START_FAILED = 3


class BusRelay(asyncio.Protocol):
    """The supervisor's end of one worker's bus: every frame goes to the other workers."""

    def __init__(self, supervisor: Supervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.transport: asyncio.Transport | None = None
        self.decoder = fr.FrameDecoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
            for frame in frames:
                if frame.type == ADMIN:  # an operator's drain or undrain, for restarts
                    self.supervisor.drained = decode_admin(frame.payload) == ADMIN_DRAIN
        except FrameError as exc:
            log.error("bus_protocol_error", worker=self.index, error=str(exc))
            if self.transport is not None:
                self.transport.close()
            return
        if frames:
            payload = b"".join(fr.encode_frame(f) for f in frames)
            self.supervisor.relay(self.index, payload)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class Supervisor:
    """Starts, relays for and restarts the worker processes of one node."""

    def __init__(self, config: FarmConfig, me: NodeConfig) -> None:
        self.config = config
        self.me = me
        self.count = me.workers
        self.relays: dict[int, BusRelay] = {}
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self.stopping = False
        self.codes: dict[int, int] = {}
        # an operator's drain is in force (the admin API's last ADMIN on the bus was a
        # drain): a worker restarted now starts drained, as its siblings are
        self.drained = False

    def relay(self, sender: int, payload: bytes) -> None:
        for index, relay in self.relays.items():
            if index != sender:
                relay.write(payload)

    async def start_worker(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        drained = self.drained
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lb",
                "run",
                "--config",
                self.config.source,
                "--node",
                self.me.name,
                "--worker",
                str(index),
                "--bus-fd",
                str(theirs.fileno()),
                *(["--drained"] if drained else []),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        _, relay = await loop.create_unix_connection(lambda: BusRelay(self, index), sock=ours)
        self.relays[index] = relay
        self.procs[index] = proc
        if self.drained != drained:
            # a drain or undrain was relayed while the worker was being spawned: it was
            # not among the relays yet, so it hears the operator's last word now
            relay.write(encode_admin(ADMIN_DRAIN if self.drained else ADMIN_UNDRAIN))
        log.info("worker_started", node=self.me.name, worker=index, pid=proc.pid)

    async def watch(self, index: int) -> None:
        """Wait for worker `index`; restart it unless the node is stopping.

        A worker that could not start at all (EXIT_START_FAILED on its first start)
        stops the node: the reason (node_start_failed, logged by the worker) holds for
        every restart. A restarted worker that cannot start is tried again, as its
        siblings still serve."""
        first = True
        while True:
            proc = self.procs[index]
            code = await proc.wait()
            relay = self.relays.pop(index, None)
            if relay is not None and relay.transport is not None:
                relay.transport.close()
            if self.stopping:
                self.codes[index] = code
                return
            if first and code == EXIT_START_FAILED:
                log.error(
                    "worker_start_failed",
                    node=self.me.name,
                    worker=index,
                    reason="the worker could not start (node_start_failed says why); "
                    "the node stops",
                )
                self.codes[index] = code
                self.signal_all(signal.SIGINT)
                return
            first = False
            log.error("worker_died", node=self.me.name, worker=index, code=code)
            await asyncio.sleep(RESTART_DELAY)
            if self.stopping:
                self.codes[index] = 0
                return
            await self.start_worker(index)

    def signal_all(self, sig: int) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            self.stopping = True
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
            loop.add_signal_handler(sig, self.signal_all, sig)
        for index in range(self.count):
            await self.start_worker(index)
        log.info("node_supervisor", node=self.me.name, workers=self.count, pid=os.getpid())
        await asyncio.gather(*(self.watch(i) for i in range(self.count)))
        return 0 if all(code == 0 for code in self.codes.values()) else 1
