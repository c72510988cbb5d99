"""DIRECTORY_UPDATE codec: the link control frame that replicates directory entries.

A DIRECTORY_UPDATE is an extension frame (type 0x40, flow id 0, no flags) whose
payload is a batch of learned ``identifier -> home`` entries. REGISTER (0x41) and
REGISTER_ACK (0x42) carry one learned entry to the key's owners and their answer;
LOOKUP (0x43) and LOOKUP_ANSWER (0x44) ask an owner for a key this node does not
hold. The byte layouts are in docs/protocol.md. Types 0x45-0x47 are reserved for
later directory frames and are not used.

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
    "LOOKUP",
    "LOOKUP_ANSWER",
    "MAX_ENTRIES_PER_FRAME",
    "MAX_HOME_BYTES",
    "MAX_KEY_BYTES",
    "MAX_REQUEST_KEY_BYTES",
    "OWNER_FRAMES",
    "REGISTER",
    "REGISTER_ACK",
    "DirectoryEntry",
    "Lookup",
    "LookupAnswer",
    "Register",
    "RegisterAck",
    "decode_directory_update",
    "decode_owner_frame",
    "encode_directory_frames",
    "encode_directory_payloads",
    "encode_lookup",
    "encode_lookup_answer",
    "encode_register",
    "encode_register_ack",
    "entry_size",
]

DIRECTORY_UPDATE = 0x40
"""Extension frame type of a batch of directory entries (flow id 0)."""
REGISTER = 0x41
"""A home (or the entry that saw the session start) gives one entry to a key's owner."""
REGISTER_ACK = 0x42
"""The owner's answer to a REGISTER: the home it now holds for the key."""
LOOKUP = 0x43
"""An entry asks a key's owner for the key's home."""
LOOKUP_ANSWER = 0x44
"""The owner's answer to a LOOKUP: the entry it holds, or none."""
OWNER_FRAMES = frozenset({REGISTER, REGISTER_ACK, LOOKUP, LOOKUP_ANSWER})
DIRECTORY_RESERVED = range(0x45, 0x48)
"""Extension frame types reserved for the directory; not used by this version."""

MAX_KEY_BYTES = 0xFFFF
"""The largest key the layout can carry (u16 length); the directory itself keeps keys of
at most 512 bytes and ignores longer ones."""
MAX_HOME_BYTES = 0xFF
"""The largest home name the layout can carry (u8 length)."""
MAX_ENTRIES_PER_FRAME = 0xFFFF
"""The u16 count field."""
MAX_REQUEST_KEY_BYTES = 512
"""REGISTER, LOOKUP and LOOKUP_ANSWER carry keys of at most this many bytes (the
directory's own bound); a longer one is a malformed frame."""
_U64 = struct.Struct("!Q")

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


# -- owner frames: REGISTER, REGISTER_ACK, LOOKUP, LOOKUP_ANSWER -------------------------


@dataclass(frozen=True, slots=True)
class Register:
    """REGISTER payload: request id (chosen by the sender) and the entry."""

    request_id: int
    entry: DirectoryEntry


@dataclass(frozen=True, slots=True)
class RegisterAck:
    """REGISTER_ACK payload: the request id and the home the owner now holds for the key
    (None: it holds no live entry, e.g. it refused the one registered)."""

    request_id: int
    home: str | None


@dataclass(frozen=True, slots=True)
class Lookup:
    """LOOKUP payload: request id and the key asked about."""

    request_id: int
    key: str


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    """LOOKUP_ANSWER payload: the request id and the owner's live entry, or None."""

    request_id: int
    entry: DirectoryEntry | None


OwnerMessage = Register | RegisterAck | Lookup | LookupAnswer


def _control(frame_type: int, payload: bytes) -> bytes:
    return encode_frame(Frame(frame_type, 0, 0, payload))


def _request_id(request_id: int) -> bytes:
    if not 0 <= request_id <= _U64_MAX:
        raise ValueError(f"request id must be a u64, got {request_id}")
    return _U64.pack(request_id)


def _owner_entry(entry: DirectoryEntry) -> bytes:
    raw = _entry_bytes(entry)
    if _U16.unpack_from(raw, 0)[0] > MAX_REQUEST_KEY_BYTES:
        raise ValueError(f"directory key longer than {MAX_REQUEST_KEY_BYTES} bytes")
    return raw


def _key_bytes(key: str) -> bytes:
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("directory key is not encodable as UTF-8") from None
    if not 0 < len(raw) <= MAX_REQUEST_KEY_BYTES:
        raise ValueError(f"directory key must be 1..{MAX_REQUEST_KEY_BYTES} bytes")
    return raw


def encode_register(request_id: int, entry: DirectoryEntry) -> bytes:
    """A complete REGISTER frame. ValueError for an entry or id that does not fit."""
    return _control(REGISTER, _request_id(request_id) + _owner_entry(entry))


def encode_register_ack(request_id: int, home: str | None) -> bytes:
    """A complete REGISTER_ACK frame (``home`` None: the owner holds no entry)."""
    raw = b"" if home is None else home.encode("utf-8")
    if home is not None and not 0 < len(raw) <= MAX_HOME_BYTES:
        raise ValueError(f"home must be 1..{MAX_HOME_BYTES} bytes")
    return _control(REGISTER_ACK, _request_id(request_id) + bytes((len(raw),)) + raw)


def encode_lookup(request_id: int, key: str) -> bytes:
    """A complete LOOKUP frame. ValueError for a key of 0 or more than 512 bytes."""
    raw = _key_bytes(key)
    return _control(LOOKUP, _request_id(request_id) + _U16.pack(len(raw)) + raw)


def encode_lookup_answer(request_id: int, entry: DirectoryEntry | None) -> bytes:
    """A complete LOOKUP_ANSWER frame (``entry`` None: the owner does not know the key)."""
    if entry is None:
        return _control(LOOKUP_ANSWER, _request_id(request_id) + b"\x00")
    return _control(LOOKUP_ANSWER, _request_id(request_id) + b"\x01" + _owner_entry(entry))


def _decode_entry(buf: bytes, pos: int, name: str) -> tuple[DirectoryEntry, int]:
    """One entry (the DIRECTORY_UPDATE layout, key <= 512 bytes) at ``pos``; its end."""
    n = len(buf)
    if pos + 2 > n:
        raise FrameError(f"{name} truncated in its key length")
    (key_len,) = _U16.unpack_from(buf, pos)
    if not 0 < key_len <= MAX_REQUEST_KEY_BYTES:
        raise FrameError(f"{name} key length {key_len} outside 1..{MAX_REQUEST_KEY_BYTES}")
    key_end = pos + 2 + key_len
    if key_end + 1 > n:
        raise FrameError(f"{name} truncated in its key")
    home_len = buf[key_end]
    if home_len == 0:
        raise FrameError(f"{name} has an empty home")
    home_end = key_end + 1 + home_len
    if home_end + _TAIL.size > n:
        raise FrameError(f"{name} truncated in its home or numbers")
    try:
        key = buf[pos + 2 : key_end].decode("utf-8")
        home = buf[key_end + 1 : home_end].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(f"{name}: key or home not UTF-8") from None
    version, expires = _TAIL.unpack_from(buf, home_end)
    return DirectoryEntry(key, home, int(version), int(expires)), home_end + _TAIL.size


def _decode_owner(frame_type: int, payload: bytes) -> OwnerMessage:
    buf = bytes(payload)
    n = len(buf)
    name = {REGISTER: "REGISTER", REGISTER_ACK: "REGISTER_ACK", LOOKUP: "LOOKUP"}.get(
        frame_type, "LOOKUP_ANSWER"
    )
    if n < _U64.size + 1:
        raise FrameError(f"{name} payload of {n} bytes is too short")
    (request_id,) = _U64.unpack_from(buf, 0)
    pos = _U64.size
    message: OwnerMessage
    if frame_type == REGISTER:
        entry, pos = _decode_entry(buf, pos, name)
        message = Register(request_id, entry)
    elif frame_type == REGISTER_ACK:
        home_len = buf[pos]
        end = pos + 1 + home_len
        if end > n:
            raise FrameError(f"{name} truncated in its home")
        home: str | None = None
        if home_len:
            try:
                home = buf[pos + 1 : end].decode("utf-8")
            except UnicodeDecodeError:
                raise FrameError(f"{name}: home not UTF-8") from None
        pos = end
        message = RegisterAck(request_id, home)
    elif frame_type == LOOKUP:
        if pos + 2 > n:
            raise FrameError(f"{name} truncated in its key length")
        (key_len,) = _U16.unpack_from(buf, pos)
        if not 0 < key_len <= MAX_REQUEST_KEY_BYTES:
            raise FrameError(f"{name} key length {key_len} outside 1..{MAX_REQUEST_KEY_BYTES}")
        end = pos + 2 + key_len
        if end > n:
            raise FrameError(f"{name} truncated in its key")
        try:
            key = buf[pos + 2 : end].decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(f"{name}: key not UTF-8") from None
        pos = end
        message = Lookup(request_id, key)
    else:
        found = buf[pos]
        pos += 1
        if found == 0:
            message = LookupAnswer(request_id, None)
        elif found == 1:
            entry, pos = _decode_entry(buf, pos, name)
            message = LookupAnswer(request_id, entry)
        else:
            raise FrameError(f"{name} found byte {found} is neither 0 nor 1")
    if pos != n:
        raise FrameError(f"{name} has {n - pos} bytes after its fields")
    return message


def decode_owner_frame(frame: Frame) -> OwnerMessage | None:
    """The message of a REGISTER, REGISTER_ACK, LOOKUP or LOOKUP_ANSWER frame; None for
    any other type. FrameError (only) for a malformed one: a flow id other than 0, a
    payload cut short or with bytes left over, a key of 0 or more than 512 bytes, an
    empty home in an entry, text that is not UTF-8, a found byte other than 0 or 1.
    Work is linear in the payload."""
    if frame.type not in OWNER_FRAMES:
        return None
    if frame.flow_id != 0:
        raise FrameError(f"directory frame {frame.type:#x} on flow {frame.flow_id}, not 0")
    return _decode_owner(frame.type, frame.payload)
