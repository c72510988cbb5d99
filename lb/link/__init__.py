"""The link protocol as a sans-IO state machine (layer 5).

`LinkConnection` owns one link end: the HELLO/AUTH handshake, the pending and
forward tables, per-flow credit windows, half-close and every dispatch rule of
docs/protocol.md. Bytes go in through `receive_data(data, now)` and come out of
`data_to_send()`; what happened comes out as typed events (lb.link.events).

It must not import asyncio, touch sockets, read the clock or draw random
numbers: time (`now`) and the nonce are passed in. lb.node drives it.
"""

from lb.link.connection import LinkConnection, Role
from lb.link.events import (
    Authenticated,
    ControlFrame,
    Count,
    Event,
    FlowData,
    FlowEnded,
    FlowEof,
    FlowOpened,
    FlowReset,
    FlowVerified,
    FlowWritable,
    PeerHeard,
)
from lb.link.handshake import auth_mac, link_key

__all__ = [
    "Authenticated",
    "ControlFrame",
    "Count",
    "Event",
    "FlowData",
    "FlowEnded",
    "FlowEof",
    "FlowOpened",
    "FlowReset",
    "FlowVerified",
    "FlowWritable",
    "LinkConnection",
    "PeerHeard",
    "Role",
    "auth_mac",
    "link_key",
]
