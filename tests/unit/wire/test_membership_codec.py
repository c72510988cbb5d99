"""Tests of the membership frame payload codec (lb/wire/membership.py) against docs/membership.md.

Golden bytes are written by hand from the layout in the doc; property tests
check round trips through the link frame decoder and that any input makes the
decoders either answer or raise FrameError, nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import FrameError
from lb.wire.frames import Frame, FrameDecoder, encode_frame
from lb.wire.membership import (
    MAX_NAME,
    MAX_STATES,
    NODE_STATE,
    PROBE_REQUEST,
    PROBE_RESULT,
    MemberState,
    NodeState,
    ProbeRequest,
    ProbeResult,
    encode_node_state,
    encode_node_state_frame,
    encode_probe_request,
    encode_probe_request_frame,
    encode_probe_result,
    encode_probe_result_frame,
    parse_membership_frame,
    parse_node_state,
    parse_probe_request,
    parse_probe_result,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


def decode_all(data: bytes) -> list[Frame]:
    dec = FrameDecoder()
    frames = dec.feed(data)
    assert dec.buffered() == 0
    return frames


# --- golden bytes -------------------------------------------------------------------------------


def test_frame_types_and_state_codes_match_the_doc() -> None:
    assert (NODE_STATE, PROBE_REQUEST, PROBE_RESULT) == (0x48, 0x49, 0x4A)
    codes = {s.name: s.value for s in MemberState}
    assert codes == {"UNKNOWN": 0, "ALIVE": 1, "SUSPECT": 2, "DEAD": 3, "DRAINING": 4, "LEFT": 5}


def test_node_state_golden() -> None:
    states = [
        NodeState("node-a", MemberState.ALIVE, 1),
        NodeState("b", MemberState.DEAD, 2**32),
    ]
    payload = h(
        "00 02 06 6e 6f 64 65 2d 61 01 00 00 00 00 00 00 00 01 01 62 03 00 00 00 01 00 00 00 00"
    )
    assert encode_node_state(states) == payload
    frame = h("01 48 00 0c 00 00 00 00 00 00 00 1d") + payload
    assert encode_node_state_frame(states) == frame
    assert parse_node_state(payload) == states
    (decoded,) = decode_all(frame)
    assert parse_membership_frame(decoded) == states


def test_probe_request_golden() -> None:
    payload = h("06 6e 6f 64 65 2d 63 00 00 00 00 00 00 30 39")
    assert encode_probe_request("node-c", 12345) == payload
    frame = h("01 49 00 0c 00 00 00 00 00 00 00 0f") + payload
    assert encode_probe_request_frame("node-c", 12345) == frame
    (decoded,) = decode_all(frame)
    assert parse_membership_frame(decoded) == ProbeRequest("node-c", 12345)


def test_probe_result_golden() -> None:
    payload = h("06 6e 6f 64 65 2d 63 ff ff ff ff ff ff ff ff 01")
    assert encode_probe_result("node-c", 2**64 - 1, True) == payload
    frame = h("01 4a 00 0c 00 00 00 00 00 00 00 10") + payload
    assert encode_probe_result_frame("node-c", 2**64 - 1, True) == frame
    (decoded,) = decode_all(frame)
    assert parse_membership_frame(decoded) == ProbeResult("node-c", 2**64 - 1, True)
    assert parse_probe_result(payload[:-1] + b"\x00") == ProbeResult("node-c", 2**64 - 1, False)


def test_empty_batch_is_one_frame_with_count_zero() -> None:
    assert encode_node_state([]) == b"\x00\x00"
    assert parse_node_state(b"\x00\x00") == []
    (frame,) = decode_all(encode_node_state_frame([]))
    assert parse_membership_frame(frame) == []


def test_utf8_names_are_counted_in_bytes() -> None:
    name = "nœud-é"  # 6 characters, 8 bytes
    payload = encode_probe_request(name, 7)
    assert payload[0] == 8
    assert parse_probe_request(payload) == ProbeRequest(name, 7)


# --- round trips --------------------------------------------------------------------------------

# At most 40 characters of at most 4 bytes: always within MAX_NAME; no lone surrogates.
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
wire_states = st.sampled_from([s for s in MemberState if s is not MemberState.UNKNOWN])
incarnations = st.integers(min_value=0, max_value=2**64 - 1)
entries = st.builds(NodeState, names, wire_states, incarnations)


@settings(max_examples=300)
@given(st.lists(entries, max_size=20))
def test_node_state_round_trip(states: list[NodeState]) -> None:
    data = encode_node_state_frame(states)
    (frame,) = decode_all(data)
    assert frame.type == NODE_STATE and frame.flow_id == 0
    assert parse_membership_frame(frame) == states


@settings(max_examples=300)
@given(names, incarnations, st.booleans())
def test_probe_round_trip(target: str, nonce: int, alive: bool) -> None:
    req, res = decode_all(
        encode_probe_request_frame(target, nonce) + encode_probe_result_frame(target, nonce, alive)
    )
    assert parse_membership_frame(req) == ProbeRequest(target, nonce)
    assert parse_membership_frame(res) == ProbeResult(target, nonce, alive)


def test_large_batches_split_into_frames_of_at_most_max_states() -> None:
    states = [NodeState(f"n{i}", MemberState.ALIVE, i) for i in range(MAX_STATES * 2 + 3)]
    frames = decode_all(encode_node_state_frame(states))
    assert len(frames) == 3
    parsed = [parse_membership_frame(f) for f in frames]
    assert [len(p) for p in parsed if isinstance(p, list)] == [MAX_STATES, MAX_STATES, 3]
    assert [e for p in parsed if isinstance(p, list) for e in p] == states


def test_the_largest_batch_fits_one_frame() -> None:
    states = [
        NodeState("x" * (MAX_NAME - 3) + f"{i:03d}", MemberState.DEAD, 2**64 - 1)
        for i in range(MAX_STATES)
    ]
    (frame,) = decode_all(encode_node_state_frame(states))
    assert parse_membership_frame(frame) == states


# --- decoder rejects --------------------------------------------------------------------------

GOOD_STATE = encode_node_state([NodeState("node-a", MemberState.SUSPECT, 5)])
GOOD_REQUEST = encode_probe_request("node-a", 9)
GOOD_RESULT = encode_probe_result("node-a", 9, False)


@pytest.mark.parametrize(
    ("parse", "good"),
    [
        (parse_node_state, GOOD_STATE),
        (parse_probe_request, GOOD_REQUEST),
        (parse_probe_result, GOOD_RESULT),
    ],
)
def test_every_truncation_and_extension_is_a_frame_error(
    parse: Callable[[bytes], object], good: bytes
) -> None:
    parse(good)
    for cut in range(len(good)):
        with pytest.raises(FrameError):
            parse(good[:cut])
    with pytest.raises(FrameError):
        parse(good + b"\x00")


@pytest.mark.parametrize(
    "payload",
    [
        h("02 01"),  # count above MAX_STATES (513)
        h("00 01 00 01 00 00 00 00 00 00 00 00"),  # empty name
        h("00 01 02 c3 28 01 00 00 00 00 00 00 00 00"),  # name not UTF-8
        h("00 01 01 61 00 00 00 00 00 00 00 00 00"),  # state code 0 (UNKNOWN is local only)
        h("00 01 01 61 06 00 00 00 00 00 00 00 00"),  # state code 6 is undefined
        h("00 02 01 61 01 00 00 00 00 00 00 00 00"),  # count says 2, one entry present
        h("00 01 09 61"),  # name runs past the payload
    ],
)
def test_bad_node_state_payloads(payload: bytes) -> None:
    with pytest.raises(FrameError):
        parse_node_state(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        h("00 00 00 00 00 00 00 00 00"),  # empty target
        h("01 ff 00 00 00 00 00 00 00 00"),  # target not UTF-8
    ],
)
def test_bad_probe_payloads(payload: bytes) -> None:
    with pytest.raises(FrameError):
        parse_probe_request(payload)
    with pytest.raises(FrameError):
        parse_probe_result(payload + b"\x01")


def test_probe_result_alive_byte_must_be_0_or_1() -> None:
    for flag in (2, 0x80, 0xFF):
        with pytest.raises(FrameError):
            parse_probe_result(GOOD_RESULT[:-1] + bytes((flag,)))


def test_membership_frames_must_use_flow_zero() -> None:
    frame = Frame(PROBE_REQUEST, 0, 7, GOOD_REQUEST)
    with pytest.raises(FrameError):
        parse_membership_frame(frame)


def test_flags_are_ignored_and_other_types_are_not_ours() -> None:
    assert parse_membership_frame(Frame(PROBE_REQUEST, 0xFF, 0, GOOD_REQUEST)) == ProbeRequest(
        "node-a", 9
    )
    assert parse_membership_frame(Frame(0x40, 0, 0, GOOD_REQUEST)) is None
    assert parse_membership_frame(Frame(0x4B, 0, 0, b"")) is None
    assert parse_membership_frame(Frame(0x07, 0, 0, bytes(12))) is None


def test_decoders_accept_bytearray_and_memoryview() -> None:
    for wrap in (bytearray, memoryview):
        assert parse_node_state(wrap(GOOD_STATE)) == [NodeState("node-a", MemberState.SUSPECT, 5)]
        assert parse_probe_request(wrap(GOOD_REQUEST)) == ProbeRequest("node-a", 9)
        assert parse_probe_result(wrap(GOOD_RESULT)) == ProbeResult("node-a", 9, False)


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_any_bytes_answer_or_frame_error(data: bytes) -> None:
    for parse in (parse_node_state, parse_probe_request, parse_probe_result):
        with contextlib.suppress(FrameError):
            parse(data)


@settings(max_examples=300)
@given(st.lists(entries, min_size=1, max_size=5), st.data())
def test_one_corrupted_byte_answers_or_frame_error(
    states: list[NodeState], data: st.DataObject
) -> None:
    payload = bytearray(encode_node_state(states))
    pos = data.draw(st.integers(0, len(payload) - 1))
    payload[pos] = data.draw(st.integers(0, 255))
    try:
        parsed = parse_node_state(bytes(payload))
    except FrameError:
        return
    assert encode_node_state(parsed) == bytes(payload)


# --- encoder arguments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        NodeState("", MemberState.ALIVE, 0),
        NodeState("x" * (MAX_NAME + 1), MemberState.ALIVE, 0),
        NodeState("\ud800", MemberState.ALIVE, 0),
        NodeState("a", MemberState.UNKNOWN, 0),
        NodeState("a", MemberState.ALIVE, -1),
        NodeState("a", MemberState.ALIVE, 2**64),
        NodeState("a", MemberState.ALIVE, True),
    ],
)
def test_encoder_rejects_bad_entries(entry: NodeState) -> None:
    with pytest.raises(ValueError):
        encode_node_state([entry])


def test_encoder_rejects_too_many_entries_in_one_payload() -> None:
    with pytest.raises(ValueError):
        encode_node_state([NodeState("a", MemberState.ALIVE, 0)] * (MAX_STATES + 1))


def test_probe_encoders_reject_bad_arguments() -> None:
    for target, nonce in (("", 1), ("a", -1), ("a", 2**64), ("a", False)):
        with pytest.raises(ValueError):
            encode_probe_request(target, nonce)
    with pytest.raises(ValueError):
        encode_probe_result("a", 1, 1)  # type: ignore[arg-type]
    encode_frame(Frame(PROBE_RESULT, 0, 0, encode_probe_result("a", 1, False)))
