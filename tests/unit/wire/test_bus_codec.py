"""lb.wire.bus: the METRICS, ADMIN and OWN_STATE frames of the worker bus."""

from __future__ import annotations

import pytest

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
    encode_admin,
    encode_metrics,
    encode_own_state,
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
