"""lb.wire.bus: the METRICS and ADMIN frames of the worker bus."""

from __future__ import annotations

import pytest

from lb.errors import FrameError
from lb.wire import frames as fr
from lb.wire.bus import (
    ADMIN,
    ADMIN_DRAIN,
    ADMIN_UNDRAIN,
    METRICS,
    decode_admin,
    decode_metrics,
    encode_admin,
    encode_metrics,
)


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
