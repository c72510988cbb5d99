"""Coverage-guided fuzz target for the link frame decoder (atheris).

Not collected by pytest (no test_ prefix) and not needed by the test suite.
Run after `pip install atheris`:

    .venv/bin/python tests/fuzz/fuzz_frames.py -max_total_time=60

The input is split into chunks (sizes taken from the input itself) and fed to a
FrameDecoder. Allowed outcomes: frames, or FrameError. Every frame returned
must re-encode to bytes that decode to the same frame, and decode_frame on the
whole input must agree with the incremental decoder.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from lb.errors import FrameError
    from lb.wire.frames import (
        MAX_FRAME_SIZE,
        Frame,
        FrameDecoder,
        FrameType,
        decode_frame,
        encode_frame,
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
        return frames, True
    return frames, False


def _whole(data: bytes) -> tuple[list[Frame], bool]:
    frames: list[Frame] = []
    offset = 0
    try:
        while (result := decode_frame(data, offset)) is not None:
            frame, offset = result
            frames.append(frame)
    except FrameError:
        return frames, True
    return frames, False


def fuzz_one_input(raw: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(raw)
    sizes = [fdp.ConsumeIntInRange(1, 4096) for _ in range(fdp.ConsumeIntInRange(0, 8))]
    data = fdp.ConsumeBytes(fdp.remaining_bytes())
    frames, failed = _incremental(data, sizes)
    ref_frames, ref_failed = _whole(data)
    if failed != ref_failed or (not failed and frames != ref_frames):
        raise AssertionError("incremental and whole-buffer decoding disagree")
    for frame in frames:
        if frame.type == FrameType.RESET:
            parse_reset(frame.payload)
        elif frame.type == FrameType.WINDOW:
            parse_window(frame.payload)
        elif frame.type in (FrameType.PING, FrameType.PONG):
            parse_ping(frame.payload)
        elif frame.type == FrameType.HELLO:
            parse_hello(frame.payload)
        again = decode_frame(encode_frame(frame))
        if again is None or again[0] != frame:
            raise AssertionError(f"{frame!r} does not round-trip")


def main() -> None:
    atheris.Setup(sys.argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
