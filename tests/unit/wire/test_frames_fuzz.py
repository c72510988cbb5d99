"""Fuzz-style property tests of the link frame decoder.

Arbitrary and mutated byte streams, cut at arbitrary points, must make the
decoder return frames or raise FrameError, nothing else; the frames it returns
must be fully valid; the incremental decoder and decode_frame must agree; the
buffer stays below one maximum frame.
"""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import FrameError
from lb.wire.frames import (
    EXTENSION_TYPE_MIN,
    MAX_FRAME_SIZE,
    ConnRef,
    Frame,
    FrameDecoder,
    FrameType,
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

flow_ids = st.integers(1, 2**32 - 1)
ref_v4 = ConnRef("198.51.100.7", 40000, "10.1.2.3", 80, "web")
ref_v6 = ConnRef(str(ipaddress.IPv6Address(1)), 1, str(ipaddress.IPv6Address(2)), 2, "svc.a")

# Valid encoded frames of every type, each as bytes.
encoded_frames = st.one_of(
    st.builds(encode_new, flow_ids, st.sampled_from([ref_v4, ref_v6]), st.binary(max_size=64)),
    st.builds(encode_data, flow_ids, st.binary(min_size=1, max_size=64)),
    st.builds(encode_verified, flow_ids),
    st.builds(encode_close, flow_ids),
    st.builds(encode_reset, flow_ids, st.integers(0, 0xFFFF), st.text(max_size=20)),
    st.builds(encode_window, flow_ids, st.integers(1, 2**31 - 1)),
    st.builds(encode_ping, st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)),
    st.builds(encode_pong, st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)),
    st.builds(
        encode_hello, st.just("farm"), st.just("node-1"), st.binary(min_size=16, max_size=16)
    ),
    st.builds(encode_auth, st.binary(min_size=32, max_size=32)),
    st.builds(
        lambda t, f, p: encode_frame(Frame(t, 0, f, p)),
        st.integers(EXTENSION_TYPE_MIN, 0xFF),
        flow_ids,
        st.binary(max_size=64),
    ),
)


def check_valid(frame: Frame) -> None:
    """A returned frame satisfies every rule; its control payload parses."""
    t = frame.type
    assert 0 < t <= 0xFF
    assert t >= EXTENSION_TYPE_MIN or t in set(FrameType)
    assert (frame.conn_ref is not None) == (t == FrameType.NEW)
    if t == FrameType.RESET:
        parse_reset(frame.payload)
    elif t == FrameType.WINDOW:
        parse_window(frame.payload)
    elif t in (FrameType.PING, FrameType.PONG):
        parse_ping(frame.payload)
    elif t == FrameType.HELLO:
        parse_hello(frame.payload)
    # a decoded frame re-encodes to a frame that decodes to itself
    again = decode_frame(encode_frame(frame))
    assert again is not None
    assert again[0] == frame


def run_decoder(data: bytes, cuts: list[int]) -> tuple[list[Frame], bool]:
    """Feed ``data`` cut at ``cuts``; (frames returned, whether FrameError was raised)."""
    decoder = FrameDecoder()
    out: list[Frame] = []
    points = sorted({c for c in cuts if 0 < c < len(data)})
    start = 0
    try:
        for point in [*points, len(data)]:
            out.extend(decoder.feed(data[start:point]))
            assert decoder.buffered() < MAX_FRAME_SIZE
            start = point
    except FrameError:
        return out, True
    return out, False


def run_decode_frame(data: bytes) -> tuple[list[Frame], bool]:
    out: list[Frame] = []
    offset = 0
    try:
        while True:
            result = decode_frame(data, offset)
            if result is None:
                return out, False
            frame, offset = result
            out.append(frame)
    except FrameError:
        return out, True


@settings(max_examples=300)
@given(st.binary(max_size=2000), st.lists(st.integers(0, 2000), max_size=20))
def test_garbage_gives_frames_or_frame_error(data: bytes, cuts: list[int]) -> None:
    frames, _failed = run_decoder(data, cuts)
    for frame in frames:
        check_valid(frame)


@settings(max_examples=300)
@given(
    st.lists(encoded_frames, min_size=1, max_size=8),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.lists(st.integers(0, 10_000), max_size=20),
)
def test_mutated_streams_give_valid_frames_or_frame_error(
    parts: list[bytes], edits: list[tuple[int, int]], cuts: list[int]
) -> None:
    data = bytearray(b"".join(parts))
    for pos, value in edits:
        data[pos % len(data)] = value
    stream = bytes(data)
    frames, failed = run_decoder(stream, cuts)
    for frame in frames:
        check_valid(frame)
    # the single-frame decoder agrees with the incremental one, whatever the chunking
    ref_frames, ref_failed = run_decode_frame(stream)
    assert failed == ref_failed
    if not failed:
        assert frames == ref_frames


@settings(max_examples=200)
@given(
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 255),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=200),
)
def test_random_headers(
    ver: int, typ: int, flags: int, hlen: int, flow: int, plen: int, rest: bytes
) -> None:
    """Headers with arbitrary fields: valid prefix of a frame, a frame, or FrameError."""
    data = struct.pack("!BBBBII", ver, typ, flags, hlen, flow, plen % 300) + rest
    frames, failed = run_decoder(data, [12])
    ref_frames, ref_failed = run_decode_frame(data)
    assert failed == ref_failed
    if not failed:
        assert frames == ref_frames
        for frame in frames:
            check_valid(frame)
