"""Tests of lb.wire.directory: DIRECTORY_UPDATE golden bytes, round trip, splitting, garbage."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import FrameError
from lb.wire.directory import (
    DIRECTORY_RESERVED,
    DIRECTORY_UPDATE,
    DirectoryEntry,
    decode_directory_update,
    encode_directory_frames,
)
from lb.wire.frames import HEADER_SIZE, MAX_PAYLOAD, FrameDecoder

ENTRY = DirectoryEntry("cookie:JSESSIONID=abc123", "node-b", 1_700_000_000_123, 1_700_003_600)

# Written by hand from the layout in docs/directory.md.
GOLDEN_ONE = bytes.fromhex(
    "01 40 00 0c 00 00 00 00 00 00 00 33"  # version 1, type 0x40, flags 0, hlen 12, flow 0, 51
    "00 01"  # one entry
    "00 18"  # key length 24
    "63 6f 6f 6b 69 65 3a 4a 53 45 53 53 49 4f 4e 49 44 3d 61 62 63 31 32 33"  # the key
    "06 6e 6f 64 65 2d 62"  # home length 6, "node-b"
    "00 00 01 8b cf e5 68 7b"  # version 1700000000123
    "00 00 00 00 65 53 ff 10"  # expires 1700003600
)

GOLDEN_TWO_PAYLOAD = bytes.fromhex(
    "00 02"
    "00 0f 74 6c 73 2d 74 69 63 6b 65 74 3a 30 30 66 66"  # "tls-ticket:00ff"
    "05 6e c5 93 75 64"  # "nœud", 5 bytes of UTF-8
    "00 00 00 00 00 00 00 01"
    "ff ff ff ff ff ff ff ff"
    "00 01 6b"  # "k"
    "01 61"  # "a"
    "00 00 00 00 00 00 00 00"
    "00 00 00 00 00 00 00 00"
)
TWO = [
    DirectoryEntry("tls-ticket:00ff", "nœud", 1, 2**64 - 1),
    DirectoryEntry("k", "a", 0, 0),
]


def payload_of(frame: bytes) -> bytes:
    frames = FrameDecoder().feed(frame)
    assert len(frames) == 1
    assert frames[0].type == DIRECTORY_UPDATE and frames[0].flow_id == 0 and frames[0].flags == 0
    return frames[0].payload


def test_type_and_reserved_range() -> None:
    assert DIRECTORY_UPDATE == 0x40
    assert list(DIRECTORY_RESERVED) == [0x45, 0x46, 0x47]  # 0x41-0x44: the owner frames


def test_golden_one_entry() -> None:
    assert encode_directory_frames([ENTRY]) == [GOLDEN_ONE]
    assert decode_directory_update(GOLDEN_ONE[HEADER_SIZE:]) == [ENTRY]


def test_golden_two_entries_extremes_and_utf8() -> None:
    [frame] = encode_directory_frames(TWO)
    assert payload_of(frame) == GOLDEN_TWO_PAYLOAD
    assert decode_directory_update(GOLDEN_TWO_PAYLOAD) == TWO


def test_no_entries_no_frames() -> None:
    assert encode_directory_frames([]) == []
    assert decode_directory_update(b"\x00\x00") == []


text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)
entries = st.builds(
    DirectoryEntry,
    key=text,
    home=text.filter(lambda s: len(s.encode("utf-8")) <= 255),
    version=st.integers(0, 2**64 - 1),
    expires=st.integers(0, 2**64 - 1),
)


@given(st.lists(entries, max_size=15))
@settings(max_examples=200)
def test_round_trip(batch: list[DirectoryEntry]) -> None:
    frames = encode_directory_frames(batch)
    decoded: list[DirectoryEntry] = []
    for frame in frames:
        decoded += decode_directory_update(payload_of(frame))
    assert decoded == batch


def test_splitting_keeps_every_payload_under_max_payload() -> None:
    batch = [
        DirectoryEntry(f"cookie:SID={i:0500d}", f"node-{i % 7}", i, 2_000_000_000 + i)
        for i in range(1200)
    ]  # about 630 KB of entries
    frames = encode_directory_frames(batch)
    assert len(frames) == 3
    decoded: list[DirectoryEntry] = []
    decoder = FrameDecoder()
    for frame in decoder.feed(b"".join(frames)):
        assert len(frame.payload) <= MAX_PAYLOAD
        decoded += decode_directory_update(frame.payload)
    assert decoded == batch
    # greedy: each frame but the last could not take the next entry
    first = payload_of(frames[0])
    (count,) = struct.unpack_from("!H", first)
    next_size = 2 + len(batch[count].key) + 1 + len(batch[count].home) + 16
    assert len(first) + next_size > MAX_PAYLOAD


def test_splitting_respects_the_u16_count() -> None:
    batch = [DirectoryEntry("k", "a", i, i) for i in range(70_000)]  # 21 bytes each
    frames = encode_directory_frames(batch)
    counts = [struct.unpack_from("!H", payload_of(f))[0] for f in frames]
    assert sum(counts) == 70_000
    assert max(counts) <= 0xFFFF
    assert all(len(payload_of(f)) <= MAX_PAYLOAD for f in frames)


@pytest.mark.parametrize(
    "bad",
    [
        DirectoryEntry("", "a", 1, 1),
        DirectoryEntry("k", "", 1, 1),
        DirectoryEntry("k", "h" * 256, 1, 1),
        DirectoryEntry("k" * 65536, "a", 1, 1),
        DirectoryEntry("k", "a", -1, 1),
        DirectoryEntry("k", "a", 1, 2**64),
        DirectoryEntry("k\udc80", "a", 1, 1),
    ],
)
def test_encoder_refuses_entries_that_do_not_fit(bad: DirectoryEntry) -> None:
    with pytest.raises(ValueError):
        encode_directory_frames([bad])


# -- malformed payloads: FrameError only ----------------------------------------------

ONE_PAYLOAD = GOLDEN_ONE[HEADER_SIZE:]


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "no count"),
        (b"\x00", "half a count"),
        (ONE_PAYLOAD[:-1], "truncated expires"),
        (ONE_PAYLOAD[:10], "truncated key"),
        (ONE_PAYLOAD[:4], "key length only"),
        (ONE_PAYLOAD + b"\x00", "trailing byte"),
        (b"\x00\x02" + ONE_PAYLOAD[2:], "count says two, one present"),
        (b"\x00\x00" + ONE_PAYLOAD[2:], "count says zero, one present"),
        (b"\x00\x01\x00\x00\x01a" + bytes(16), "empty key"),
        (b"\x00\x01\x00\x01k\x00" + bytes(16), "empty home"),
        (b"\x00\x01\x00\x01\xff\x01a" + bytes(16), "key not UTF-8"),
        (b"\x00\x01\x00\x01k\x01\xc3" + bytes(16), "home not UTF-8"),
        (b"\x00\x01\x00\x01k\x05ab" + bytes(16), "home length past the end"),
        (b"\xff\xff" + bytes(30), "count far beyond the payload"),
    ],
)
def test_malformed_payloads_raise_frame_error(payload: bytes, why: str) -> None:
    with pytest.raises(FrameError):
        decode_directory_update(payload)


@given(st.binary(max_size=200))
@settings(max_examples=500)
def test_garbage_raises_only_frame_error(payload: bytes) -> None:
    try:
        result = decode_directory_update(payload)
    except FrameError:
        return
    # a payload that decodes re-encodes to itself
    if result:
        assert b"".join(payload_of(f) for f in encode_directory_frames(result)) == payload
    else:
        assert payload == b"\x00\x00"


@given(st.binary(min_size=1, max_size=60), st.data())
@settings(max_examples=300)
def test_mutated_golden_raises_only_frame_error(noise: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(GOLDEN_TWO_PAYLOAD)))
    mutated = GOLDEN_TWO_PAYLOAD[:at] + noise + GOLDEN_TWO_PAYLOAD[at + len(noise) :]
    with contextlib.suppress(FrameError):
        decode_directory_update(mutated)
