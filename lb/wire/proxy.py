"""PROXY protocol version 2 (the binary header): encode, and a bounded decoder.

The header carries a connection's real client and destination addresses ahead of
its own bytes: lb writes one to an application that asks for it
(``app_proxy_protocol = "v2"``) and reads one from a listed front balancer
(``accept_proxy_from``). docs/protocol.md has the layout byte by byte.

Pure and bounded: no sockets, no asyncio, no clock. ``decode_proxy_v2`` looks at
the growing buffer of a connection's first bytes: None while more bytes are
needed, a ``ProxyHeader`` once the whole header is in, or one ``ProxyHeaderError``
as soon as the bytes cannot start a valid header. It never looks past
``max_bytes`` nor past the header's own length, so a decided buffer stays decided
whatever follows. Version 1 (the text form) is not read: a v1 header is an error.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from lb.errors import ProxyHeaderError

__all__ = [
    "FIXED_BYTES",
    "MAX_HEADER_BYTES",
    "SIGNATURE",
    "FrontProxy",
    "ProxyHeader",
    "decode_proxy_v2",
    "encode_proxy_v2",
    "encode_proxy_v2_local",
]

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
"""The 12 bytes every version 2 header starts with."""

FIXED_BYTES = 16
"""Signature, version/command, family/transport and the 2-byte length."""

MAX_HEADER_BYTES = 536
"""Default bound on a whole header (addresses and TLVs included), as HAProxy's."""

_VERSION = 0x20
_LOCAL = 0x0
_PROXY = 0x1
_UNSPEC = 0x00
_TCP4 = 0x11
_TCP6 = 0x21
_UNIX_STREAM = 0x31
_ADDRESS_BYTES = {_UNSPEC: 0, _TCP4: 12, _TCP6: 36, _UNIX_STREAM: 216}
_DATAGRAM = frozenset((0x12, 0x22, 0x32))

_Buffer = bytes | bytearray
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A decoded header: its length in bytes and the addresses it carries.

    ``source`` and ``destination`` are (canonical IP text, port), or both None
    when the header says to use the connection's own addresses: the LOCAL
    command (a health check of the sender), or PROXY with an unspecified or
    UNIX address family. An IPv4-mapped IPv6 address is given as IPv4.
    """

    length: int
    source: Address | None
    destination: Address | None

    @property
    def local(self) -> bool:
        """No client address: use the connection's own."""
        return self.source is None


def _fail(reason: str) -> ProxyHeaderError:
    return ProxyHeaderError(f"PROXY v2 header: {reason}")


def decode_proxy_v2(buf: _Buffer, max_bytes: int = MAX_HEADER_BYTES) -> ProxyHeader | None:
    """Decode the header at the start of ``buf``.

    None while more bytes are needed; ProxyHeaderError for bytes that cannot start
    a valid header (another signature, version, command, a datagram or unknown
    family, an address block shorter than its family needs, a TLV that overruns
    the header) or a header longer than ``max_bytes``. ValueError unless
    16 <= ``max_bytes`` <= 65551.
    """
    if not FIXED_BYTES <= max_bytes <= FIXED_BYTES + 0xFFFF:
        raise ValueError(f"max_bytes must be in 16..65551, got {max_bytes!r}")
    size = len(buf)
    if size < FIXED_BYTES:
        _check_start(buf, size)
        return None
    if buf[:12] != SIGNATURE:
        raise _fail("no PROXY v2 signature")
    _check_version_command(buf[12])
    fam = buf[13]
    _check_family(fam)
    rest = (buf[14] << 8) | buf[15]
    total = FIXED_BYTES + rest
    if total > max_bytes:
        raise _fail(f"{total} bytes, over the bound of {max_bytes}")
    command = buf[12] & 0x0F
    need = _ADDRESS_BYTES[fam] if command == _PROXY else 0
    if rest < need:
        raise _fail(f"{rest} bytes after the fixed part, family 0x{fam:02x} needs {need}")
    if size < total:
        return None
    if command == _LOCAL:
        return ProxyHeader(total, None, None)  # the sender's own connection: skip the rest
    _check_tlvs(buf, FIXED_BYTES + need, total)
    if fam == _TCP4:
        src = ipaddress.IPv4Address(bytes(buf[16:20]))
        dst = ipaddress.IPv4Address(bytes(buf[20:24]))
        sport, dport = struct.unpack_from("!HH", buf, 24)
        return ProxyHeader(total, (str(src), sport), (str(dst), dport))
    if fam == _TCP6:
        sport, dport = struct.unpack_from("!HH", buf, 48)
        source = (_ip6_text(bytes(buf[16:32])), sport)
        return ProxyHeader(total, source, (_ip6_text(bytes(buf[32:48])), dport))
    return ProxyHeader(total, None, None)  # UNSPEC or UNIX: no IP to use


def _check_start(buf: _Buffer, size: int) -> None:
    """Fail early on a short buffer that can already not be a header."""
    if buf[: min(size, 12)] != SIGNATURE[: min(size, 12)]:
        raise _fail("no PROXY v2 signature")
    if size > 12:
        _check_version_command(buf[12])
    if size > 13:
        _check_family(buf[13])


def _check_version_command(byte: int) -> None:
    if byte & 0xF0 != _VERSION:
        raise _fail(f"version {byte >> 4}, only 2 is read")
    if byte & 0x0F not in (_LOCAL, _PROXY):
        raise _fail(f"unknown command {byte & 0x0F}")


def _check_family(fam: int) -> None:
    if fam in _DATAGRAM:
        raise _fail("a datagram transport on a stream connection")
    if fam not in _ADDRESS_BYTES:
        raise _fail(f"unknown address family/transport 0x{fam:02x}")


def _check_tlvs(buf: _Buffer, pos: int, end: int) -> None:
    """The TLVs after the addresses (type, 2-byte length, value) fill the header exactly.

    Their values are skipped; at most (end - pos) / 3 steps.
    """
    while pos < end:
        if end - pos < 3:
            raise _fail("a truncated TLV")
        pos += 3 + ((buf[pos + 1] << 8) | buf[pos + 2])
        if pos > end:
            raise _fail("a TLV runs past the header's length")


def _ip6_text(raw: bytes) -> str:
    ip = ipaddress.IPv6Address(raw)
    mapped = ip.ipv4_mapped
    return str(mapped) if mapped is not None else str(ip)


def _packed(host: str) -> bytes:
    """The address as 4 bytes (IPv4 or IPv4-mapped IPv6) or 16; ValueError if not an IP."""
    ip = ipaddress.ip_address(host.partition("%")[0])  # an IPv6 scope is not carried
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.packed
    return ip.packed


def _v6(packed: bytes) -> bytes:
    return packed if len(packed) == 16 else b"\x00" * 10 + b"\xff\xff" + packed


def _tlv_bytes(tlvs: Sequence[tuple[int, bytes]]) -> bytes:
    out = bytearray()
    for kind, value in tlvs:
        if not 0 <= kind <= 0xFF or len(value) > 0xFFFF:
            raise ValueError("a TLV type is one byte and its value at most 65535 bytes")
        out += struct.pack("!BH", kind, len(value)) + value
    return bytes(out)


def encode_proxy_v2(
    source: Address, destination: Address, tlvs: Sequence[tuple[int, bytes]] = ()
) -> bytes:
    """A PROXY command over TCP from ``source`` to ``destination`` ((IP, port) each).

    Both IPv4 (IPv4-mapped IPv6 counts as IPv4): a TCP over IPv4 header; otherwise
    TCP over IPv6, an IPv4 address written IPv4-mapped. ``tlvs`` are (type, value)
    pairs written after the addresses. ValueError for a host that is not an IP,
    a port outside 0..65535 or a header over 65551 bytes.
    """
    src, dst = _packed(source[0]), _packed(destination[0])
    for port in (source[1], destination[1]):
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port!r} is not in 0..65535")
    ports = struct.pack("!HH", source[1], destination[1])
    extra = _tlv_bytes(tlvs)
    if len(src) == 4 and len(dst) == 4:
        fam, body = _TCP4, src + dst + ports
    else:
        fam, body = _TCP6, _v6(src) + _v6(dst) + ports
    length = len(body) + len(extra)
    if length > 0xFFFF:
        raise ValueError("a PROXY v2 header holds at most 65535 bytes after its fixed part")
    return SIGNATURE + bytes((_VERSION | _PROXY, fam)) + length.to_bytes(2, "big") + body + extra


def encode_proxy_v2_local() -> bytes:
    """A LOCAL command (no addresses): the receiver uses the connection's own."""
    return SIGNATURE + bytes((_VERSION | _LOCAL, _UNSPEC)) + b"\x00\x00"


class FrontProxy:
    """The PROXY v2 header a connection from a listed front balancer must start with.

    Made per connection (``peer`` is the balancer's own address); the connection
    calls ``feed`` with its growing buffer before reading anything else. A LOCAL
    header (the balancer's own health check) gives the peer itself as the client.
    """

    __slots__ = ("header", "max_bytes", "peer")

    def __init__(self, peer: Address, max_bytes: int = MAX_HEADER_BYTES) -> None:
        self.peer = peer
        self.max_bytes = max_bytes
        self.header: ProxyHeader | None = None
        """The decoded header once ``feed`` answered (its ``destination`` is the address
        the client connected to, None for LOCAL)."""

    def feed(self, buf: _Buffer) -> tuple[int, Address] | None:
        """None while more bytes are needed, else (bytes of the header to drop, the
        client's address); ProxyHeaderError for anything but a valid header."""
        header = decode_proxy_v2(buf, self.max_bytes)
        if header is None:
            return None
        self.header = header
        return header.length, self.peer if header.source is None else header.source
