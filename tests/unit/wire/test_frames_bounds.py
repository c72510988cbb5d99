"""Boundary tests of the link frame codec: every limit of docs/protocol.md at, below and above.

Each limit is checked on both sides (the largest accepted value and the first rejected
one), for the encoders (ValueError) and the decoders (FrameError, or None while a frame
is incomplete). These are the cases a mutation run (scripts/mutation.py) showed the
round-trip and golden-byte tests in test_frames.py leave open.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from lb.errors import FrameError
from lb.wire.frames import (
    ConnRef,
    Frame,
    FrameDecoder,
    FrameType,
    data_header,
    decode_frame,
    encode_auth,
    encode_close,
    encode_data,
    encode_frame,
    encode_hello,
    encode_new,
    encode_ping,
    encode_pong,
    encode_reset,
    encode_verified,
    encode_window,
    parse_hello,
    parse_ping,
    parse_reset,
    parse_window,
)

# The limits as docs/protocol.md states them (not imported: a changed constant in
# lb.wire.frames must fail these tests, not move them along).
HEADER_SIZE = 12
MAX_PAYLOAD = 256 * 1024
MAX_RESET_MESSAGE = 1024
MAX_SERVICE_NAME = 64
MAX_HELLO_NAME = 255
NONCE_SIZE = 16
AUTH_MAC_SIZE = 32
MAX_WINDOW_INCREMENT = 2**31 - 1
EXTENSION_TYPE_MIN = 0x40
FLAG_NEW_SESSION = 0x01
MAX_FLOW = 2**32 - 1
NONCE = bytes(range(16))
# NEW header: 12 fixed + 6 (family, service length, ports) + 2 addresses + service name
NEW_HLEN_MIN = HEADER_SIZE + 6 + 2 * 4 + 1
NEW_HLEN_MAX = HEADER_SIZE + 6 + 2 * 16 + MAX_SERVICE_NAME
HELLO_MIN = 1 + 1 + 1 + 1 + NONCE_SIZE
HELLO_MAX = 1 + MAX_HELLO_NAME + 1 + MAX_HELLO_NAME + NONCE_SIZE


def header(ver: int, typ: int, flags: int, hlen: int, flow: int, plen: int) -> bytes:
    return struct.pack("!BBBBII", ver, typ, flags, hlen, flow, plen)


def decode_one(data: bytes) -> Frame:
    result = decode_frame(data)
    assert result is not None
    frame, end = result
    assert end == len(data)
    return frame


def decode_fails(data: bytes, match: str | None = None) -> None:
    with pytest.raises(FrameError, match=match):
        decode_frame(data)
    decoder = FrameDecoder()
    with pytest.raises(FrameError, match=match):
        decoder.feed(data)


def new_ext(family: int, svc_len: int, cport: int, hport: int, addr: bytes, svc: bytes) -> bytes:
    return struct.pack("!BBHH", family, svc_len, cport, hport) + addr + svc


def raw_new(family: int, addr_size: int, service: bytes, payload: bytes = b"", **kw: int) -> bytes:
    svc_len = kw.get("svc_len", len(service))
    hlen = kw.get("hlen", HEADER_SIZE + 6 + 2 * addr_size + len(service))
    addrs = bytes(range(1, 1 + 2 * addr_size))
    ext = new_ext(family, svc_len, 1000, 2000, addrs, service)
    return header(1, FrameType.NEW, 0, hlen, 1, len(payload)) + ext + payload


# --- encoders: limits -----------------------------------------------------------------------


def test_flow_id_limits_of_every_flow_encoder() -> None:
    for encode in (
        encode_verified,
        encode_close,
        lambda f: encode_data(f, b"x"),
        lambda f: data_header(f, 1) + b"x",
        lambda f: encode_reset(f, 1),
        lambda f: encode_window(f, 1),
        lambda f: encode_new(f, ConnRef("1.2.3.4", 1, "5.6.7.8", 2, "s")),
    ):
        for good in (1, MAX_FLOW):
            assert decode_one(encode(good)).flow_id == good
        for bad in (0, MAX_FLOW + 1, -1):
            with pytest.raises(ValueError):
                encode(bad)


def test_payload_size_limit_of_data_and_new() -> None:
    big = b"\x07" * MAX_PAYLOAD
    assert decode_one(encode_data(3, big)).payload == big
    assert data_header(3, MAX_PAYLOAD) == encode_data(3, big)[:HEADER_SIZE]
    ref = ConnRef("1.2.3.4", 1, "5.6.7.8", 2, "s")
    assert decode_one(encode_new(3, ref, big)).payload == big
    for encode in (
        lambda: encode_data(3, big + b"x"),
        lambda: data_header(3, MAX_PAYLOAD + 1),
        lambda: encode_new(3, ref, big + b"x"),
        lambda: encode_frame(Frame(0x50, 0, 0, big + b"x")),
        lambda: encode_data(3, b""),
        lambda: data_header(3, 0),
    ):
        with pytest.raises(ValueError):
            encode()
    assert decode_one(encode_data(3, b"x")).payload == b"x"
    assert data_header(3, 1) == encode_data(3, b"x")[:HEADER_SIZE]


def test_new_flags() -> None:
    ref = ConnRef("1.2.3.4", 1, "5.6.7.8", 2, "s")
    assert decode_one(encode_new(3, ref, flags=FLAG_NEW_SESSION)).flags == FLAG_NEW_SESSION
    assert decode_one(encode_new(3, ref, flags=0)).flags == 0
    for bad in (0x02, 0x03, 0x80, -1):
        with pytest.raises(ValueError):
            encode_new(3, ref, flags=bad)


def test_new_port_limits_and_families() -> None:
    for port in (0, 0xFFFF):
        ref = ConnRef("1.2.3.4", port, "5.6.7.8", port, "s")
        assert decode_one(encode_new(3, ref)).conn_ref == ref
    for port in (-1, 0x10000):
        for ref in (
            ConnRef("1.2.3.4", port, "5.6.7.8", 80, "s"),
            ConnRef("1.2.3.4", 80, "5.6.7.8", port, "s"),
        ):
            with pytest.raises(ValueError):
                encode_new(3, ref)
    with pytest.raises(ValueError):
        encode_new(3, ConnRef("1.2.3.4", 1, "::1", 2, "s"))
    assert encode_new(3, ConnRef("1.2.3.4", 1, "5.6.7.8", 2, "s"))[HEADER_SIZE] == 4
    assert encode_new(3, ConnRef("::1", 1, "::2", 2, "s"))[HEADER_SIZE] == 6


def test_new_with_ipv6_and_the_longest_service_name_round_trips() -> None:
    service = "s" * (MAX_SERVICE_NAME - 2) + "-9"
    ref = ConnRef("2001:db8::1", 65535, "2001:db8:ffff::2", 0, service)
    encoded = encode_new(MAX_FLOW, ref, b"body", FLAG_NEW_SESSION)
    assert encoded[3] == NEW_HLEN_MAX  # the largest NEW header there is
    frame = decode_one(encoded)
    assert frame.conn_ref == ref
    assert frame.payload == b"body"
    assert encode_frame(frame) == encoded
    with pytest.raises(ValueError):
        encode_new(1, ConnRef("2001:db8::1", 1, "2001:db8::2", 2, service + "x"))
    with pytest.raises(ValueError):
        encode_new(1, ConnRef("2001:db8::1", 1, "2001:db8::2", 2, ""))


def test_reset_reason_limits() -> None:
    for reason in (0, 0xFFFF):
        assert parse_reset(decode_one(encode_reset(5, reason)).payload) == (reason, "")
    for reason in (-1, 0x10000):
        with pytest.raises(ValueError):
            encode_reset(5, reason)


def test_reset_with_the_longest_message_round_trips() -> None:
    message = "m" * MAX_RESET_MESSAGE
    encoded = encode_reset(5, 9, message)
    assert len(encoded) == HEADER_SIZE + 2 + MAX_RESET_MESSAGE
    frame = decode_one(encoded)
    assert parse_reset(frame.payload) == (9, message)
    assert encode_frame(frame) == encoded
    # one byte more is cut by the encoder, refused by the decoder
    assert parse_reset(decode_one(encode_reset(5, 9, message + "z")).payload) == (9, message)
    too_long = struct.pack("!H", 9) + b"m" * (MAX_RESET_MESSAGE + 1)
    decode_fails(header(1, FrameType.RESET, 0, 12, 5, len(too_long)) + too_long)
    with pytest.raises(FrameError):
        parse_reset(too_long)


def _longest_prefix(message: str, limit: int) -> bytes:
    """The longest run of whole characters of ``message`` fitting in ``limit`` UTF-8 bytes."""
    out = b""
    for char in message:
        raw = char.encode("utf-8")
        if len(out) + len(raw) > limit:
            break
        out += raw
    return out


@pytest.mark.parametrize("char", ["é", "ÿ", "€", "한", "\U0001f600", "\U00010348"])
def test_reset_message_is_cut_on_a_character_boundary(char: str) -> None:
    for pad in range(MAX_RESET_MESSAGE - 4, MAX_RESET_MESSAGE + 1):
        message = "a" * pad + char * 3
        reason, got = parse_reset(decode_one(encode_reset(1, 2, message)).payload)
        expected = _longest_prefix(message, MAX_RESET_MESSAGE)
        assert reason == 2
        assert got.encode("utf-8") == expected, (pad, char)


def test_window_increment_limits() -> None:
    for inc in (1, MAX_WINDOW_INCREMENT):
        assert parse_window(decode_one(encode_window(2, inc)).payload) == inc
    for inc in (0, MAX_WINDOW_INCREMENT + 1, -1):
        with pytest.raises(ValueError):
            encode_window(2, inc)
    for inc in (0, MAX_WINDOW_INCREMENT + 1, 2**32 - 1):
        payload = struct.pack("!I", inc)
        with pytest.raises(FrameError):
            parse_window(payload)
        decode_fails(header(1, FrameType.WINDOW, 0, 12, 2, 4) + payload)
    for size in (3, 5):
        with pytest.raises(FrameError):
            parse_window(b"\x00" * (size - 1) + b"\x01")


def test_ping_and_pong_value_limits() -> None:
    for encode in (encode_ping, encode_pong):
        for token, load in ((0, 0), (2**64 - 1, 2**32 - 1)):
            assert parse_ping(decode_one(encode(token, load)).payload) == (token, load)
        for token, load in ((-1, 0), (2**64, 0), (0, -1), (0, 2**32)):
            with pytest.raises(ValueError):
                encode(token, load)
    for size in (11, 13):
        with pytest.raises(FrameError):
            parse_ping(b"\x00" * size)


def test_hello_name_limits() -> None:
    longest = "n" * MAX_HELLO_NAME
    encoded = encode_hello(longest, longest, NONCE)
    assert len(encoded) == HEADER_SIZE + HELLO_MAX
    frame = decode_one(encoded)
    assert parse_hello(frame.payload) == (longest, longest, NONCE)
    assert encode_frame(frame) == encoded
    two_byte = "é" * (MAX_HELLO_NAME // 2)  # 254 bytes of UTF-8
    assert parse_hello(decode_one(encode_hello(two_byte, "n", NONCE)).payload)[0] == two_byte
    for farm, node in (
        (longest + "n", "n"),
        ("n", longest + "n"),
        ("", "n"),
        ("n", ""),
        ("é" * 128, "n"),  # 256 bytes
        ("\ud800", "n"),  # not encodable
        ("n", "\udfff"),
    ):
        with pytest.raises(ValueError):
            encode_hello(farm, node, NONCE)
    shortest = encode_hello("f", "n", NONCE)
    assert len(shortest) == HEADER_SIZE + HELLO_MIN
    assert parse_hello(decode_one(shortest).payload) == ("f", "n", NONCE)
    for nonce in (NONCE[:-1], NONCE + b"x"):
        with pytest.raises(ValueError):
            encode_hello("f", "n", nonce)


def test_auth_mac_size() -> None:
    mac = bytes(range(AUTH_MAC_SIZE))
    assert decode_one(encode_auth(mac)).payload == mac
    for bad in (mac[:-1], mac + b"x"):
        with pytest.raises(ValueError):
            encode_auth(bad)
        decode_fails(header(1, FrameType.AUTH, 0, 12, 0, len(bad)) + bad)


def test_encode_frame_limits() -> None:
    for flags in (0, 0xFF):
        assert decode_one(encode_frame(Frame(0x41, flags, 1, b"x"))).flags == flags
    for flow in (0, MAX_FLOW):
        assert decode_one(encode_frame(Frame(0x41, 0, flow, b""))).flow_id == flow
    for t in (EXTENSION_TYPE_MIN, 0xFF):
        assert decode_one(encode_frame(Frame(t, 0, 0, b"ab"))).type == t
    for frame in (
        Frame(0x41, 0x100, 1, b""),
        Frame(0x41, -1, 1, b""),
        Frame(0x41, 0, MAX_FLOW + 1, b""),
        Frame(0x41, 0, -1, b""),
        Frame(0x100, 0, 0, b""),
        Frame(EXTENSION_TYPE_MIN - 1, 0, 0, b""),
        Frame(0, 0, 0, b""),
        Frame(FrameType.NEW, 0, 1, b""),  # no conn_ref
        Frame(FrameType.DATA, 0, 1, b"x", ConnRef("1.2.3.4", 1, "5.6.7.8", 2, "s")),
        Frame(FrameType.VERIFIED, 0, 0, b""),
        Frame(FrameType.WINDOW, 0, 1, struct.pack("!I", 0)),
        Frame(FrameType.RESET, 0, 1, b"\x00\x01\xff"),  # message not UTF-8
        Frame(FrameType.HELLO, 0, 0, b"\x01f\x00" + NONCE + b"x"),
    ):
        with pytest.raises(ValueError):
            encode_frame(frame)


# --- decoders: header checks ------------------------------------------------------------------


def test_a_first_byte_or_two_decide_version_and_type() -> None:
    assert decode_frame(b"") is None
    assert decode_frame(b"\x01") is None
    for t in (*range(1, 11), EXTENSION_TYPE_MIN, 0xFF):
        assert decode_frame(bytes((1, t))) is None
        assert FrameDecoder().feed(bytes((1, t))) == []
    for ver in (0, 2):
        decode_fails(bytes((ver,)), "version")
        decode_fails(bytes((ver, FrameType.DATA)), "version")
    for t in (0, 11, EXTENSION_TYPE_MIN - 1):
        decode_fails(bytes((1, t)), "type")
        decode_fails(bytes((1, t)) + b"\x00" * 9, "type")


def test_the_data_fast_path_checks_the_whole_header() -> None:
    body = b"hello"
    assert decode_one(header(1, 2, 0, 12, 1, 5) + body) == Frame(2, 0, 1, body)
    for bad in (
        header(0, 2, 0, 12, 1, 5) + body,
        header(2, 2, 0, 12, 1, 5) + body,
        header(1, 2, 0, 11, 1, 5) + body,
        header(1, 2, 0, 13, 1, 5) + b"\x00" + body,
        header(1, 2, 0, 12, 0, 5) + body,
        header(1, 2, 0, 12, 1, 0),
        header(1, 3, 0, 12, 1, 5) + body,  # VERIFIED has no payload
        header(1, 1, 0, 12, 1, 5) + body,  # NEW has a longer header
    ):
        decode_fails(bad)
        decoder = FrameDecoder()
        decoder.feed(b"")
        with pytest.raises(FrameError):
            decoder.feed(encode_data(9, b"ok") + bad)


def test_payload_length_limit_is_checked_from_the_header() -> None:
    for t, flow in ((FrameType.DATA, 1), (FrameType.NEW, 1), (0x41, 0)):
        hlen = NEW_HLEN_MIN if t == FrameType.NEW else HEADER_SIZE
        at_limit = header(1, t, 0, hlen, flow, MAX_PAYLOAD)
        assert decode_frame(at_limit) is None
        assert FrameDecoder().feed(at_limit) == []
        decode_fails(header(1, t, 0, hlen, flow, MAX_PAYLOAD + 1), "MAX_PAYLOAD")


def test_header_length_limits() -> None:
    for hlen in (NEW_HLEN_MIN, NEW_HLEN_MAX):
        assert decode_frame(header(1, FrameType.NEW, 0, hlen, 1, 0)) is None
    for hlen in (NEW_HLEN_MIN - 1, NEW_HLEN_MAX + 1, HEADER_SIZE):
        decode_fails(header(1, FrameType.NEW, 0, hlen, 1, 0), "NEW header length")
    for t in (FrameType.VERIFIED, FrameType.PING, FrameType.AUTH):
        decode_fails(header(1, t, 0, 13, 0 if t != FrameType.VERIFIED else 1, 0), "header length")
    decode_fails(header(1, 0x41, 0, 11, 0, 0), "header length 11")
    # an extension frame's extra header bytes are skipped, not part of the payload
    assert decode_one(header(1, 0x41, 0, 12, 0, 2) + b"pq").payload == b"pq"
    assert decode_one(header(1, 0x41, 0, 13, 0, 2) + b"Xpq").payload == b"pq"
    assert decode_one(header(1, 0x41, 0, 255, 0, 0) + b"X" * 243).payload == b""


def test_flow_id_rules_of_the_decoder() -> None:
    for t in (FrameType.VERIFIED, FrameType.CLOSE):
        assert decode_one(header(1, t, 0, 12, MAX_FLOW, 0)).flow_id == MAX_FLOW
        decode_fails(header(1, t, 0, 12, 0, 0), "flow id 0")
    ping = encode_ping(1, 2)
    decode_fails(ping[:4] + struct.pack("!I", 1) + ping[8:], "must be 0")
    assert decode_one(header(1, 0x41, 0, 12, 0, 0)).flow_id == 0
    assert decode_one(header(1, 0x41, 0, 12, 7, 0)).flow_id == 7


@pytest.mark.parametrize(
    ("t", "flow", "good", "bad"),
    [
        (FrameType.DATA, 1, [1, 3], [0]),
        (FrameType.VERIFIED, 1, [0], [1]),
        (FrameType.CLOSE, 1, [0], [1]),
        (FrameType.RESET, 1, [2, 2 + MAX_RESET_MESSAGE], [0, 1, 3 + MAX_RESET_MESSAGE]),
        (FrameType.WINDOW, 1, [4], [3, 5]),
        (FrameType.PING, 0, [12], [11, 13]),
        (FrameType.PONG, 0, [12], [11, 13]),
        (FrameType.HELLO, 0, [HELLO_MIN, HELLO_MAX], [HELLO_MIN - 1, HELLO_MAX + 1]),
        (FrameType.AUTH, 0, [AUTH_MAC_SIZE], [AUTH_MAC_SIZE - 1, AUTH_MAC_SIZE + 1]),
    ],
)
def test_payload_length_rules(t: int, flow: int, good: list[int], bad: list[int]) -> None:
    for plen in good:
        if plen == 0:
            assert decode_one(header(1, t, 0, 12, flow, 0)).payload == b""
        else:
            assert decode_frame(header(1, t, 0, 12, flow, plen)) is None  # valid so far
    for plen in bad:
        fixed = len(good) == 1 and t != FrameType.DATA
        match = f"must be {good[0]} bytes" if fixed else "outside"
        decode_fails(header(1, t, 0, 12, flow, plen), match)


# --- decoders: payload parsers ----------------------------------------------------------------


def test_reset_payload_limits() -> None:
    assert parse_reset(b"\x12\x34") == (0x1234, "")
    assert parse_reset(b"\xff\xff" + "é".encode()) == (0xFFFF, "é")
    for bad in (b"", b"\x00"):
        with pytest.raises(FrameError):
            parse_reset(bad)
    decode_fails(header(1, FrameType.RESET, 0, 12, 1, 3) + b"\x00\x01\xc3", "UTF-8")


def hello_payload(farm: bytes, node: bytes, nonce: bytes = NONCE, **kw: int) -> bytes:
    farm_len = kw.get("farm_len", len(farm))
    node_len = kw.get("node_len", len(node))
    return bytes((farm_len,)) + farm + bytes((node_len,)) + node + nonce


def test_hello_whose_farm_name_runs_exactly_to_the_end_is_an_error() -> None:
    payload = bytes((HELLO_MIN - 1,)) + b"f" * (HELLO_MIN - 1)  # the farm name is all of it
    assert len(payload) == HELLO_MIN
    with pytest.raises(FrameError, match="runs past"):
        parse_hello(payload)
    decode_fails(header(1, FrameType.HELLO, 0, 12, 0, len(payload)) + payload, "runs past")
    longer = bytes((200,)) + b"f" * 200
    with pytest.raises(FrameError, match="runs past"):
        parse_hello(longer)
    beyond = bytes((250,)) + b"f" * 30
    with pytest.raises(FrameError, match="runs past"):
        parse_hello(beyond)


def test_hello_layout_rules() -> None:
    assert parse_hello(hello_payload(b"f", b"n")) == ("f", "n", NONCE)
    # the farm name leaves exactly one byte, the node length: the node name is then empty
    with pytest.raises(FrameError):
        parse_hello(bytes((HELLO_MIN - 2,)) + b"f" * (HELLO_MIN - 2) + b"\x00")
    for bad, match in (
        (hello_payload(b"", b"n", farm_len=0) + b"x", "farm name is empty"),
        (hello_payload(b"f", b"", node_len=0) + b"x", "node name is empty"),
        (hello_payload(b"f", b"n", NONCE + b"x"), "name lengths say"),
        (hello_payload(b"fff", b"n", NONCE[:-1]), "name lengths say"),
        (hello_payload(b"f", b"nn", node_len=1), "name lengths say"),
        (hello_payload(b"f", b"n" * 4, node_len=5), "name lengths say"),
        (hello_payload(b"\xff", b"n"), "UTF-8"),
        (hello_payload(b"f", b"\xc3"), "UTF-8"),
        (hello_payload(b"f", b"n")[:-1], "shorter than"),
    ):
        with pytest.raises(FrameError, match=match):
            parse_hello(bad)
        decode_fails(header(1, FrameType.HELLO, 0, 12, 0, len(bad)) + bad)


# --- decoders: the NEW extension --------------------------------------------------------------


def test_new_extension_rules() -> None:
    ok4 = raw_new(4, 4, b"svc", b"p")
    assert decode_one(ok4).conn_ref == ConnRef("1.2.3.4", 1000, "5.6.7.8", 2000, "svc")
    ok6 = raw_new(6, 16, b"s" * MAX_SERVICE_NAME)
    ref6 = decode_one(ok6).conn_ref
    assert ref6 is not None
    assert ref6.client_ip == "102:304:506:708:90a:b0c:d0e:f10"
    assert ref6.service == "s" * MAX_SERVICE_NAME
    for bad, match in (
        (raw_new(5, 4, b"svc"), "family 5"),
        (raw_new(0, 4, b"svc"), "family 0"),
        (raw_new(4, 16, b"svc"), "says"),  # IPv4 with 16-byte addresses
        (raw_new(6, 4, b"svc"), "says"),
        (raw_new(4, 4, b"s", svc_len=0), "service name length 0"),
        (raw_new(4, 4, b"s" * (MAX_SERVICE_NAME + 1)), "service name length 65"),
        (raw_new(4, 4, b"svc", svc_len=2), "says"),
        (raw_new(4, 4, b"svc", svc_len=4, hlen=12 + 6 + 8 + 3), "says"),
        (raw_new(4, 4, b"s/c"), "characters"),
        (raw_new(4, 4, b"s\xffc"), "characters"),
    ):
        decode_fails(bad, match)


def test_a_bad_new_extension_fails_as_soon_as_its_header_is_in() -> None:
    bad = raw_new(4, 4, b"s/c", b"payload")
    hlen = bad[3]
    for cut in (hlen, hlen + 1):
        decode_fails(bad[:cut], "characters")
    assert decode_frame(bad[: hlen - 1]) is None
    assert FrameDecoder().feed(bad[: hlen - 1]) == []
    # the same through a frame that straddles two chunks
    for first in (1, 5, HEADER_SIZE, HEADER_SIZE + 1, hlen - 1):
        decoder = FrameDecoder()
        assert decoder.feed(bad[:first]) == []
        with pytest.raises(FrameError, match="characters"):
            decoder.feed(bad[first:hlen])
        decoder = FrameDecoder()
        decoder.feed(bad[:first])
        assert decoder.feed(bad[first : hlen - 1]) == []
        assert decoder.buffered() == hlen - 1
    # after a complete frame in the same chunk
    decoder = FrameDecoder()
    with pytest.raises(FrameError, match="characters"):
        decoder.feed(encode_close(1) + bad[:hlen])


# --- decoder: offsets, chunking, buffering ----------------------------------------------------


def test_decode_frame_offset_limits() -> None:
    data = encode_close(1) + encode_close(2)
    assert decode_frame(data, len(data)) is None
    frame, end = decode_frame(data, 12) or (None, 0)
    assert frame == Frame(FrameType.CLOSE, 0, 2, b"")
    assert end == 24
    for offset in (-1, len(data) + 1):
        with pytest.raises(ValueError):
            decode_frame(data, offset)
    assert decode_frame(data + b"\x01", len(data)) is None
    with pytest.raises(FrameError):
        decode_frame(data + b"\x07", len(data))


STREAM_FRAMES = [
    encode_new(7, ConnRef("2001:db8::1", 1, "2001:db8::2", 2, "s" * MAX_SERVICE_NAME), b"GET"),
    encode_data(7, b"d" * 40),
    encode_reset(8, 3, "r" * MAX_RESET_MESSAGE),
    encode_hello("farm", "node", NONCE),
    encode_frame(Frame(0x41, 3, 0, b"ext")),
    encode_window(7, MAX_WINDOW_INCREMENT),
    encode_data(7, b"e"),
    encode_auth(b"a" * AUTH_MAC_SIZE),
    encode_ping(2**64 - 1, 5),
    encode_verified(9),
]
STREAM = b"".join(STREAM_FRAMES)


def expected_frames() -> list[Frame]:
    return [decode_one(raw) for raw in STREAM_FRAMES]


def test_every_two_chunk_split_gives_the_same_frames() -> None:
    expected = expected_frames()
    for cut in range(len(STREAM) + 1):
        decoder = FrameDecoder()
        first = decoder.feed(STREAM[:cut])
        assert decoder.buffered() == cut - sum(len(f) for f in _whole(STREAM[:cut]))
        assert first + decoder.feed(STREAM[cut:]) == expected, cut
        assert decoder.buffered() == 0


def _whole(prefix: bytes) -> list[bytes]:
    """The complete encoded frames at the start of ``prefix``."""
    out = []
    pos = 0
    for raw in STREAM_FRAMES:
        if pos + len(raw) > len(prefix):
            break
        out.append(raw)
        pos += len(raw)
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 11, 12, 13, 29, 100])
def test_fixed_size_chunks_give_the_same_frames(size: int) -> None:
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for pos in range(0, len(STREAM), size):
        frames += decoder.feed(memoryview(STREAM)[pos : pos + size])
        assert decoder.buffered() < max(len(f) for f in STREAM_FRAMES)
    assert frames == expected_frames()


def test_a_failed_decoder_stays_failed() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameError):
        decoder.feed(encode_close(1) + b"\x02")
    assert decoder.buffered() == 0
    for more in (b"", encode_close(1)):
        with pytest.raises(FrameError, match="already failed"):
            decoder.feed(more)


# --- the value classes ------------------------------------------------------------------------


def test_conn_ref_is_an_immutable_hashable_value() -> None:
    ref = ConnRef("1.2.3.4", 1, "5.6.7.8", 2, "s")
    same = ConnRef("1.2.3.4", 1, "5.6.7.8", 2, "s")
    assert hash(ref) == hash(same)
    assert {ref: 1}[same] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.service = "t"  # type: ignore[misc]


def test_frame_compares_only_with_frames() -> None:
    frame = Frame(FrameType.CLOSE, 0, 1, b"")
    assert frame.__eq__(object()) is NotImplemented
    assert (frame == "not a frame") is False
    assert (frame != "not a frame") is True


def test_frame_repr_shows_at_most_32_payload_bytes() -> None:
    exact = bytes(range(32))
    assert repr(Frame(FrameType.DATA, 0, 1, exact)) == (
        f"Frame(DATA, flags=0x00, flow_id=1, payload={exact!r} (32 bytes))"
    )
    longer = bytes(range(33))
    assert repr(Frame(0x41, 0x80, 0, longer)) == (
        f"Frame(0x41, flags=0x80, flow_id=0, payload={exact!r}... (33 bytes))"
    )


def test_an_oversized_data_frame_fails_even_when_all_its_bytes_are_in() -> None:
    size = MAX_PAYLOAD + 1
    frame = header(1, FrameType.DATA, 0, 12, 1, size) + b"\x00" * size
    decode_fails(frame, "MAX_PAYLOAD")
    decoder = FrameDecoder()
    with pytest.raises(FrameError, match="MAX_PAYLOAD"):
        decoder.feed(encode_close(1) + frame)


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_frames_own_their_payload_whatever_buffer_was_fed(kind: type) -> None:
    raw = bytearray(encode_data(1, b"abc") + encode_reset(2, 1, "xy") + encode_data(3, b"d"))
    decoder = FrameDecoder()
    frames = decoder.feed(kind(raw)) + decoder.feed(kind(bytearray(encode_data(4, b"ef")))[:13])
    raw[:] = b"\xee" * len(raw)  # the caller reuses its buffer
    assert [f.payload for f in frames] == [b"abc", b"\x00\x01xy", b"d"]
    assert all(type(f.payload) is bytes for f in frames)
    assert decoder.feed(encode_data(4, b"ef")[13:]) == [Frame(2, 0, 4, b"ef")]
