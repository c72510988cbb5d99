"""Microbenchmark of the link frame codec (lb/wire/frames.py) on the DATA hot path.

Prints nanoseconds per operation:
- encode_data + decode of one 1 KiB DATA frame,
- data_header + decode of one 1 KiB DATA frame (the header-only write path),
- FrameDecoder.feed of 64 coalesced 1 KiB DATA frames (one read holding many frames),
- the same 64 frames split over reads of 16 KiB (frames straddle reads).

Run: .venv/bin/python bench/micro_frames.py [--rounds N]. A script, not a test: it
measures this machine only; compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from lb.wire.frames import FrameDecoder, data_header, decode_frame, encode_data

PAYLOAD = bytes(range(256)) * 4  # 1 KiB
BATCH = 64


def best_ns(fn: Callable[[], object], inner: int, rounds: int) -> float:
    """Best mean ns per call of ``fn`` over ``rounds`` runs of ``inner`` calls."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter_ns() - start) / inner)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    def encode_decode() -> object:
        return decode_frame(encode_data(7, PAYLOAD))

    def header_decode() -> object:
        return decode_frame(data_header(7, len(PAYLOAD)) + PAYLOAD)

    stream = encode_data(7, PAYLOAD) * BATCH
    decoder = FrameDecoder()

    def feed_batch() -> object:
        frames = decoder.feed(stream)
        assert len(frames) == BATCH
        return frames

    chunks = [stream[i : i + 16384] for i in range(0, len(stream), 16384)]

    def feed_split() -> object:
        n = 0
        for chunk in chunks:
            n += len(decoder.feed(chunk))
        assert n == BATCH
        return n

    results = [
        ("encode_data + decode_frame, 1 KiB DATA", best_ns(encode_decode, 20000, args.rounds), 1),
        ("data_header + decode_frame, 1 KiB DATA", best_ns(header_decode, 20000, args.rounds), 1),
        (f"feed() of {BATCH} coalesced 1 KiB DATA", best_ns(feed_batch, 500, args.rounds), BATCH),
        (f"feed() of {BATCH} frames in 16 KiB reads", best_ns(feed_split, 500, args.rounds), BATCH),
    ]
    for label, ns, frames in results:
        per = f"  ({ns / frames:8.0f} ns/frame)" if frames > 1 else ""
        print(f"{label:44s} {ns:10.0f} ns{per}")


if __name__ == "__main__":
    main()
