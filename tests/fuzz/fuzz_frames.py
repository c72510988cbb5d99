"""Coverage-guided fuzz target for the link frame codec (atheris).

Not collected by pytest (no test_ prefix) and not needed by the test suite.
Run it through tests/fuzz/run.sh, or alone after `pip install atheris`:

    .venv/bin/python tests/fuzz/fuzz_frames.py --write-seeds /tmp/seeds-frames
    .venv/bin/python tests/fuzz/fuzz_frames.py -max_total_time=60 /tmp/corpus /tmp/seeds-frames

The input is split into chunks (sizes taken from the input itself) and fed to a
FrameDecoder. Checks, for any input:

- the outcome is frames, or FrameError (nothing else), and a decoder never holds
  MAX_FRAME_SIZE bytes or more; a failed decoder raises again on every feed;
- incremental decoding (any chunking) and decode_frame over the whole buffer agree;
- a decided prefix stays decided: the frames decoded from a prefix of the input
  are a prefix of the frames of the whole input, and a prefix that fails means
  the whole input fails after the same frames;
- every frame round-trips: encode_frame gives bytes that decode to the same
  frame and, for a frame of a defined type, exactly the bytes it was decoded
  from; with no flags set, the type's own encoder (encode_reset, encode_hello,
  ...) fed the parse_* result gives those same bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from lb.errors import FrameError
    from lb.wire.frames import (
        EXTENSION_TYPE_MIN,
        MAX_FRAME_SIZE,
        Frame,
        FrameDecoder,
        FrameType,
        decode_frame,
        encode_close,
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


def _incremental(data: bytes, sizes: list[int]) -> tuple[list[Frame], bool]:
    decoder = FrameDecoder()
    frames: list[Frame] = []
    pos = 0
    try:
        for size in [*sizes, len(data)]:
            frames.extend(decoder.feed(data[pos : pos + size]))
            pos += size
            if decoder.buffered() >= MAX_FRAME_SIZE:
                raise AssertionError(f"buffered {decoder.buffered()} bytes")
            if pos >= len(data):
                break
    except FrameError:
        try:
            decoder.feed(b"")
        except FrameError:
            return frames, True
        raise AssertionError("a failed decoder accepted more input") from None
    return frames, False


def _whole(data: bytes) -> tuple[list[tuple[Frame, int, int]], bool]:
    """(frame, start, end) of each frame decode_frame finds in ``data``; True if it fails."""
    frames: list[tuple[Frame, int, int]] = []
    offset = 0
    try:
        while (result := decode_frame(data, offset)) is not None:
            frame, end = result
            frames.append((frame, offset, end))
            offset = end
    except FrameError:
        return frames, True
    return frames, False


def _own_encoding(frame: Frame) -> bytes | None:
    """The frame encoded by its type's own encoder from the parsed payload (flags 0 only)."""
    if frame.flags != 0:
        return None
    t = frame.type
    if t == FrameType.NEW:
        assert frame.conn_ref is not None
        return encode_new(frame.flow_id, frame.conn_ref, frame.payload)
    if t == FrameType.VERIFIED:
        return encode_verified(frame.flow_id)
    if t == FrameType.CLOSE:
        return encode_close(frame.flow_id)
    if t == FrameType.RESET:
        return encode_reset(frame.flow_id, *parse_reset(frame.payload))
    if t == FrameType.WINDOW:
        return encode_window(frame.flow_id, parse_window(frame.payload))
    if t == FrameType.PING:
        return encode_ping(*parse_ping(frame.payload))
    if t == FrameType.PONG:
        return encode_pong(*parse_ping(frame.payload))
    if t == FrameType.HELLO:
        return encode_hello(*parse_hello(frame.payload))
    return None


def fuzz_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    sizes = [fdp.ConsumeIntInRange(1, 4096) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    cut = fdp.ConsumeIntInRange(0, 4096)
    data = fdp.ConsumeBytes(fdp.remaining_bytes())

    located, ref_failed = _whole(data)
    ref_frames = [frame for frame, _, _ in located]
    frames, failed = _incremental(data, sizes)
    if failed != ref_failed or (not failed and frames != ref_frames):
        raise AssertionError("incremental and whole-buffer decoding disagree")

    prefix, prefix_failed = _whole(data[: min(cut, len(data))])
    if [f for f, _, _ in prefix] != ref_frames[: len(prefix)]:
        raise AssertionError("a prefix decodes to frames the whole input does not start with")
    if prefix_failed and not (ref_failed and len(prefix) == len(located)):
        raise AssertionError("a prefix fails but the whole input does not fail there")

    for frame, start, end in located:
        encoded = encode_frame(frame)
        again = decode_frame(encoded)
        if again is None or again[0] != frame or again[1] != len(encoded):
            raise AssertionError(f"{frame!r} does not round-trip")
        if frame.type < EXTENSION_TYPE_MIN and encoded != data[start:end]:
            raise AssertionError(f"{frame!r} re-encodes to other bytes")
        own = _own_encoding(frame)
        if own is not None and own != encoded:
            raise AssertionError(f"{frame!r}: its own encoder gives other bytes")


def write_seeds(folder: str) -> None:
    """Seed inputs: every frame type alone, and all of them in one stream.

    An input is the stream, then the bytes the FuzzedDataProvider takes (from
    the end) for the prefix cut and the chunk count (0).
    """
    from lb.wire.frames import ConnRef, encode_auth, encode_data

    frames = [
        encode_new(1, ConnRef("192.0.2.1", 1, "192.0.2.2", 2, "web"), b"GET", 1),
        encode_new(2, ConnRef("2001:db8::1", 3, "2001:db8::2", 4, "s" * 64)),
        encode_data(1, b"hello"),
        encode_verified(1),
        encode_close(1),
        encode_reset(1, 4, "no service"),
        encode_window(1, 65536),
        encode_ping(1, 2),
        encode_pong(1, 2),
        encode_hello("farm", "node", bytes(16)),
        encode_auth(bytes(32)),
        encode_frame(Frame(0x41, 0x80, 5, b"ext")),
    ]
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate([*frames, b"".join(frames)]):
        (out / f"seed-{i:02d}").write_bytes(frame + b"\xff\xff\x00")


def main() -> None:
    if sys.argv[1:2] == ["--write-seeds"]:
        write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
