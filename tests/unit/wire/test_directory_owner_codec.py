"""Tests of the owner frames of lb.wire.directory: REGISTER, REGISTER_ACK, LOOKUP,
LOOKUP_ANSWER. Golden bytes written by hand from docs/protocol.md, round trips, and
garbage (hypothesis): the decoder returns a message or raises FrameError, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import FrameError
from lb.wire.directory import (
    DIRECTORY_RESERVED,
    LOOKUP,
    LOOKUP_ANSWER,
    MAX_REQUEST_KEY_BYTES,
    REGISTER,
    REGISTER_ACK,
    DirectoryEntry,
    Lookup,
    LookupAnswer,
    Register,
    RegisterAck,
    decode_owner_frame,
    encode_lookup,
    encode_lookup_answer,
    encode_register,
    encode_register_ack,
)
from lb.wire.frames import Frame, FrameDecoder

ENTRY = DirectoryEntry("cookie:abc", "node-b", 1_700_000_000_123, 1_700_003_600)
ENTRY_BYTES = (
    "00 0a 63 6f 6f 6b 69 65 3a 61 62 63"  # key length 10, "cookie:abc"
    "06 6e 6f 64 65 2d 62"  # home length 6, "node-b"
    "00 00 01 8b cf e5 68 7b"  # version 1700000000123
    "00 00 00 00 65 53 ff 10"  # expires 1700003600
)
RID = "00 00 00 00 00 00 00 07"  # request id 7

GOLDEN = [
    (encode_register(7, ENTRY), "01 41 00 0c 00 00 00 00 00 00 00 2b" + RID + ENTRY_BYTES),
    (
        encode_register_ack(7, "node-b"),
        "01 42 00 0c 00 00 00 00 00 00 00 0f" + RID + "06 6e 6f 64 65 2d 62",
    ),
    (encode_register_ack(7, None), "01 42 00 0c 00 00 00 00 00 00 00 09" + RID + "00"),
    (
        encode_lookup(7, "cookie:abc"),
        "01 43 00 0c 00 00 00 00 00 00 00 14" + RID + "00 0a 63 6f 6f 6b 69 65 3a 61 62 63",
    ),
    (encode_lookup_answer(7, None), "01 44 00 0c 00 00 00 00 00 00 00 09" + RID + "00"),
    (
        encode_lookup_answer(7, ENTRY),
        "01 44 00 0c 00 00 00 00 00 00 00 2c" + RID + "01" + ENTRY_BYTES,
    ),
]


def one_frame(data: bytes) -> Frame:
    frames = FrameDecoder().feed(data)
    assert len(frames) == 1
    return frames[0]


def test_types_and_reserved_range() -> None:
    assert (REGISTER, REGISTER_ACK, LOOKUP, LOOKUP_ANSWER) == (0x41, 0x42, 0x43, 0x44)
    assert list(DIRECTORY_RESERVED) == [0x45, 0x46, 0x47]


@pytest.mark.parametrize(("encoded", "golden"), GOLDEN)
def test_golden_bytes(encoded: bytes, golden: str) -> None:
    assert encoded == bytes.fromhex(golden)


def test_decoded_messages() -> None:
    decoded = [decode_owner_frame(one_frame(encoded)) for encoded, _ in GOLDEN]
    assert decoded == [
        Register(7, ENTRY),
        RegisterAck(7, "node-b"),
        RegisterAck(7, None),
        Lookup(7, "cookie:abc"),
        LookupAnswer(7, None),
        LookupAnswer(7, ENTRY),
    ]


def test_other_types_are_not_owner_frames() -> None:
    assert decode_owner_frame(Frame(0x40, 0, 0, b"\x00\x00")) is None
    assert decode_owner_frame(Frame(0x45, 0, 0, b"")) is None


keys = st.text(min_size=1, max_size=40).filter(lambda k: len(k.encode()) <= 512)
homes = st.text(min_size=1, max_size=20).filter(lambda h: len(h.encode()) <= 255)
u64 = st.integers(0, 2**64 - 1)
entries = st.builds(DirectoryEntry, keys, homes, u64, u64)


@given(u64, entries, st.one_of(st.none(), homes), keys)
@settings(max_examples=300)
def test_round_trip(rid: int, entry: DirectoryEntry, home: str | None, key: str) -> None:
    assert decode_owner_frame(one_frame(encode_register(rid, entry))) == Register(rid, entry)
    assert decode_owner_frame(one_frame(encode_register_ack(rid, home))) == RegisterAck(rid, home)
    assert decode_owner_frame(one_frame(encode_lookup(rid, key))) == Lookup(rid, key)
    for answer in (entry, None):
        frame = one_frame(encode_lookup_answer(rid, answer))
        assert decode_owner_frame(frame) == LookupAnswer(rid, answer)


def test_keys_are_bounded_both_ways() -> None:
    longest = "k" * MAX_REQUEST_KEY_BYTES
    assert decode_owner_frame(one_frame(encode_lookup(1, longest))) == Lookup(1, longest)
    with pytest.raises(ValueError):
        encode_lookup(1, longest + "k")
    with pytest.raises(ValueError):
        encode_register(1, DirectoryEntry(longest + "k", "a", 1, 1))
    with pytest.raises(ValueError):
        encode_lookup(1, "")
    with pytest.raises(ValueError):
        encode_register_ack(2**64, "a")
    # a 513-byte key on the wire is malformed
    payload = bytes(8) + (513).to_bytes(2, "big") + b"k" * 513
    with pytest.raises(FrameError, match="key length 513"):
        decode_owner_frame(Frame(LOOKUP, 0, 0, payload))


@pytest.mark.parametrize(
    ("frame_type", "payload", "error"),
    [
        (REGISTER, bytes(8), "too short"),
        (REGISTER, bytes(8) + b"\x00\x00", "key length 0"),
        (REGISTER, bytes(8) + b"\x00\x01k\x00" + bytes(16), "empty home"),
        (REGISTER, bytes(8) + b"\x00\x01k\x01a" + bytes(15), "truncated in its home"),
        (REGISTER, bytes(8) + b"\x00\x01k\x01a" + bytes(17), "1 bytes after"),
        (REGISTER, bytes(8) + b"\x00\x01\xff\x01a" + bytes(16), "not UTF-8"),
        (REGISTER_ACK, bytes(8) + b"\x03ab", "truncated in its home"),
        (REGISTER_ACK, bytes(8) + b"\x00x", "1 bytes after"),
        (REGISTER_ACK, bytes(8) + b"\x01\xff", "not UTF-8"),
        (LOOKUP, bytes(8) + b"\x00", "truncated in its key length"),
        (LOOKUP, bytes(8) + b"\x00\x02k", "truncated in its key"),
        (LOOKUP_ANSWER, bytes(8) + b"\x02", "neither 0 nor 1"),
        (LOOKUP_ANSWER, bytes(8) + b"\x00\x00", "1 bytes after"),
        (LOOKUP_ANSWER, bytes(8) + b"\x01", "truncated in its key length"),
    ],
)
def test_malformed_payloads(frame_type: int, payload: bytes, error: str) -> None:
    with pytest.raises(FrameError, match=error):
        decode_owner_frame(Frame(frame_type, 0, 0, payload))


def test_a_flow_id_other_than_zero_is_malformed() -> None:
    with pytest.raises(FrameError, match="flow 3"):
        decode_owner_frame(Frame(LOOKUP, 0, 3, bytes(8) + b"\x00\x01k"))


@given(st.sampled_from([REGISTER, REGISTER_ACK, LOOKUP, LOOKUP_ANSWER]), st.binary(max_size=700))
@settings(max_examples=2000)
def test_garbage_decodes_or_raises_frame_error_only(frame_type: int, payload: bytes) -> None:
    try:
        message = decode_owner_frame(Frame(frame_type, 0, 0, payload))
    except FrameError:
        return
    assert message is not None
    # whatever decodes re-encodes to the same payload (the layout has one spelling)
    encoded = {
        Register: lambda m: encode_register(m.request_id, m.entry),
        RegisterAck: lambda m: encode_register_ack(m.request_id, m.home),
        Lookup: lambda m: encode_lookup(m.request_id, m.key),
        LookupAnswer: lambda m: encode_lookup_answer(m.request_id, m.entry),
    }[type(message)](message)
    assert one_frame(encoded).payload == payload


@given(st.sampled_from([REGISTER, REGISTER_ACK, LOOKUP, LOOKUP_ANSWER]), entries, u64)
@settings(max_examples=300)
def test_every_cut_of_a_valid_payload_is_refused(
    frame_type: int, entry: DirectoryEntry, rid: int
) -> None:
    encoder = {
        REGISTER: lambda: encode_register(rid, entry),
        REGISTER_ACK: lambda: encode_register_ack(rid, entry.home),
        LOOKUP: lambda: encode_lookup(rid, entry.key),
        LOOKUP_ANSWER: lambda: encode_lookup_answer(rid, entry),
    }[frame_type]
    payload = one_frame(encoder()).payload
    for cut in range(len(payload)):
        with pytest.raises(FrameError):
            decode_owner_frame(Frame(frame_type, 0, 0, payload[:cut]))
