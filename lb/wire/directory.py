"""DIRECTORY_UPDATE codec: the link control frame that replicates directory entries.

A DIRECTORY_UPDATE is an extension frame (type 0x40, flow id 0, no flags) whose
payload is a batch of learned ``identifier -> home`` entries; the layout is in
docs/directory.md. Types 0x41-0x47 are reserved for later directory frames and
are not used.

This module is pure: no sockets, no asyncio, no clock. It defines
``DirectoryEntry`` (the directory in ``lb.routing.directory`` re-exports it, so
the codec does not depend on a higher layer). Encoders take lb's own entries and
raise ValueError for an entry that does not fit the layout; the decoder is fed
network input and raises only FrameError.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from lb.errors import FrameError
from lb.wire.frames import MAX_PAYLOAD, Frame, encode_frame

__all__ = [
    "DIRECTORY_RESERVED",
    "DIRECTORY_UPDATE",
    "MAX_ENTRIES_PER_FRAME",
    "MAX_HOME_BYTES",
    "MAX_KEY_BYTES",
    "DirectoryEntry",
    "decode_directory_update",
    "encode_directory_frames",
    "encode_directory_payloads",
    "entry_size",
]

DIRECTORY_UPDATE = 0x40
"""Extension frame type of a batch of directory entries (flow id 0)."""
DIRECTORY_RESERVED = range(0x41, 0x48)
"""Extension frame types reserved for the directory; not used by this version."""

MAX_KEY_BYTES = 0xFFFF
"""The largest key the layout can carry (u16 length); the directory itself keeps keys of
at most 512 bytes and ignores longer ones."""
MAX_HOME_BYTES = 0xFF
"""The largest home name the layout can carry (u8 length)."""
MAX_ENTRIES_PER_FRAME = 0xFFFF
"""The u16 count field."""

_U16 = struct.Struct("!H")
_TAIL = struct.Struct("!QQ")  # version, expires
_U64_MAX = 2**64 - 1
_COUNT_SIZE = _U16.size
_ENTRY_FIXED = 2 + 1 + _TAIL.size  # key length, home length, version, expires
_MIN_ENTRY = _ENTRY_FIXED + 2  # a key and a home of one byte each


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One learned identifier -> home entry."""

    key: str
    """``f"{identifier.kind}:{identifier.value}"``, e.g. ``"cookie:JSESSIONID=abc123"``."""
    home: str
    """The node name of the home."""
    version: int
    """Newest wins: the learning node's wall clock in ms, strictly increasing per node."""
    expires: int
    """Unix seconds; the entry is dead once ``expires <= now``."""


def _entry_bytes(entry: DirectoryEntry) -> bytes:
    """The wire form of one entry; ValueError if it does not fit the layout."""
    try:
        key = entry.key.encode("utf-8")
        home = entry.home.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"directory entry is not encodable as UTF-8: {entry!r}") from None
    if not 0 < len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"directory key must be 1..{MAX_KEY_BYTES} bytes, got {len(key)}")
    if not 0 < len(home) <= MAX_HOME_BYTES:
        raise ValueError(f"directory home must be 1..{MAX_HOME_BYTES} bytes, got {len(home)}")
    if not 0 <= entry.version <= _U64_MAX or not 0 <= entry.expires <= _U64_MAX:
        raise ValueError(f"directory version and expires must be u64: {entry!r}")
    return (
        _U16.pack(len(key))
        + key
        + bytes((len(home),))
        + home
        + _TAIL.pack(entry.version, entry.expires)
    )


def entry_size(entry: DirectoryEntry) -> int:
    """Bytes one entry takes in a DIRECTORY_UPDATE payload."""
    return _ENTRY_FIXED + len(entry.key.encode("utf-8")) + len(entry.home.encode("utf-8"))


def encode_directory_payloads(entries: Iterable[DirectoryEntry]) -> list[bytes]:
    """DIRECTORY_UPDATE payloads holding ``entries`` in order, each <= MAX_PAYLOAD bytes
    and <= MAX_ENTRIES_PER_FRAME entries; ``[]`` for no entries."""
    payloads: list[bytes] = []
    parts: list[bytes] = []
    size = _COUNT_SIZE

    def close() -> None:
        payloads.append(_U16.pack(len(parts)) + b"".join(parts))

    for entry in entries:
        raw = _entry_bytes(entry)
        if parts and (size + len(raw) > MAX_PAYLOAD or len(parts) == MAX_ENTRIES_PER_FRAME):
            close()
            parts = []
            size = _COUNT_SIZE
        parts.append(raw)
        size += len(raw)
    if parts:
        close()
    return payloads


def encode_directory_frames(entries: Iterable[DirectoryEntry]) -> list[bytes]:
    """Complete DIRECTORY_UPDATE frames (flow id 0, no flags) carrying ``entries``.

    Entries are split over as many frames as needed so that each payload stays
    within MAX_PAYLOAD; ``[]`` for no entries. ValueError for an entry that does
    not fit the layout (empty or too long key or home, version or expires outside u64).
    """
    return [
        encode_frame(Frame(DIRECTORY_UPDATE, 0, 0, payload))
        for payload in encode_directory_payloads(entries)
    ]


def decode_directory_update(payload: bytes) -> list[DirectoryEntry]:
    """The entries of a DIRECTORY_UPDATE payload, in order.

    Raises FrameError (only) for a malformed payload: shorter than the count,
    an entry cut short, a zero-length key or home, a key or home that is not
    UTF-8, or bytes left after ``count`` entries. Work is linear in the payload.
    """
    buf = bytes(payload)
    n = len(buf)
    if n < _COUNT_SIZE:
        raise FrameError(f"DIRECTORY_UPDATE payload of {n} bytes: the u16 count needs 2")
    (count,) = _U16.unpack_from(buf, 0)
    if count * _MIN_ENTRY > n - _COUNT_SIZE:
        raise FrameError(
            f"DIRECTORY_UPDATE count {count} cannot fit in {n - _COUNT_SIZE} bytes of entries"
        )
    entries: list[DirectoryEntry] = []
    pos = _COUNT_SIZE
    for index in range(count):
        if pos + 2 > n:
            raise FrameError(f"DIRECTORY_UPDATE entry {index} truncated in its key length")
        (key_len,) = _U16.unpack_from(buf, pos)
        pos += 2
        if key_len == 0:
            raise FrameError(f"DIRECTORY_UPDATE entry {index} has an empty key")
        key_end = pos + key_len
        if key_end + 1 > n:
            raise FrameError(f"DIRECTORY_UPDATE entry {index} truncated in its key")
        home_len = buf[key_end]
        if home_len == 0:
            raise FrameError(f"DIRECTORY_UPDATE entry {index} has an empty home")
        home_end = key_end + 1 + home_len
        if home_end + _TAIL.size > n:
            raise FrameError(f"DIRECTORY_UPDATE entry {index} truncated in its home or numbers")
        try:
            key = buf[pos:key_end].decode("utf-8")
            home = buf[key_end + 1 : home_end].decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(f"DIRECTORY_UPDATE entry {index}: key or home not UTF-8") from None
        version, expires = _TAIL.unpack_from(buf, home_end)
        pos = home_end + _TAIL.size
        entries.append(DirectoryEntry(key, home, int(version), int(expires)))
    if pos != n:
        raise FrameError(
            f"DIRECTORY_UPDATE has {n - pos} bytes after its {count} entries (count mismatch)"
        )
    return entries
