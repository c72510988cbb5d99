"""Which addresses the nodes of a farm can bind and reach together.

A rule that spans every [[nodes]] table of the farm file: within one node no
two binds may overlap (one address however spelled, a wildcard and an address
of its family, a host name and anything), advertised link addresses are
distinct across nodes, two nodes may not bind one loopback or link address,
and an application may not listen on one of lb's own addresses. lb.config.schema
collects the addresses (`Bound`) and reports through its `Walker`.

Pure: never touches sockets, never resolves names.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lb.config.model import Address, is_loopback
from lb.config.spec import Walker

__all__ = ["Bound", "check_binds", "listen_binds", "overlap"]


@dataclass(frozen=True, slots=True)
class Bound:
    """An address some node binds (or advertises), with its key and node."""

    addr: Address
    key: str
    node: int
    name: str | None

    @property
    def forward(self) -> bool:
        return self.key.endswith(".forward")

    def owner(self) -> str:
        """The key, after the node's name when it has a valid one."""
        return self.key if self.name is None else f"node {self.name!r} ({self.key})"


def listen_binds(
    listen: Mapping[str, tuple[Address, ...]],
    raw: Mapping[str, Any],
    key: str,
    node: int,
    name: str | None,
) -> list[Bound]:
    """Every listen address of one node, keyed as the file wrote it: `key.svc` for a
    string, `key.svc[j]` for an array's entry (`raw` is the table as read)."""
    binds = []
    for svc, addresses in listen.items():
        listed = isinstance(raw[svc], list)
        for j, addr in enumerate(addresses):
            binds.append(Bound(addr, f"{key}.{svc}[{j}]" if listed else f"{key}.{svc}", node, name))
    return binds


def check_binds(
    walker: Walker, binds: list[Bound], apps: list[Bound], advertised: list[Bound]
) -> bool:
    """Refuse addresses that cannot all be bound or reached, and apps that point back at lb.

    Within one node every bind must be distinct (a wildcard host overlaps
    every host of its family on the same port: IPv6 sockets are IPv6-only, so
    0.0.0.0:P and [::]:P are two binds). The advertised link addresses (`advertise`,
    else `forward`) must be distinct across nodes: peers connect to them. Any
    address two nodes bind is refused when it is a loopback address or a link
    address: those nodes would run on one machine. Nodes on separate servers
    may share a non-loopback listen or forward address (0.0.0.0:80, an anycast
    address, the same 0.0.0.0:7100 in every container when each advertises
    its own).
    """
    ok = True
    links = {b.addr for b in advertised}
    seen: list[Bound] = []
    for b in binds:
        for other in seen:
            if other.addr.port != b.addr.port:
                continue
            if other.node == b.node:
                clash = overlap(other.addr.host, b.addr.host)
            else:
                clash = other.addr == b.addr and (b.addr in links or is_loopback(b.addr.host))
            if clash:
                walker.error(b.key, f"{b.addr} is already bound by {other.owner()}")
                ok = False
                break
        seen.append(b)
    for i, b in enumerate(advertised):
        if b.forward:
            continue  # a repeated forward is reported above, as a bind
        taken = [*advertised[:i], *(x for x in binds if x.forward and x.node != b.node)]
        for other in taken:
            if other.addr == b.addr:
                what = "the link address of" if other in advertised else "bound by"
                walker.error(b.key, f"{b.addr} is already {what} {other.owner()}")
                ok = False
                break
    for b in apps:
        for other in [*binds, *advertised]:
            if other.addr != b.addr:
                continue
            if other.node == b.node or is_loopback(b.addr.host) or b.addr in links:
                how = "advertised" if other.key.endswith(".advertise") else "bound"
                walker.error(
                    b.key,
                    f"{b.addr} is lb's own address, {how} by {other.owner()}; "
                    "the application must listen on an address of its own",
                )
                ok = False
                break
    return ok


def overlap(a: str, b: str) -> bool:
    """Hosts that one node cannot both bind on one port: one address (however spelled),
    or a wildcard and an address of its family. lb's IPv6 sockets are IPv6-only
    (IPV6_V6ONLY, lb.node.sockets and asyncio's servers), so 0.0.0.0 and :: do not
    overlap. A host name may resolve to any address: it overlaps every other host."""
    if a == b:
        return True
    try:
        ia, ib = ipaddress.ip_address(a), ipaddress.ip_address(b)
    except ValueError:
        return True
    if ia == ib:
        return True
    return ia.version == ib.version and (ia.is_unspecified or ib.is_unspecified)
