"""Flows on a logged-in link, in memory: docs/protocol.md (Flow life, Credit, Errors).

The entry side `a` opens flows, the home side `b` accepts them; bytes, credit,
half-close, resets, the pending timeout and the end of the link are checked as
events on each side and as frames on the wire.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import FrameError, LinkError, TableFull
from lb.link import (
    Authenticated,
    ControlFrame,
    Count,
    Event,
    FlowData,
    FlowEnded,
    FlowEof,
    FlowOpened,
    FlowReset,
    FlowVerified,
    FlowWritable,
    PeerHeard,
)
from lb.link.connection import PAUSE_LINK, PAUSE_PEER
from lb.wire import frames as fr
from lb.wire.frames import ConnRef, FrameType, ResetReason
from tests.support.fake_clock import FakeClock
from tests.support.link_pair import (
    NAME_A,
    LinkPair,
    Side,
    frames_of,
    initiator,
    logged_in_pair,
    of_type,
)

REF = ConnRef("192.0.2.10", 51000, "10.0.0.2", 8080, "web")
REF6 = ConnRef("2001:db8::10", 51000, "2001:db8::2", 8443, "shop")
W = 1000  # a small credit window, so tests cross it with little data
THRESHOLD = W // 4


def small_pair() -> LinkPair:
    """A logged-in pair whose flows have a window of W bytes each way."""
    return logged_in_pair(a={"window": W}, b={"window": W})


def open_flow(pair: LinkPair, initial: bytes = b"", flags: int = 0) -> int:
    """a opens a flow, b accepts it; both sides hold it in the forward table."""
    flow_id, keep_reading = pair.a.open_flow(REF, initial, flags, pair.clock.now)
    assert keep_reading
    pair.pump()
    pair.record("b", pair.b.accept_flow(flow_id))
    pair.pump()
    return flow_id


def data_of(events: list[Event], flow_id: int) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, FlowData) and e.flow_id == flow_id)


def flow_of(event: Event) -> int:
    flow_id = getattr(event, "flow_id", -1)
    assert isinstance(flow_id, int)
    return flow_id


def frame_types(chunks: list[bytes]) -> list[int]:
    return [f.type for f in frames_of(chunks)]


def sent_payload(pair: LinkPair, side: Side, flow_id: int) -> int:
    """Payload bytes of NEW and DATA `side` put on the wire for `flow_id` (up to the last
    collect: pump and deliver collect first)."""
    frames = frames_of([bytes(pair.sent_log[side])])
    return sum(
        len(f.payload)
        for f in frames
        if f.flow_id == flow_id and f.type in (FrameType.NEW, FrameType.DATA)
    )


# -- open, verify, data ------------------------------------------------------------


def test_open_verify_and_data_both_ways() -> None:
    pair = logged_in_pair()
    now = pair.clock.now
    flow_id, keep = pair.a.open_flow(REF, b"GET / HTTP/1.1\r\n\r\n", fr.FLAG_NEW_SESSION, now)
    assert (flow_id, keep) == (1, True)
    assert pair.a.tables.is_pending(1)
    # NEW carries flags, the reference and the first bytes, byte for byte
    new_frame = b"".join(pair.a.data_to_send())
    assert new_frame == fr.encode_new(1, REF, b"GET / HTTP/1.1\r\n\r\n", fr.FLAG_NEW_SESSION)
    events = pair.inject("b", new_frame)
    assert events == [FlowOpened(1, REF, fr.FLAG_NEW_SESSION)]  # bytes held until accepted
    assert pair.b.tables.is_pending(1)
    accepted = pair.record("b", pair.b.accept_flow(1))
    assert accepted == [FlowData(1, b"GET / HTTP/1.1\r\n\r\n")]
    pair.collect()
    assert frame_types([bytes(pair.wire["b"])])[0] == FrameType.VERIFIED  # the home's first frame
    got_a, _ = pair.pump()
    assert got_a == [FlowVerified(1)]
    assert not pair.a.tables.is_pending(1) and pair.a.has_flow(1)
    assert pair.a.send(1, b"more request")
    assert pair.b.send(1, b"HTTP/1.1 200 OK\r\n\r\n")
    got_a, got_b = pair.pump()
    assert got_b == [FlowData(1, b"more request")]
    assert got_a == [FlowData(1, b"HTTP/1.1 200 OK\r\n\r\n")]


def test_flow_ids_count_up_from_one_and_are_never_reused() -> None:
    pair = logged_in_pair()
    ids = []
    for _ in range(3):
        flow_id = open_flow(pair)
        ids.append(flow_id)
        pair.a.reset(flow_id, int(ResetReason.CLIENT_ABORT))
        pair.pump()
    assert ids == [1, 2, 3]
    assert pair.a.flow_count() == 0 and pair.b.flow_count() == 0


def test_ipv6_reference_and_empty_first_bytes() -> None:
    pair = logged_in_pair()
    flow_id, _ = pair.a.open_flow(REF6, b"", 0, pair.clock.now)
    _, got_b = pair.pump()
    assert got_b == [FlowOpened(flow_id, REF6, 0)]
    assert pair.b.accept_flow(flow_id) == []


def test_entry_may_send_before_verified() -> None:
    pair = logged_in_pair()
    flow_id, _ = pair.a.open_flow(REF, b"one ", 0, pair.clock.now)
    assert pair.a.send(flow_id, b"two ")
    assert pair.a.send(flow_id, b"three")
    _, got_b = pair.pump()
    assert got_b == [FlowOpened(flow_id, REF, 0)]
    assert pair.b.accept_flow(flow_id) == [
        FlowData(flow_id, b"one "),
        FlowData(flow_id, b"two "),
        FlowData(flow_id, b"three"),
    ]


def test_large_sends_are_cut_at_max_payload() -> None:
    pair = logged_in_pair(a={"window": 3 * fr.MAX_PAYLOAD}, b={"window": 3 * fr.MAX_PAYLOAD})
    big = random.Random(1).randbytes(2 * fr.MAX_PAYLOAD + 5)
    flow_id, keep = pair.a.open_flow(REF, big, 0, pair.clock.now)
    assert keep
    frames = frames_of(pair.a.data_to_send())
    assert [len(f.payload) for f in frames] == [fr.MAX_PAYLOAD, fr.MAX_PAYLOAD, 5]
    events = pair.inject("b", b"".join(fr.encode_frame(f) for f in frames))
    assert isinstance(events[0], FlowOpened)
    assert data_of(pair.b.accept_flow(flow_id), flow_id) == big


# -- credit ------------------------------------------------------------------------------


def test_sender_stops_at_the_window_and_resumes_on_window() -> None:
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.b.pause_flow(flow_id, PAUSE_PEER)  # b's endpoint takes no more: no credit
    payload = random.Random(2).randbytes(3 * W + 123)
    assert pair.a.send(flow_id, payload) is False  # pause the source
    _, got_b = pair.pump()
    assert len(data_of(got_b, flow_id)) == W  # exactly the window, not a byte more
    assert sent_payload(pair, "a", flow_id) == W
    assert not of_type(pair.events["a"], FlowWritable)
    pair.b.resume_flow(flow_id, PAUSE_PEER)
    # the first WINDOW lets one more window out; the queue is not empty yet: no FlowWritable
    assert pair.deliver("b") == []
    pair.collect()
    assert sent_payload(pair, "a", flow_id) == 2 * W
    got_a, got_b = pair.pump()
    assert data_of(pair.events["b"], flow_id) == payload
    assert got_a.count(FlowWritable(flow_id)) == 1  # once, when the queue drained
    assert pair.a.send(flow_id, b"x")


def test_send_within_credit_keeps_reading() -> None:
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.b.pause_flow(flow_id, PAUSE_PEER)
    assert pair.a.send(flow_id, b"x" * (W - 1))
    assert pair.a.send(flow_id, b"x")  # exactly the window: still fine
    assert pair.a.send(flow_id, b"x") is False
    pair.pump()
    assert len(data_of(pair.events["b"], flow_id)) == W


def test_initial_bytes_beyond_the_window_pause_the_source() -> None:
    pair = small_pair()
    payload = bytes(range(256)) * 10  # 2560 > W
    flow_id, keep = pair.a.open_flow(REF, payload, 0, pair.clock.now)
    assert keep is False
    _, got_b = pair.pump()
    assert got_b == [FlowOpened(flow_id, REF, 0)]
    assert sent_payload(pair, "a", flow_id) == W  # the home grants nothing before it accepts
    accepted = pair.record("b", pair.b.accept_flow(flow_id))
    assert data_of(accepted, flow_id) == payload[:W]
    got_a, _ = pair.pump()
    assert data_of(pair.events["b"], flow_id) == payload
    assert FlowWritable(flow_id) in got_a


def test_receiver_credits_back_after_a_quarter_window() -> None:
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.a.send(flow_id, b"x" * (THRESHOLD - 1))
    pair.deliver("a")
    assert pair.b.data_to_send() == []  # below the threshold: no WINDOW yet
    pair.a.send(flow_id, b"x")
    pair.deliver("a")
    frames = frames_of(pair.b.data_to_send())
    assert [(f.type, fr.parse_window(f.payload)) for f in frames] == [(FrameType.WINDOW, THRESHOLD)]


def test_pause_withholds_credit_and_resume_returns_it() -> None:
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.b.pause_flow(flow_id, PAUSE_PEER)
    pair.b.pause_flow(flow_id, PAUSE_LINK)
    pair.a.send(flow_id, b"y" * 600)
    pair.deliver("a")
    assert pair.b.data_to_send() == []
    pair.b.resume_flow(flow_id, PAUSE_PEER)  # one reason left: still nothing
    assert pair.b.data_to_send() == []
    pair.b.resume_flow(flow_id, PAUSE_LINK)
    frames = frames_of(pair.b.data_to_send())
    assert [(f.type, f.flow_id, fr.parse_window(f.payload)) for f in frames] == [
        (FrameType.WINDOW, flow_id, 600)
    ]
    pair.b.resume_flow(flow_id, PAUSE_PEER)  # nothing owed: nothing sent
    assert pair.b.data_to_send() == []


def test_a_slow_flow_does_not_stall_the_others() -> None:
    pair = small_pair()
    slow = open_flow(pair)
    fast = open_flow(pair)
    pair.b.pause_flow(slow, PAUSE_PEER)
    assert pair.a.send(slow, b"s" * (2 * W)) is False
    for _ in range(5):
        assert pair.a.send(fast, b"f" * W)
        pair.pump()
    assert len(data_of(pair.events["b"], fast)) == 5 * W
    assert len(data_of(pair.events["b"], slow)) == W


@pytest.mark.parametrize("victim", ["b", "a"])
def test_window_violation_resets_only_that_flow(victim: Side) -> None:
    pair = small_pair()
    bad = open_flow(pair)
    good = open_flow(pair)
    conn = pair.conn(victim)
    conn.pause_flow(bad, PAUSE_PEER)  # nothing is credited back while the peer overruns
    events = pair.inject(victim, fr.encode_data(bad, b"z" * 600))
    assert events == [FlowData(bad, b"z" * 600)]
    events = pair.inject(victim, fr.encode_data(bad, b"z" * 401))  # 1001 > W
    assert events == [
        Count("flow_window_violations"),
        FlowReset(bad, int(ResetReason.WINDOW_VIOLATION)),
    ]
    [reset] = frames_of(conn.data_to_send())
    assert (reset.type, reset.flow_id) == (FrameType.RESET, bad)
    assert fr.parse_reset(reset.payload)[0] == ResetReason.WINDOW_VIOLATION
    assert not conn.has_flow(bad) and conn.has_flow(good) and not conn.closed
    # the offender learns it; the other flow carries on
    peer_events = pair.inject(pair.other(victim), fr.encode_frame(reset))
    assert peer_events == [FlowReset(bad, int(ResetReason.WINDOW_VIOLATION))]
    pair.conn(pair.other(victim)).send(good, b"still fine")
    pair.pump()
    assert FlowData(good, b"still fine") in pair.events[victim]


def test_window_violation_on_new_resets_the_flow() -> None:
    pair = small_pair()
    big = fr.encode_new(1, REF, b"n" * (W + 1))
    events = pair.inject("b", big)
    assert events == [
        FlowOpened(1, REF, 0),
        Count("flow_window_violations"),
        FlowReset(1, int(ResetReason.WINDOW_VIOLATION)),
    ]
    assert not pair.b.has_flow(1)


# -- half-close ----------------------------------------------------------------------


def test_entry_closes_first() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    pair.a.close(flow_id)
    _, got_b = pair.pump()
    assert got_b == [FlowEof(flow_id)]
    assert pair.b.send(flow_id, b"the response")  # the other direction is open
    got_a, _ = pair.pump()
    assert got_a == [FlowData(flow_id, b"the response")]
    pair.b.close(flow_id)
    assert not pair.b.has_flow(flow_id)  # b sent the last CLOSE: the flow is over for b
    got_a, got_b = pair.pump()
    assert got_a == [FlowEof(flow_id), FlowEnded(flow_id)]
    assert got_b == []
    assert pair.a.flow_count() == 0 and pair.b.flow_count() == 0


def test_home_closes_first() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    pair.b.send(flow_id, b"bye")
    pair.b.close(flow_id)
    got_a, _ = pair.pump()
    assert got_a == [FlowData(flow_id, b"bye"), FlowEof(flow_id)]
    pair.a.send(flow_id, b"late but legal")
    pair.a.close(flow_id)
    assert not pair.a.has_flow(flow_id)
    _, got_b = pair.pump()
    assert got_b == [FlowData(flow_id, b"late but legal"), FlowEof(flow_id), FlowEnded(flow_id)]
    assert pair.a.flow_count() == 0 and pair.b.flow_count() == 0


def test_both_close_at_once() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    pair.a.close(flow_id)
    pair.b.close(flow_id)
    got_a, got_b = pair.pump()
    assert got_a == [FlowEof(flow_id), FlowEnded(flow_id)]
    assert got_b == [FlowEof(flow_id), FlowEnded(flow_id)]
    assert pair.a.flow_count() == 0 and pair.b.flow_count() == 0


def test_close_waits_for_the_queued_bytes() -> None:
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.b.pause_flow(flow_id, PAUSE_PEER)
    payload = b"q" * (2 * W)
    assert pair.a.send(flow_id, payload) is False
    pair.a.close(flow_id)
    pair.pump()
    assert of_type(pair.events["b"], FlowEof) == []  # CLOSE is behind the queued bytes
    assert FrameType.CLOSE not in frame_types([bytes(pair.sent_log["a"])])
    pair.b.resume_flow(flow_id, PAUSE_PEER)
    pair.pump()
    flow_events = [e for e in pair.events["b"] if isinstance(e, (FlowData, FlowEof))]
    assert flow_events[-1] == FlowEof(flow_id)
    assert data_of(pair.events["b"], flow_id) == payload


def test_sends_after_close_are_dropped() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    pair.a.close(flow_id)
    assert pair.a.send(flow_id, b"after close")
    assert frame_types(pair.a.data_to_send()) == [FrameType.CLOSE]


def test_data_after_close_is_a_protocol_error_of_the_flow() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    other = open_flow(pair)
    pair.a.close(flow_id)
    pair.pump()
    events = pair.inject("b", fr.encode_data(flow_id, b"after close"))
    assert events == [FlowReset(flow_id, int(ResetReason.PROTOCOL_ERROR))]
    [reset] = frames_of(pair.b.data_to_send())
    assert (reset.type, fr.parse_reset(reset.payload)[0]) == (
        FrameType.RESET,
        ResetReason.PROTOCOL_ERROR,
    )
    assert pair.b.has_flow(other) and not pair.b.closed


# -- reset ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "reason"), [("a", ResetReason.CLIENT_ABORT), ("b", ResetReason.APP_ABORT)]
)
def test_reset_from_either_side(side: Side, reason: ResetReason) -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    pair.conn(side).reset(flow_id, int(reason), "gone")
    assert not pair.conn(side).has_flow(flow_id)
    got_a, got_b = pair.pump()
    got = {"a": got_a, "b": got_b}
    assert got[pair.other(side)] == [FlowReset(flow_id, int(reason))]
    assert got[side] == []  # no frame answers a RESET
    assert pair.a.flow_count() == 0 and pair.b.flow_count() == 0
    assert pair.conn(side).send(flow_id, b"too late")  # dropped, not an error
    assert pair.conn(side).data_to_send() == []


def test_frames_that_cross_a_reset_are_ignored() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    pair.a.reset(flow_id, int(ResetReason.CLIENT_ABORT))
    pair.b.send(flow_id, b"crossing")
    pair.b.close(flow_id)
    pair.inject("a", fr.encode_window(flow_id, 10))
    pair.inject("a", fr.encode_verified(flow_id))
    got_a, got_b = pair.pump()
    assert got_a == []  # DATA, CLOSE, WINDOW, VERIFIED for a flow a no longer holds
    assert pair.a.data_to_send() == []  # ... and no answer
    assert got_b == [FlowReset(flow_id, int(ResetReason.CLIENT_ABORT))]
    assert pair.a.flow_count() == 0 and pair.b.flow_count() == 0


def test_reset_crossing_a_reset() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    pair.a.reset(flow_id, int(ResetReason.CLIENT_ABORT))
    pair.b.reset(flow_id, int(ResetReason.APP_ABORT))
    got_a, got_b = pair.pump()
    assert got_a == [] and got_b == []
    assert pair.a.data_to_send() == [] and pair.b.data_to_send() == []


def test_home_refuses_a_flow() -> None:
    pair = logged_in_pair()
    flow_id, _ = pair.a.open_flow(REF, b"hello", 0, pair.clock.now)
    pair.pump()
    pair.b.reset(flow_id, int(ResetReason.NO_SERVICE), REF.service)
    assert pair.b.accept_flow(flow_id) == []  # too late to accept
    got_a, _ = pair.pump()
    assert got_a == [FlowReset(flow_id, int(ResetReason.NO_SERVICE))]
    assert FrameType.VERIFIED not in frame_types([bytes(pair.sent_log["b"])])


# -- the pending timeout --------------------------------------------------------------------


def test_pending_timeout_resets_an_unverified_flow() -> None:
    pair = logged_in_pair(a={"pending_timeout": 5.0}, b={"pending_timeout": 60.0})
    t0 = pair.clock.now
    flow_id, _ = pair.a.open_flow(REF, b"hi", 0, t0)
    pair.pump()  # b holds it, never accepts
    assert pair.a.next_deadline() == t0 + 5.0
    assert pair.a.handle_timeout(t0 + 4.999) == []
    pair.clock.set(t0 + 5.0)
    events = pair.record("a", pair.a.handle_timeout(pair.clock.now))
    assert events == [
        Count("pending_timeouts"),
        FlowReset(flow_id, int(ResetReason.PENDING_TIMEOUT)),
    ]
    assert not pair.a.has_flow(flow_id) and pair.a.next_deadline() is None
    _, got_b = pair.pump()
    assert got_b == [FlowReset(flow_id, int(ResetReason.PENDING_TIMEOUT))]
    assert pair.b.flow_count() == 0


def test_pending_flows_expire_oldest_first_and_verified_ones_never() -> None:
    pair = logged_in_pair(a={"pending_timeout": 5.0}, b={"pending_timeout": 60.0})
    t0 = pair.clock.now
    first, _ = pair.a.open_flow(REF, b"", 0, t0)
    pair.clock.advance(1.0)
    verified, _ = pair.a.open_flow(REF, b"", 0, pair.clock.now)
    pair.clock.advance(1.0)
    third, _ = pair.a.open_flow(REF, b"", 0, pair.clock.now)
    pair.pump()
    pair.b.accept_flow(verified)
    pair.pump()
    assert pair.a.next_deadline() == t0 + 5.0
    got_a, _ = pair.advance(t0 + 5.0 - pair.clock.now)
    assert of_type(got_a, FlowReset) == [FlowReset(first, int(ResetReason.PENDING_TIMEOUT))]
    assert pair.a.next_deadline() == t0 + 7.0
    got_a, _ = pair.advance(2.0)
    assert of_type(got_a, FlowReset) == [FlowReset(third, int(ResetReason.PENDING_TIMEOUT))]
    assert pair.a.next_deadline() is None
    pair.advance(100.0)
    assert pair.a.flow_ids() == [verified]


def test_home_drops_a_flow_it_never_accepted() -> None:
    """The home's pending table has the same deadline (lb.node behaves so today)."""
    pair = logged_in_pair(a={"pending_timeout": 60.0}, b={"pending_timeout": 5.0})
    flow_id, _ = pair.a.open_flow(REF, b"", 0, pair.clock.now)
    pair.pump()
    _, got_b = pair.advance(5.0)
    assert got_b == [
        Count("pending_timeouts"),
        FlowReset(flow_id, int(ResetReason.PENDING_TIMEOUT)),
    ]
    got_a, _ = pair.pump()
    assert got_a == [FlowReset(flow_id, int(ResetReason.PENDING_TIMEOUT))]


# -- the home side holds what arrives before accept_flow ----------------------------------


def test_home_holds_bytes_and_eof_until_accept() -> None:
    pair = small_pair()
    flow_id, _ = pair.a.open_flow(REF, b"first ", 0, pair.clock.now)
    pair.a.send(flow_id, b"second ")
    pair.a.send(flow_id, b"x" * 300)  # past the credit threshold
    pair.a.close(flow_id)
    _, got_b = pair.pump()
    assert got_b == [FlowOpened(flow_id, REF, 0)]
    assert FrameType.WINDOW not in frame_types([bytes(pair.sent_log["b"])])  # no credit yet
    accepted = pair.record("b", pair.b.accept_flow(flow_id))
    assert accepted == [
        FlowData(flow_id, b"first "),
        FlowData(flow_id, b"second "),
        FlowData(flow_id, b"x" * 300),
        FlowEof(flow_id),
    ]
    pair.collect()
    frames = frames_of([bytes(pair.wire["b"])])
    assert [f.type for f in frames] == [FrameType.VERIFIED, FrameType.WINDOW]
    assert fr.parse_window(frames[1].payload) == 313
    assert pair.b.accept_flow(flow_id) == []  # once
    pair.b.close(flow_id)
    got_a, _ = pair.pump()
    assert got_a == [FlowVerified(flow_id), FlowEof(flow_id), FlowEnded(flow_id)]
    assert pair.a.flow_count() == 0 and pair.b.flow_count() == 0


# -- tables full ------------------------------------------------------------------------------


def test_home_table_full_resets_the_new_flow() -> None:
    pair = logged_in_pair(b={"max_flows": 2})
    ids = [pair.a.open_flow(REF, b"hello", 0, pair.clock.now)[0] for _ in range(3)]
    pair.a.send(ids[2], b"crossing the RESET")
    got_a, got_b = pair.pump()
    assert of_type(got_b, FlowOpened) == [FlowOpened(ids[0], REF, 0), FlowOpened(ids[1], REF, 0)]
    assert Count("table_full") in got_b
    assert not [e for e in got_b if getattr(e, "flow_id", None) == ids[2]]
    assert got_a == [FlowReset(ids[2], int(ResetReason.TABLE_FULL))]
    assert sorted(pair.b.flow_ids()) == ids[:2]


def test_entry_table_full_raises_and_keeps_the_id() -> None:
    pair = logged_in_pair(a={"max_flows": 1})
    first = open_flow(pair)
    with pytest.raises(TableFull):
        pair.a.open_flow(REF, b"", 0, pair.clock.now)
    assert pair.a.data_to_send() == []
    pair.a.reset(first, int(ResetReason.CLIENT_ABORT))
    assert pair.a.open_flow(REF, b"", 0, pair.clock.now)[0] == first + 1


# -- detach: the local endpoint ended cleanly ------------------------------------------------


def test_detach_drops_later_bytes_but_keeps_crediting() -> None:
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.b.detach(flow_id)  # the application closed cleanly
    got_a, _ = pair.pump()
    assert got_a == [FlowEof(flow_id)]
    payload = b"p" * (5 * W)  # five windows: only credit lets this through
    assert pair.a.send(flow_id, payload) is False
    got_a, got_b = pair.pump()
    assert got_b == []  # nothing delivered: nobody takes it
    assert FlowWritable(flow_id) in got_a
    assert sent_payload(pair, "a", flow_id) == len(payload)
    pair.a.close(flow_id)
    _, got_b = pair.pump()
    assert got_b == [FlowEnded(flow_id)]
    assert pair.a.flow_count() == 0 and pair.b.flow_count() == 0


def test_detach_credits_what_was_owed() -> None:
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.a.send(flow_id, b"o" * 100)  # below the threshold: owed, not credited
    pair.pump()
    pair.b.detach(flow_id)
    frames = frames_of(pair.b.data_to_send())
    assert [(f.type, f.flow_id) for f in frames] == [
        (FrameType.CLOSE, flow_id),
        (FrameType.WINDOW, flow_id),
    ]
    assert fr.parse_window(frames[1].payload) == 100


def test_detach_of_a_paused_flow_keeps_crediting() -> None:
    """The endpoint that paused the flow is gone: its pause must not stall the remote."""
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.b.pause_flow(flow_id, PAUSE_PEER)  # its socket was backed up ...
    pair.b.detach(flow_id)  # ... and then closed cleanly
    assert pair.a.send(flow_id, b"p" * (3 * W)) is False
    got_a, got_b = pair.pump()
    assert got_b == []
    assert FlowWritable(flow_id) in got_a
    assert sent_payload(pair, "a", flow_id) == 3 * W


def test_detach_after_the_remote_closed_ends_the_flow() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    pair.a.close(flow_id)
    pair.pump()
    pair.b.detach(flow_id)
    assert not pair.b.has_flow(flow_id)
    got_a, _ = pair.pump()
    assert got_a == [FlowEof(flow_id), FlowEnded(flow_id)]


# -- the link goes away ---------------------------------------------------------------------


def test_connection_lost_resets_every_flow_once() -> None:
    pair = logged_in_pair()
    verified = [open_flow(pair) for _ in range(3)]
    pending, _ = pair.a.open_flow(REF, b"", 0, pair.clock.now)
    pair.pump()
    ended = verified.pop()
    pair.a.close(ended)
    pair.b.close(ended)
    pair.pump()
    pair.a.send(verified[0], b"never delivered")
    pair.a.reset(verified[1], int(ResetReason.CLIENT_ABORT))  # RESET queued, never sent
    lost_a, lost_b = pair.lose()
    link_closed = int(ResetReason.LINK_CLOSED)
    assert sorted(lost_a, key=flow_of) == [
        FlowReset(i, link_closed) for i in sorted([verified[0], pending])
    ]
    assert sorted(lost_b, key=flow_of) == [
        FlowReset(i, link_closed) for i in sorted([*verified, pending])
    ]
    for conn in (pair.a, pair.b):
        assert conn.flow_count() == 0 and conn.closed
        assert conn.data_to_send() == []  # no RESET frames on a link that is gone
        assert conn.next_deadline() is None
        assert conn.receive_data(fr.encode_ping(1, 0), pair.clock.now) == []
        assert conn.connection_lost() == []  # once
    with pytest.raises(LinkError):
        pair.a.open_flow(REF, b"", 0, pair.clock.now)


def test_a_protocol_error_closes_the_link_and_loses_every_flow() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    with pytest.raises(FrameError):
        pair.inject("b", b"\x02" + bytes(11))  # version 2
    assert pair.b.closed
    assert pair.b.connection_lost() == [FlowReset(flow_id, int(ResetReason.LINK_CLOSED))]
    assert pair.b.data_to_send() == []


def test_new_on_the_initiator_is_a_link_error() -> None:
    pair = logged_in_pair()
    with pytest.raises(FrameError, match="NEW"):
        pair.inject("a", fr.encode_new(1, REF, b""))
    assert pair.a.closed


def test_verified_on_the_responder_is_a_link_error() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    with pytest.raises(FrameError, match="VERIFIED"):
        pair.inject("b", fr.encode_verified(flow_id))
    assert pair.b.closed


def test_new_for_a_flow_that_exists_is_a_link_error() -> None:
    pair = logged_in_pair()
    flow_id = open_flow(pair)
    with pytest.raises(FrameError):
        pair.inject("b", fr.encode_new(flow_id, REF, b""))


def test_only_the_initiator_opens_flows() -> None:
    pair = logged_in_pair()
    with pytest.raises(LinkError):
        pair.b.open_flow(REF, b"", 0, pair.clock.now)


def test_flow_ids_run_out() -> None:
    pair = logged_in_pair()
    pair.a.next_flow_id = fr.MAX_FLOW_ID  # as if 2**32 - 2 flows came before
    last, _ = pair.a.open_flow(REF, b"last", 0, pair.clock.now)
    assert last == fr.MAX_FLOW_ID
    _, got_b = pair.pump()
    assert got_b == [FlowOpened(fr.MAX_FLOW_ID, REF, 0)]
    with pytest.raises(LinkError, match="used up"):
        pair.a.open_flow(REF, b"", 0, pair.clock.now)
    assert pair.a.data_to_send() == []
    assert pair.a.flow_ids() == [fr.MAX_FLOW_ID]


# -- link-level frames ----------------------------------------------------------------------------


def test_ping_pong_and_control_frames() -> None:
    pair = logged_in_pair()
    pair.clock.advance(3.0)
    pair.a.ping(7)
    pair.a.ping(8)
    _, got_b = pair.pump()
    assert got_b == [PeerHeard(7, 1), PeerHeard(8, 2)]
    assert pair.b.last_heard == pair.clock.now
    pair.b.send_pong(2, 99)
    node_state = fr.encode_frame(fr.Frame(0x48, 0, 0, b"\x00\x00"))
    unknown = fr.encode_frame(fr.Frame(0xEE, 0x5A, 3, b"opaque"))
    pair.b.send_control(node_state)
    pair.b.send_control(unknown)
    got_a, _ = pair.pump()
    assert got_a == [
        PeerHeard(99, None),
        ControlFrame(fr.Frame(0x48, 0, 0, b"\x00\x00")),
        ControlFrame(fr.Frame(0xEE, 0x5A, 3, b"opaque")),
    ]


# -- batching and chunking ----------------------------------------------------------------


def test_many_frames_from_one_receive_data() -> None:
    pair = logged_in_pair()
    ids = [pair.a.open_flow(REF, f"req {i}".encode(), 0, pair.clock.now)[0] for i in range(30)]
    for flow_id in ids:
        pair.a.send(flow_id, b"+" * flow_id)
    pair.a.ping(0)
    stream = b"".join(pair.a.data_to_send())
    events = pair.inject("b", stream)  # one call
    assert events == [FlowOpened(i, REF, 0) for i in ids] + [PeerHeard(0, 1)]
    for flow_id in ids:
        held = pair.b.accept_flow(flow_id)
        assert held == [
            FlowData(flow_id, f"req {flow_id - 1}".encode()),
            FlowData(flow_id, b"+" * flow_id),
        ]
    # and back: one receive_data with VERIFIED, WINDOW and DATA for every flow
    for flow_id in ids:
        pair.b.send(flow_id, bytes([flow_id]) * 300)
    events = pair.deliver("b")
    assert of_type(events, FlowVerified) == [FlowVerified(i) for i in ids]
    assert of_type(events, FlowData) == [FlowData(i, bytes([i]) * 300) for i in ids]


def _session_from_a() -> bytes:
    """Every byte an initiator sends in a short session, handshake included."""
    pair = LinkPair.make(a={"window": W}, b={"window": W})
    pair.login()
    now = pair.clock.now
    one, _ = pair.a.open_flow(REF, b"GET / HTTP/1.1\r\n\r\n", fr.FLAG_NEW_SESSION, now)
    two, _ = pair.a.open_flow(REF6, b"", 0, now)
    pair.a.send(one, bytes(range(256)) * 3)
    pair.a.ping(5)
    pair.a.send_control(fr.encode_frame(fr.Frame(0x40, 0, 0, b"\x00\x00")))
    pair.a.send(two, b"\xff" * 17)
    pair.a.close(one)
    pair.a.reset(two, int(ResetReason.CLIENT_ABORT), "client went away")
    pair.collect()
    return bytes(pair.sent_log["a"])


SESSION = _session_from_a()


def _events_of(chunks: list[bytes]) -> list[Event]:
    pair = LinkPair.make(a={"window": W}, b={"window": W})
    pair.collect()  # b's HELLO goes nowhere: b only listens here
    events: list[Event] = []
    for chunk in chunks:
        events += pair.inject("b", chunk)
    return events


WHOLE = _events_of([SESSION])


def test_the_recorded_session_means_something() -> None:
    # b never accepts: the bytes and the EOF of flow 1 are held, not reported
    expected = [
        Authenticated(NAME_A),
        FlowOpened(1, REF, fr.FLAG_NEW_SESSION),
        FlowOpened(2, REF6, 0),
        PeerHeard(5, 1),
        ControlFrame(fr.Frame(0x40, 0, 0, b"\x00\x00")),
        FlowReset(2, int(ResetReason.CLIENT_ABORT)),
    ]
    assert expected == WHOLE


def test_splitting_the_stream_at_every_byte_gives_the_same_events() -> None:
    for cut in range(1, len(SESSION)):
        assert _events_of([SESSION[:cut], SESSION[cut:]]) == WHOLE, f"cut at {cut}"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, len(SESSION) - 1), max_size=30, unique=True))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(SESSION)]
    chunks = [SESSION[i:j] for i, j in itertools.pairwise(bounds)]
    assert _events_of(chunks) == WHOLE


def test_byte_by_byte_gives_the_same_events() -> None:
    assert _events_of([SESSION[i : i + 1] for i in range(len(SESSION))]) == WHOLE


def test_a_close_queued_behind_data_ends_the_flow_with_flowended() -> None:
    """The remote closed first; our CLOSE waits behind queued bytes until credit lets it out."""
    pair = small_pair()
    flow_id = open_flow(pair)
    pair.b.close(flow_id)
    pair.pump()
    assert pair.a.send(flow_id, b"q" * (3 * W)) is False
    pair.a.close(flow_id)  # queued behind the bytes
    assert pair.a.has_flow(flow_id)
    got_a, _ = pair.pump()
    assert FlowEnded(flow_id) in got_a
    assert FlowWritable(flow_id) not in got_a
    assert not pair.a.has_flow(flow_id)


def test_bytes_after_close_are_dropped_even_while_queued() -> None:
    pair = small_pair()
    flow_id = open_flow(pair)
    assert pair.a.send(flow_id, b"x" * (2 * W)) is False
    pair.a.close(flow_id)
    assert pair.a.send(flow_id, b"late") is True
    pair.pump()
    assert sent_payload(pair, "a", flow_id) == 2 * W


def test_wrong_side_and_wrong_time_calls_are_refused() -> None:
    clock = FakeClock()
    a = initiator(clock)
    a.ping(0)
    a.send_pong(1, 0)
    assert frames_of(a.data_to_send()) == frames_of([fr.encode_hello(a.farm, a.name, a.nonce)])
    pair = logged_in_pair()
    with pytest.raises(LinkError):
        pair.a.accept_flow(1)
    flow_id = open_flow(pair)
    assert pair.a.send(flow_id, b"") is True


def test_any_frame_from_the_peer_counts_as_heard() -> None:
    """A link busy with flow data is not silent: on a lossy path a PING may wait behind
    the data for longer than dead_after, while data keeps arriving."""
    pair = logged_in_pair()
    heard = pair.b.last_heard
    pair.clock.advance(3.0)
    pair.a.open_flow(REF, b"GET / HTTP/1.1\r\n\r\n", 0, pair.clock.now)
    pair.pump()
    assert pair.b.last_heard == pair.clock.now > heard
