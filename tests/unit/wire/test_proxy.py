"""PROXY protocol v2 codec (lb.wire.proxy): layout, errors, bounds, splits, round trips."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import LbError, ProxyHeaderError
from lb.wire.proxy import (
    MAX_HEADER_BYTES,
    SIGNATURE,
    FrontProxy,
    ProxyHeader,
    decode_proxy_v2,
    encode_proxy_v2,
    encode_proxy_v2_local,
)


def raw_header(ver_cmd: int, fam: int, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return SIGNATURE + bytes((ver_cmd, fam)) + struct.pack("!H", size) + body


# -- layout: the bytes the spec defines ---------------------------------------------


def test_tcp4_header_bytes() -> None:
    got = encode_proxy_v2(("192.0.2.1", 56324), ("198.51.100.2", 443))
    assert got == (
        b"\r\n\r\n\x00\r\nQUIT\n"  # signature
        b"\x21"  # version 2, PROXY
        b"\x11"  # AF_INET, STREAM
        b"\x00\x0c"  # 12 address bytes
        b"\xc0\x00\x02\x01"
        b"\xc6\x33\x64\x02"
        b"\xdc\x04"  # 56324
        b"\x01\xbb"  # 443
    )


def test_tcp6_header_bytes() -> None:
    got = encode_proxy_v2(("2001:db8::1", 1), ("2001:db8::2", 2))
    assert got[12:16] == b"\x21\x21\x00\x24"  # PROXY, AF_INET6 STREAM, 36 bytes
    assert got[16:32] == ipaddress.IPv6Address("2001:db8::1").packed
    assert got[32:48] == ipaddress.IPv6Address("2001:db8::2").packed
    assert got[48:] == b"\x00\x01\x00\x02"


def test_mixed_families_go_as_ipv6_with_the_ipv4_mapped() -> None:
    got = encode_proxy_v2(("192.0.2.1", 5), ("2001:db8::2", 6))
    assert got[13] == 0x21
    assert got[16:32] == ipaddress.IPv6Address("::ffff:192.0.2.1").packed
    header = decode_proxy_v2(got)
    assert header == ProxyHeader(len(got), ("192.0.2.1", 5), ("2001:db8::2", 6))


def test_ipv4_mapped_pair_goes_as_ipv4() -> None:
    got = encode_proxy_v2(("::ffff:192.0.2.1", 5), ("::ffff:10.0.0.1", 6))
    assert got[13] == 0x11 and len(got) == 28


def test_local_header() -> None:
    got = encode_proxy_v2_local()
    assert got == SIGNATURE + b"\x20\x00\x00\x00"
    header = decode_proxy_v2(got + b"GET /")
    assert header == ProxyHeader(16, None, None)
    assert header is not None and header.local


def test_encode_refuses_bad_values() -> None:
    with pytest.raises(ValueError):
        encode_proxy_v2(("example.com", 1), ("10.0.0.1", 2))
    with pytest.raises(ValueError):
        encode_proxy_v2(("10.0.0.1", 65536), ("10.0.0.1", 2))
    with pytest.raises(ValueError):
        encode_proxy_v2(("10.0.0.1", 1), ("10.0.0.1", 2), [(256, b"")])


# -- decoding ------------------------------------------------------------------------


def test_decodes_addresses_and_leaves_the_stream() -> None:
    head = encode_proxy_v2(("203.0.113.9", 40000), ("10.0.0.5", 8080))
    header = decode_proxy_v2(head + b"payload")
    assert header == ProxyHeader(28, ("203.0.113.9", 40000), ("10.0.0.5", 8080))
    assert not header.local


def test_tlvs_are_skipped() -> None:
    tlvs = [(0x02, b"example.com"), (0x04, b""), (0xE0, b"x" * 100)]
    head = encode_proxy_v2(("203.0.113.9", 1), ("10.0.0.5", 2), tlvs)
    assert len(head) == 28 + (3 + 11) + 3 + (3 + 100)
    header = decode_proxy_v2(head + b"rest")
    assert header == ProxyHeader(len(head), ("203.0.113.9", 1), ("10.0.0.5", 2))


def test_unspec_and_unix_families_mean_the_connection_s_own_addresses() -> None:
    unspec = raw_header(0x21, 0x00, b"")
    assert decode_proxy_v2(unspec) == ProxyHeader(16, None, None)
    unix = raw_header(0x21, 0x31, b"/a".ljust(108, b"\0") + b"/b".ljust(108, b"\0"))
    assert decode_proxy_v2(unix) == ProxyHeader(16 + 216, None, None)


def test_local_ignores_what_follows_its_fixed_part() -> None:
    # LOCAL: the receiver must skip the announced bytes, whatever they are
    header = raw_header(0x20, 0x11, b"\xff" * 5)
    assert decode_proxy_v2(header) == ProxyHeader(21, None, None)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"GET / HTTP/1.1\r\n", "signature"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "signature"),  # v1 is not read
        (SIGNATURE + b"\x11", "version"),
        (SIGNATURE + b"\x22", "command"),
        (SIGNATURE + b"\x21\x12", "datagram"),
        (SIGNATURE + b"\x21\x22", "datagram"),
        (SIGNATURE + b"\x21\x41", "family"),
        (raw_header(0x21, 0x11, b"\0" * 8), "needs 12"),
        (raw_header(0x21, 0x21, b"\0" * 20), "needs 36"),
        (raw_header(0x21, 0x11, b"\0" * 12 + b"\x01\x00"), "truncated TLV"),
        (raw_header(0x21, 0x11, b"\0" * 12 + b"\x01\x00\x05abc"), "past the header"),
        (raw_header(0x21, 0x11, b"", length=MAX_HEADER_BYTES), "bound"),
    ],
)
def test_bad_headers_are_one_typed_error(data: bytes, words: str) -> None:
    with pytest.raises(ProxyHeaderError, match=words) as info:
        decode_proxy_v2(data)
    assert isinstance(info.value, LbError)


def test_short_buffers_need_more() -> None:
    head = encode_proxy_v2(("203.0.113.9", 1), ("10.0.0.5", 2))
    for cut in range(len(head)):
        assert decode_proxy_v2(head[:cut]) is None


def test_the_bound_is_a_parameter() -> None:
    head = encode_proxy_v2(("203.0.113.9", 1), ("10.0.0.5", 2), [(0xE0, b"x" * 600)])
    with pytest.raises(ProxyHeaderError, match="bound"):
        decode_proxy_v2(head)
    assert decode_proxy_v2(head, max_bytes=len(head)) is not None
    with pytest.raises(ProxyHeaderError, match="bound"):
        decode_proxy_v2(head, max_bytes=len(head) - 1)
    for bad in (15, 65552):
        with pytest.raises(ValueError):
            decode_proxy_v2(head, max_bytes=bad)


# -- properties ----------------------------------------------------------------------

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)
endpoints = st.tuples(st.one_of(ipv4, ipv6), ports)
tlv_lists = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=40)), max_size=4)


def _canonical(addr: tuple[str, int]) -> tuple[str, int]:
    ip = ipaddress.ip_address(addr[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), addr[1]


@given(endpoints, endpoints, tlv_lists, st.binary(max_size=30))
def test_round_trip(
    src: tuple[str, int], dst: tuple[str, int], tlvs: list[tuple[int, bytes]], rest: bytes
) -> None:
    head = encode_proxy_v2(src, dst, tlvs)
    header = decode_proxy_v2(head + rest, max_bytes=len(head))
    assert header == ProxyHeader(len(head), _canonical(src), _canonical(dst))


def _outcome(data: bytes, max_bytes: int) -> object:
    try:
        return decode_proxy_v2(data, max_bytes)
    except ProxyHeaderError:
        return "error"


def _streams() -> st.SearchStrategy[bytes]:
    valid = st.builds(encode_proxy_v2, endpoints, endpoints, tlv_lists)
    mutated = st.tuples(valid, st.integers(0, 200), st.integers(0, 255)).map(
        lambda t: t[0][: t[1] % len(t[0])] + bytes((t[2],)) + t[0][t[1] % len(t[0]) + 1 :]
    )
    fixed = st.tuples(
        st.integers(0, 255), st.integers(0, 255), st.integers(0, 700), st.binary(max_size=250)
    ).map(lambda t: raw_header(t[0], t[1], t[3], t[2]))
    return st.tuples(
        st.one_of(valid, mutated, fixed, st.just(encode_proxy_v2_local()), st.binary()),
        st.binary(max_size=40),
    ).map(lambda t: t[0] + t[1])


@settings(max_examples=300)
@given(_streams(), st.lists(st.integers(1, 64), max_size=20), st.integers(16, 700))
def test_any_split_decides_like_the_whole(data: bytes, sizes: list[int], max_bytes: int) -> None:
    """Feeding a growing buffer chunk by chunk: the first decided answer is the answer of
    the whole stream, and every later (longer) buffer keeps it."""
    whole = _outcome(data, max_bytes)
    buf = bytearray()
    pos = 0
    first: object = None
    for size in [*sizes, len(data)]:
        buf += data[pos : pos + size]
        pos += size
        got = _outcome(bytes(buf), max_bytes)
        if first is None:
            first = got
        else:
            assert got == first  # decided stays decided
        if pos >= len(data):
            break
    assert first == whole


@settings(max_examples=300)
@given(_streams(), st.integers(16, 700), st.binary(min_size=1, max_size=100))
def test_never_reads_past_the_bound(data: bytes, max_bytes: int, tail: bytes) -> None:
    """A buffer of max_bytes is always decided, and by its first max_bytes bytes only;
    a header's answer never depends on the bytes after it."""
    window = data[:max_bytes]
    if len(window) == max_bytes:
        assert _outcome(window, max_bytes) is not None
    decided = _outcome(window, max_bytes)
    if decided is not None:
        assert _outcome(window + tail, max_bytes) == decided
        if isinstance(decided, ProxyHeader):
            assert decided.length <= max_bytes
            assert _outcome(window[: decided.length] + tail, max_bytes) == decided


# -- FrontProxy: what a client connection from a listed balancer calls ----------------


def test_front_proxy_gives_the_source_and_the_bytes_to_drop() -> None:
    front = FrontProxy(("10.0.0.9", 5000))
    head = encode_proxy_v2(("203.0.113.9", 40000), ("198.51.100.1", 80))
    buf = bytearray(head[:10])
    assert front.feed(buf) is None
    buf += head[10:] + b"GET / HTTP/1.1\r\n"
    assert front.feed(buf) == (len(head), ("203.0.113.9", 40000))
    assert front.header is not None and front.header.destination == ("198.51.100.1", 80)


def test_front_proxy_local_means_the_balancer_itself() -> None:
    front = FrontProxy(("10.0.0.9", 5000))
    assert front.feed(encode_proxy_v2_local()) == (16, ("10.0.0.9", 5000))


def test_front_proxy_refuses_a_connection_without_the_header() -> None:
    with pytest.raises(ProxyHeaderError):
        FrontProxy(("10.0.0.9", 5000)).feed(b"GET / HTTP/1.1\r\n")
