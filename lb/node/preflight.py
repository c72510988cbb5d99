"""What `lb check-config --node NAME` checks beyond the farm file: the node's own host.

A farm file can be valid and still not start on the machine it is meant for: a
host name of the node's own addresses does not resolve there, or its link
certificates exist but the user lb runs as cannot read them. Both showed only
at `lb run` (node_start_failed). `node_problems` looks for them the way a start
would (the resolver, the certificate files), as the user that runs the check,
and lists them by key like configuration errors.

Only the node's own addresses are resolved (forward, listen, apps, admin): a
peer's name may resolve only on the farm's network (a container network), and a
link to a peer is retried anyway. This module binds no socket and opens no
connection; it must not start anything.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from lb.config import FarmConfig, NodeConfig
from lb.config.model import Address
from lb.errors import ConfigError

__all__ = ["node_problems"]

Resolve = Callable[[str, int], object]


def _resolve(host: str, port: int) -> object:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def _addresses(index: int, node: NodeConfig) -> list[tuple[str, Address]]:
    """The node's own addresses, each with its key in the farm file."""
    at = f"nodes[{index}]"
    found = [(f"{at}.forward", node.forward)]
    for service, addresses in node.listen.items():
        if len(addresses) == 1:
            found.append((f"{at}.listen.{service}", addresses[0]))
        else:
            found += [(f"{at}.listen.{service}[{i}]", a) for i, a in enumerate(addresses)]
    found += [(f"{at}.apps.{service}", address) for service, address in node.apps.items()]
    if node.admin is not None:
        found.append((f"{at}.admin", node.admin))
    return found


def node_problems(
    config: FarmConfig, node: NodeConfig, resolve: Resolve = _resolve
) -> list[tuple[str, str]]:
    """(key, message) for each of the node's addresses whose host does not resolve here,
    and for link certificates that cannot be loaded; empty when the node can start."""
    index = list(config.nodes).index(node.name)
    problems: list[tuple[str, str]] = []
    for key, address in _addresses(index, node):
        try:
            resolve(address.host, address.port)
        except (socket.gaierror, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
            problems.append((key, f"host {address.host!r} does not resolve here: {reason}"))
    if config.link_security == "mtls" and config.link_certs is not None:
        from lb.node.linktls import LinkTls

        try:
            LinkTls(config.link_certs, node.name)
        except ConfigError as exc:
            problems += exc.errors
    return problems
