"""A worker's end of the bus to its sibling workers (see lb.node.workers).

Frames are dispatched by one table per type: DIRECTORY_UPDATE (entries a
sibling learned or merged), PING (a sibling's load), RELAYED (a membership
frame a sibling heard from a peer), and the others of lb.wire.bus (APP_HEALTH,
METRICS, ADMIN, OWN_STATE). A bad frame is logged and the rest of the
bus keeps working. When the supervisor goes away the worker is asked to exit.

It must not interpret the frames itself: handlers do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import cast

import structlog

from lb.errors import FrameError
from lb.wire import frames as fr

log = structlog.get_logger("lb.bus")

Handler = Callable[[fr.Frame], None]


class WorkerBus(asyncio.Protocol):
    """The socket to the supervisor, which relays every frame to the other workers."""

    def __init__(self, handlers: Mapping[int, Handler], on_lost: Callable[[], None]) -> None:
        self.handlers = handlers
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.decoder = fr.FrameDecoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            log.error("bus_protocol_error", error=str(exc))
            self.decoder = fr.FrameDecoder()
            return
        for frame in frames:
            handler = self.handlers.get(frame.type)
            if handler is None:
                continue
            try:
                handler(frame)
            except FrameError as exc:
                log.error("bus_bad_frame", type=hex(frame.type), error=str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def write_frames(self, frames: list[bytes]) -> None:
        if frames and self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(frames)


__all__ = ["WorkerBus"]
