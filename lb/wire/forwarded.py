"""The client's address in a forwarded HTTP request head: X-Forwarded-*, Forwarded.

`ForwardedHeaders` is made once per client connection (client address, scheme,
whether the immediate client is a trusted proxy) and rewrites every request head
of it with one bytes join: the headers a client may forge are removed (unless
it is trusted, when its chain is extended) and lb's own are appended at the end
of the head. `TrustedProxies` answers whether an address is in a list of CIDRs
(`trusted_proxies`, `accept_proxy_from`).

Pure: no sockets, no asyncio, no clock. The head must be one `RequestHead`
(lb.wire.http) already validated from the same bytes; nothing after the head is
looked at or returned.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from lb.wire.http import FORWARDING_HEADERS, REWRITTEN_HEADERS, VOUCHED_HEADERS, RequestHead
from lb.wire.http1 import span_joined

__all__ = [
    "FORWARDING_HEADERS",
    "REWRITTEN_HEADERS",
    "VOUCHED_HEADERS",
    "ForwardedHeaders",
    "TrustedProxies",
    "forwarded_headers",
    "forwarded_node",
]

_Buffer = bytes | bytearray


_KIND_XFF, _KIND_XFP, _KIND_FWD, _KIND_VOUCHED = range(4)
_KIND = {
    b"x-forwarded-for": _KIND_XFF,
    b"x-forwarded-proto": _KIND_XFP,
    b"forwarded": _KIND_FWD,
    **{name.encode("ascii"): _KIND_VOUCHED for name in VOUCHED_HEADERS},
}
_FIRST = frozenset(b"".join(name[:1] + name[:1].upper() for name in _KIND))  # first bytes
_PROTOS = ("http", "https")


def _canonical_ip(client_ip: str) -> str:
    """The canonical text of an IP (IPv4-mapped IPv6 as IPv4, no scope); ValueError if none."""
    ip = ipaddress.ip_address(client_ip.partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def forwarded_node(client_ip: str) -> str:
    """The RFC 7239 node of an IP: ``192.0.2.1`` or ``"[2001:db8::1]"`` (quoted, bracketed)."""
    ip = _canonical_ip(client_ip)
    return f'"[{ip}]"' if ":" in ip else ip


class ForwardedHeaders:
    """Rewrites the request heads of one client connection.

    ``trusted`` says the immediate client is a proxy of ``trusted_proxies``. For
    an untrusted client every header of FORWARDING_HEADERS it sent is removed
    (X-Forwarded-For, X-Forwarded-Proto, Forwarded, and the VOUCHED_HEADERS:
    X-Real-IP, X-Forwarded-Host, True-Client-IP, ...), then lb appends::

        X-Forwarded-For: <client>
        X-Forwarded-Proto: <proto>
        Forwarded: for=<node>;proto=<proto>

    For a trusted one its X-Forwarded-For and Forwarded values are kept as the
    start of one chain each (several lines joined with ", ", in order) that lb's
    element ends; its X-Forwarded-Proto (the original scheme, as the proxy saw
    it) and the VOUCHED_HEADERS stay as sent, and X-Forwarded-Proto is added only
    when it sent none. Their underscore spellings (``X_Forwarded_For``: one header to
    a CGI-style server) are removed from every client. ValueError if
    ``client_ip`` is not an IP or ``proto`` is not http or https.
    """

    __slots__ = ("_fwd", "_proto_line", "_tail", "_xff", "trusted")

    def __init__(self, client_ip: str, proto: str, trusted: bool) -> None:
        if proto not in _PROTOS:
            raise ValueError(f"proto must be http or https, not {proto!r}")
        ip = _canonical_ip(client_ip)
        node = f'"[{ip}]"' if ":" in ip else ip
        self.trusted = trusted
        self._xff = ip.encode("ascii")
        self._fwd = f"for={node};proto={proto}".encode("ascii")
        self._proto_line = f"X-Forwarded-Proto: {proto}\r\n".encode("ascii")
        # the common case: appended to a head without any FORWARDING_HEADERS
        self._tail = (
            b"X-Forwarded-For: "
            + self._xff
            + b"\r\n"
            + self._proto_line
            + b"Forwarded: "
            + self._fwd
            + b"\r\n\r\n"
        )

    def rewrite(self, head: RequestHead, raw: _Buffer, start: int = 0) -> bytes:
        """The head ``raw[start : start + head.length]`` as it goes to the application.

        The result ends with the head's CRLFCRLF; bytes after the head (a body,
        the next request) are the caller's to send as they are.
        """
        end = start + head.length - 2  # the empty line's CRLF: headers go before it
        if not head.has_forwarded_fields:  # the common case: no FORWARDING_HEADERS
            return span_joined(raw, start, end, self._tail)
        return self._slow(raw, start, end)

    def _slow(self, raw: _Buffer, start: int, end: int) -> bytes:
        """The head has at least one of FORWARDING_HEADERS: rebuilt line by line."""
        trusted = self.trusted
        lines = bytes(raw[start:end]).split(b"\r\n")  # the last item is b"" (a CRLF ends it)
        kept: list[bytes] = []
        xff: list[bytes] = []
        fwd: list[bytes] = []
        has_proto = False
        for line in lines:
            # only a header line can be "Name:" exactly (a request line has a space first)
            if line and line[0] in _FIRST:
                name, colon, value = line.partition(b":")
                lowered = name.lower()
                kind = _KIND.get(lowered.replace(b"_", b"-")) if colon else None
                if kind is not None:
                    if not trusted or b"_" in lowered:
                        continue  # an underscore spelling is never a proxy's: dropped
                    if kind == _KIND_XFF:
                        xff.append(value.strip(b" \t"))
                        continue
                    if kind == _KIND_FWD:
                        fwd.append(value.strip(b" \t"))
                        continue
                    has_proto = has_proto or kind == _KIND_XFP
            kept.append(line)
        xff.append(self._xff)
        fwd.append(self._fwd)
        tail = [b"X-Forwarded-For: " + _join(xff)]
        if not has_proto:
            tail.append(self._proto_line[:-2])
        tail += (b"Forwarded: " + _join(fwd), b"", b"")
        kept[-1:] = tail
        return b"\r\n".join(kept)


def _join(values: list[bytes]) -> bytes:
    return b", ".join(value for value in values if value)


@lru_cache(maxsize=1024)
def forwarded_headers(client_ip: str, proto: str, trusted: bool) -> ForwardedHeaders:
    """The ForwardedHeaders of (client_ip, proto, trusted), shared: recent ones are kept
    in a small cache, so the connections of one client address hold one object."""
    return ForwardedHeaders(client_ip, proto, trusted)


class TrustedProxies:
    """A set of CIDRs (IPv4 and IPv6); ``contains(ip)`` is False at once when it is empty.

    An IPv4-mapped IPv6 address matches the IPv4 networks. ValueError for a CIDR
    that does not parse (host bits set are refused, as in ``10.0.0.1/8``).
    """

    __slots__ = ("_v4", "_v6", "networks")

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        nets = [ipaddress.ip_network(cidr, strict=True) for cidr in cidrs]
        self.networks = tuple(nets)
        v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
        v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
        self._v4 = tuple((int(n.network_address), int(n.netmask)) for n in v4)
        self._v6 = tuple((int(n.network_address), int(n.netmask)) for n in v6)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def contains(self, ip: str) -> bool:
        """Whether ``ip`` (IP text; a scope is ignored) is in one of the networks.
        False for text that is not an IP."""
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(ip.partition("%")[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address):
            mapped = addr.ipv4_mapped
            if mapped is None:
                value = int(addr)
                return any(value & mask == net for net, mask in self._v6)
            addr = mapped
        value = int(addr)
        return any(value & mask == net for net, mask in self._v4)
