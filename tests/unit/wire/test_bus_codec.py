"""lb.wire.bus: the METRICS, ADMIN and OWN_STATE frames of the worker bus."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb.errors import FrameError
from lb.wire import frames as fr
from lb.wire.bus import (
    ADMIN,
    ADMIN_DRAIN,
    ADMIN_UNDRAIN,
    METRICS,
    OWN_STATE,
    decode_admin,
    decode_metrics,
    decode_own_state,
    decode_place,
    decode_placed,
    encode_admin,
    encode_metrics,
    encode_own_state,
    encode_place,
    encode_placed,
)
from lb.wire.membership import MAX_INCARNATION, MemberState


def _one(data: bytes) -> fr.Frame:
    frames = fr.FrameDecoder().feed(data)
    assert len(frames) == 1
    return frames[0]


def test_metrics_round_trip() -> None:
    frame = _one(encode_metrics(3, b'{"a": 1}'))
    assert frame.type == METRICS
    assert decode_metrics(frame.payload) == (3, b'{"a": 1}')


def test_metrics_too_big_for_a_frame() -> None:
    with pytest.raises(ValueError):
        encode_metrics(0, b"{" + b" " * fr.MAX_PAYLOAD + b"}")


@pytest.mark.parametrize("payload", [b"", b"\x00\x01", b"\x00\x01[1]", b"\x00\x01x"])
def test_metrics_payload_must_be_worker_and_object(payload: bytes) -> None:
    with pytest.raises(FrameError):
        decode_metrics(payload)


@pytest.mark.parametrize("command", [ADMIN_DRAIN, ADMIN_UNDRAIN])
def test_admin_round_trip(command: int) -> None:
    frame = _one(encode_admin(command))
    assert frame.type == ADMIN
    assert decode_admin(frame.payload) == command


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x03", b"\x01\x01"])
def test_admin_bad_payload(payload: bytes) -> None:
    with pytest.raises(FrameError):
        decode_admin(payload)


@pytest.mark.parametrize("state", [MemberState.ALIVE, MemberState.DRAINING, MemberState.LEFT])
@pytest.mark.parametrize("incarnation", [0, 1_796_000_000, MAX_INCARNATION])
def test_own_state_round_trip(state: MemberState, incarnation: int) -> None:
    frame = _one(encode_own_state(state, incarnation))
    assert frame.type == OWN_STATE and frame.flow_id == 0
    assert frame.payload == bytes((state.value,)) + incarnation.to_bytes(8, "big")
    assert decode_own_state(frame.payload) == (state, incarnation)


@pytest.mark.parametrize(
    ("state", "incarnation"),
    [
        (MemberState.SUSPECT, 1),
        (MemberState.DEAD, 1),
        (MemberState.ALIVE, -1),
        (MemberState.ALIVE, MAX_INCARNATION + 1),
    ],
)
def test_own_state_encoder_refuses_what_a_node_never_declares(
    state: MemberState, incarnation: int
) -> None:
    with pytest.raises(ValueError):
        encode_own_state(state, incarnation)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01" + bytes(7),  # one byte short
        b"\x01" + bytes(9),  # one byte too many
        b"\x00" + bytes(8),  # UNKNOWN is never sent
        b"\x02" + bytes(8),  # SUSPECT: not a declaration
        b"\x03" + bytes(8),  # DEAD
        b"\x06" + bytes(8),  # no such state
    ],
)
def test_own_state_payload_must_be_a_declaration_and_an_incarnation(payload: bytes) -> None:
    with pytest.raises(FrameError):
        decode_own_state(payload)


# -- PLACE / PLACED -------------------------------------------------------------------------


def _payload(frame: bytes) -> bytes:
    decoded = fr.decode_frame(frame)
    assert decoded is not None and decoded[1] == len(frame)
    return decoded[0].payload


@pytest.mark.parametrize(
    ("source", "home"),
    [("127.0.0.20", "b"), ("2001:db8:1:2::/64", "node-é"), ("x" * 64, "n" * 255)],
)
def test_place_and_placed_round_trip(source: str, home: str) -> None:
    assert decode_place(_payload(encode_place(source, home))) == (source, home)
    assert decode_placed(_payload(encode_placed(source, home, 1764590400.25))) == (
        source,
        home,
        1764590400.25,
    )


def test_placed_is_the_worked_example_of_protocol_md() -> None:
    frame = encode_placed("127.0.0.20", "b", 1764590400.0)
    assert frame.hex(" ") == (
        "01 56 00 0c 00 00 00 00 00 00 00 15 "
        "0a 31 32 37 2e 30 2e 30 2e 32 30 01 62 41 da 4b 60 d0 00 00 00"
    )


@pytest.mark.parametrize(
    ("source", "home"), [("", "b"), ("x" * 65, "b"), ("s", ""), ("s", "n" * 256)]
)
def test_place_encoder_refuses_what_does_not_fit(source: str, home: str) -> None:
    with pytest.raises(ValueError):
        encode_place(source, home)
    with pytest.raises(ValueError):
        encode_placed(source, home, 0.0)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x01b",  # empty source
        b"\x41" + b"x" * 65 + b"\x01b",  # source longer than 64
        b"\x05abc",  # source runs past the payload
        b"\x01s",  # no home length
        b"\x01s\x00",  # empty home
        b"\x01s\x03ab",  # home runs past the payload
        b"\x01\xff\x01b",  # source not UTF-8
        b"\x01s\x01b!",  # a byte after the home
    ],
)
def test_place_payload_errors_are_frame_errors(payload: bytes) -> None:
    with pytest.raises(FrameError):
        decode_place(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"\x01s\x01b",  # no time
        b"\x01s\x01b" + b"\x00" * 7,  # short time
        b"\x01s\x01b" + struct.pack("!d", 1.0) + b"!",  # a byte after the time
        b"\x01s\x01b" + struct.pack("!d", math.nan),
        b"\x01s\x01b" + struct.pack("!d", math.inf),
    ],
)
def test_placed_payload_errors_are_frame_errors(payload: bytes) -> None:
    with pytest.raises(FrameError):
        decode_placed(payload)


@given(st.binary(max_size=400))
def test_a_place_payload_decodes_to_what_encodes_it_or_is_a_frame_error(payload: bytes) -> None:
    try:
        source, home = decode_place(payload)
    except FrameError:
        return
    assert _payload(encode_place(source, home)) == payload


@given(st.binary(max_size=400))
def test_a_placed_payload_decodes_to_what_encodes_it_or_is_a_frame_error(payload: bytes) -> None:
    try:
        source, home, at = decode_placed(payload)
    except FrameError:
        return
    assert _payload(encode_placed(source, home, at)) == payload
