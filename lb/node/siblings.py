"""This worker's side of its node's worker bus: what it tells its siblings, what it takes from them.

With `workers = N` every worker holds one end of the bus (lb.node.workers
relays each frame to the others). This keeps the connection and the part
that is the bus's own: the siblings' loads (PING: a node's load is the sum
over its workers), the heartbeat this worker writes every `ping_interval`
(its PING, and worker 0's OWN_STATE: the node's declaration and incarnation,
lb.cluster.membership), the OWN_STATE a sibling adopts, and APP_HEALTH (worker
0 checks the applications, its siblings follow). The other frames
(DIRECTORY_UPDATE, RELAYED, METRICS, ADMIN) go to the handlers the node gives.

It must not decide anything: membership decides, the node's drivers act.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping

from lb.cluster.membership import Membership, NodeState
from lb.node.bus import Handler, WorkerBus
from lb.wire import frames as fr
from lb.wire.bus import (
    APP_HEALTH,
    OWN_STATE,
    decode_app_health,
    decode_own_state,
    encode_app_health,
    encode_own_state,
)


class Siblings:
    """The bus to the node's other workers (no bus at all when the node runs one process)."""

    def __init__(self, name: str, worker: int | None, membership: Membership) -> None:
        self.name = name
        self.worker = worker  # index among the node's workers; None when it runs alone
        self.membership = membership
        self.bus: WorkerBus | None = None
        self.loads: dict[int, int] = {}  # the other workers' loads, by index
        self.adopted: Callable[[], None] = lambda: None  # after OWN_STATE was adopted
        self.app_health: Callable[[bool], None] = lambda _healthy: None  # APP_HEALTH came

    async def connect(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        handlers: Mapping[int, Handler],
        adopted: Callable[[], None],
        app_health: Callable[[bool], None],
        on_lost: Callable[[], None],
    ) -> None:
        """Take the bus socket `fd`: `adopted()` runs after an OWN_STATE changed membership,
        `app_health(healthy)` when worker 0 says the applications went down or up."""
        self.adopted = adopted
        self.app_health = app_health
        table = {
            **handlers,
            int(fr.FrameType.PING): self._sibling_load,
            OWN_STATE: self._speaker_own_state,
            APP_HEALTH: lambda frame: self.app_health(decode_app_health(frame.payload)),
        }
        sock = socket.socket(fileno=fd)
        _, self.bus = await loop.create_unix_connection(
            lambda: WorkerBus(table, on_lost), sock=sock
        )

    def write(self, data: bytes) -> None:
        if self.bus is not None:
            self.bus.write(data)

    def write_frames(self, frames: list[bytes]) -> None:
        if self.bus is not None:
            self.bus.write_frames(frames)

    def tell_app_health(self, healthy: bool) -> None:
        """Worker 0 saw the node's applications go down or come back up."""
        self.write(encode_app_health(healthy))

    def load(self) -> int:
        """What the sibling workers reported of their loads, summed."""
        return sum(self.loads.values())

    def heartbeat(self, own_load: int) -> None:
        """Every ping_interval: this worker's load, and worker 0's word on the node's state
        (again and again: a restarted sibling learns it within a ping)."""
        if self.bus is None or self.worker is None:
            return
        self.bus.write(fr.encode_ping(self.worker, own_load))
        if self.membership.speaker:
            own = self.membership.own_state()
            self.bus.write(encode_own_state(own.state, own.incarnation))

    def _sibling_load(self, frame: fr.Frame) -> None:
        worker, load = fr.parse_ping(frame.payload)
        if worker != self.worker:
            self.loads[worker] = load

    def _speaker_own_state(self, frame: fr.Frame) -> None:
        """Worker 0 told this sibling what the node declares: say the same from now on."""
        state, incarnation = decode_own_state(frame.payload)
        self.membership.adopt_own_state(NodeState(self.name, state, incarnation))
        self.adopted()


__all__ = ["Siblings"]
