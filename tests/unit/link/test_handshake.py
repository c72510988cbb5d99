"""The link handshake of lb.link.LinkConnection, in memory (docs/protocol.md, Links).

HELLO both ways, then the initiator proves itself and only then the responder.
Every way to get the login wrong must raise FrameError or LinkAuthError, and a
stranger replaying, relaying or reflecting real nodes' handshakes logs nobody in.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import FrameError, LinkAuthError, LinkError
from lb.link import (
    Authenticated,
    ControlFrame,
    LinkConnection,
    PeerHeard,
    Role,
    auth_mac,
    link_key,
)
from lb.link.connection import MAX_HANDSHAKE_BYTES
from lb.wire import frames as fr
from lb.wire.frames import ConnRef, FrameType
from tests.support.fake_clock import FakeClock
from tests.support.link_pair import (
    FARM,
    KEY,
    NAME_A,
    NAME_B,
    NONCE_A,
    NONCE_B,
    LinkPair,
    Side,
    frames_of,
    initiator,
    responder,
)

REF = ConnRef("192.0.2.10", 51000, "10.0.0.2", 8080, "web")
NONCE_M = bytes(range(0x40, 0x50))  # a stranger's nonce
OTHER_NONCE = bytes(range(0x60, 0x70))
# docs/protocol.md, Links: the test vector (secret "correct horse battery staple")
SPEC_AUTH_A = bytes.fromhex("d5b1f219a9d166998cc3bf841309cdcd2e5d31d5b60aa863ea72188a763c6fbc")
SPEC_AUTH_B = bytes.fromhex("118ad8dbbb60fe9b40317d0908006077725ff97d1baf08f3de6ac218bff3f07e")


def types(chunks: list[bytes]) -> list[int]:
    return [f.type for f in frames_of(chunks)]


def hello(name: str, nonce: bytes, farm: str = FARM) -> bytes:
    return fr.encode_hello(farm, name, nonce)


def _header(frame_type: int, length: int, header_length: int = 12) -> bytes:
    """A frame header on flow 0 announcing `length` payload bytes."""
    return bytes((1, frame_type, 0, header_length)) + bytes(4) + length.to_bytes(4, "big")


# -- success ---------------------------------------------------------------------


@pytest.mark.parametrize("max_chunk", [None, 1, 3, 7, 40])
def test_login_succeeds_whatever_the_chunking(max_chunk: int | None) -> None:
    rng = None if max_chunk is None else random.Random(max_chunk)
    pair = LinkPair.make(rng=rng, max_chunk=max_chunk or 64)
    assert not pair.a.authenticated and not pair.b.authenticated
    pair.login()
    assert pair.events["a"] == [Authenticated(NAME_B)]
    assert pair.events["b"] == [Authenticated(NAME_A)]
    assert pair.a.peer_name == NAME_B and pair.b.peer_name == NAME_A


def test_the_handshake_on_the_wire_is_the_spec_vector() -> None:
    """HELLO then AUTH each way; the AUTHs are the MACs of docs/protocol.md's test vector."""
    pair = LinkPair.make()
    pair.login()
    frames_a = frames_of([bytes(pair.sent_log["a"])])
    frames_b = frames_of([bytes(pair.sent_log["b"])])
    assert [f.type for f in frames_a] == [FrameType.HELLO, FrameType.AUTH]
    assert [f.type for f in frames_b] == [FrameType.HELLO, FrameType.AUTH]
    assert fr.parse_hello(frames_a[0].payload) == (FARM, NAME_A, NONCE_A)
    assert fr.parse_hello(frames_b[0].payload) == (FARM, NAME_B, NONCE_B)
    assert frames_a[1].payload == SPEC_AUTH_A
    assert frames_b[1].payload == SPEC_AUTH_B


def test_frames_after_the_responders_auth_in_the_same_bytes_are_dispatched() -> None:
    """The responder's AUTH and the frames behind it may arrive in one read."""
    pair = LinkPair.make()
    pair.deliver("a")  # a's HELLO
    pair.deliver("b")  # b's HELLO -> a sends AUTH
    pair.deliver("a")  # a's AUTH -> b authenticated, queues its AUTH
    assert pair.b.authenticated and not pair.a.authenticated
    pair.b.ping(42)
    pair.b.send_control(fr.encode_frame(fr.Frame(0x48, 0, 0, b"\x00\x00")))
    events = pair.deliver("b")  # AUTH + PING + extension frame, one receive_data
    assert events[0] == Authenticated(NAME_B)
    assert events[1] == PeerHeard(42, 1)
    assert isinstance(events[2], ControlFrame) and events[2].frame.type == 0x48


def test_no_handshake_deadline_after_login() -> None:
    pair = LinkPair.make()
    pair.login()
    assert pair.a.next_deadline() is None and pair.b.next_deadline() is None
    assert pair.a.handle_timeout(pair.clock.now + 3600) == []
    assert pair.b.handle_timeout(pair.clock.now + 3600) == []
    assert pair.a.authenticated and not pair.a.closed


# -- refusals --------------------------------------------------------------------


def test_wrong_farm_is_refused_by_both_sides() -> None:
    clock = FakeClock()
    b = responder(clock)
    with pytest.raises(LinkAuthError, match="farm"):
        b.receive_data(hello(NAME_A, NONCE_A, farm="farm-2"), clock.now)
    assert b.closed and not b.authenticated
    a = initiator(clock)
    a.data_to_send()
    with pytest.raises(LinkAuthError, match="farm"):
        a.receive_data(hello(NAME_B, NONCE_B, farm="farm-2"), clock.now)
    assert a.data_to_send() == []  # no AUTH for another farm


def test_non_member_is_refused_by_the_responder() -> None:
    pair = LinkPair.make(b={"is_member": lambda name: name == "node-c"})
    with pytest.raises(LinkAuthError, match="not a member"):
        pair.deliver("a")
    assert not pair.b.authenticated


def test_responder_refuses_its_own_name() -> None:
    """A HELLO naming the responder itself is not a peer, even if is_member says yes."""
    pair = LinkPair.make(a={"name": NAME_B, "expected_peer": NAME_B})
    with pytest.raises(LinkAuthError):
        pair.deliver("a")


def test_initiator_refuses_a_node_it_did_not_mean_to_reach() -> None:
    pair = LinkPair.make(a={"expected_peer": "node-c"})
    pair.deliver("a")
    with pytest.raises(LinkAuthError, match="node-c"):
        pair.deliver("b")
    assert FrameType.AUTH not in types(pair.a.data_to_send())


def test_bad_mac_from_the_initiator_is_refused_and_the_responder_proves_nothing() -> None:
    pair = LinkPair.make(a={"keys": [link_key(b"another secret")]})
    pair.deliver("a")
    pair.deliver("b")
    with pytest.raises(LinkAuthError, match="bad link authentication"):
        pair.deliver("a")
    assert pair.b.data_to_send() == []
    assert types([bytes(pair.sent_log["b"])]) == [FrameType.HELLO]


def test_bad_mac_from_the_responder_is_refused() -> None:
    clock = FakeClock()
    a = initiator(clock)
    a.receive_data(hello(NAME_B, NONCE_B), clock.now)
    with pytest.raises(LinkAuthError, match="bad link authentication"):
        a.receive_data(fr.encode_auth(bytes(32)), clock.now)
    assert not a.authenticated and a.closed


@pytest.mark.parametrize("side", ["a", "b"])
def test_second_hello_is_refused(side: str) -> None:
    clock = FakeClock()
    conn = initiator(clock) if side == "a" else responder(clock)
    peer = NAME_B if side == "a" else NAME_A
    conn.receive_data(hello(peer, OTHER_NONCE), clock.now)
    with pytest.raises(FrameError, match="out of order"):
        conn.receive_data(hello(peer, OTHER_NONCE), clock.now)


@pytest.mark.parametrize("side", ["a", "b"])
def test_auth_before_hello_is_refused(side: str) -> None:
    clock = FakeClock()
    conn = initiator(clock) if side == "a" else responder(clock)
    with pytest.raises(FrameError, match="out of order"):
        conn.receive_data(fr.encode_auth(SPEC_AUTH_A), clock.now)
    assert not conn.authenticated


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("frame_type", [FrameType.HELLO, FrameType.AUTH])
def test_handshake_frames_after_login_are_refused(side: Side, frame_type: FrameType) -> None:
    pair = LinkPair.make()
    pair.login()
    frame = hello(NAME_A, NONCE_M) if frame_type == FrameType.HELLO else fr.encode_auth(bytes(32))
    with pytest.raises(FrameError, match="after the link was authenticated"):
        pair.inject(side, frame)


PRE_LOGIN_FRAMES = {
    "DATA": fr.encode_data(1, b"x" * 10),
    "NEW": fr.encode_new(1, REF, b"GET / HTTP/1.1\r\n\r\n"),
    "WINDOW": fr.encode_window(1, 100),
    "PING": fr.encode_ping(1, 0),
    "extension": fr.encode_frame(fr.Frame(0x40, 0, 0, b"\x00\x00")),
}


@pytest.mark.parametrize("name", sorted(PRE_LOGIN_FRAMES))
@pytest.mark.parametrize("after_hello", [False, True])
def test_frames_before_login_are_refused(name: str, after_hello: bool) -> None:
    clock = FakeClock()
    b = responder(clock)
    if after_hello:
        assert b.receive_data(hello(NAME_A, NONCE_A), clock.now) == []
    with pytest.raises(FrameError, match="before the link was authenticated"):
        b.receive_data(PRE_LOGIN_FRAMES[name], clock.now)
    assert not b.authenticated and b.closed
    assert b.receive_data(fr.encode_auth(SPEC_AUTH_A), clock.now) == []  # closed for good


@pytest.mark.parametrize("side", ["a", "b"])
def test_data_header_before_login_is_refused_before_its_payload(side: str) -> None:
    """The 12-byte header of a DATA frame is enough: its payload is never waited for."""
    clock = FakeClock()
    conn = initiator(clock) if side == "a" else responder(clock)
    header = fr.data_header(1, fr.MAX_PAYLOAD)
    fed = 0
    with pytest.raises(FrameError):
        for i in range(len(header)):
            conn.receive_data(header[i : i + 1], clock.now)
            fed += 1
    assert fed < fr.HEADER_SIZE


def test_data_header_after_hello_is_refused_from_the_header_alone() -> None:
    clock = FakeClock()
    b = responder(clock)
    b.receive_data(hello(NAME_A, NONCE_A), clock.now)
    with pytest.raises(FrameError):
        b.receive_data(fr.data_header(1, 1000), clock.now)


@pytest.mark.parametrize(
    "header",
    [
        # a HELLO whose length field promises far more than any HELLO holds
        _header(FrameType.HELLO, 2**32 - 1),
        _header(FrameType.HELLO, 2000),
        _header(FrameType.AUTH, 64),
        # a header length that pretends an extension
        _header(FrameType.HELLO, 40, header_length=200),
    ],
)
def test_oversized_handshake_frames_are_refused_from_their_header(header: bytes) -> None:
    clock = FakeClock()
    b = responder(clock)
    with pytest.raises(FrameError):
        for i in range(len(header)):
            b.receive_data(header[i : i + 1], clock.now)
    # and nothing after it is ever buffered
    with pytest.raises(FrameError):
        responder(clock).receive_data(header + b"\x00" * MAX_HANDSHAKE_BYTES, clock.now)


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from([b"", hello(NAME_A, NONCE_A)]),
    start=st.one_of(
        st.just(b""),
        st.builds(_header, st.sampled_from([FrameType.HELLO, FrameType.AUTH]), st.integers(0, 600)),
    ),
    junk=st.binary(min_size=0, max_size=MAX_HANDSHAKE_BYTES + 200),
    cuts=st.lists(st.integers(1, 300), max_size=40),
)
def test_no_more_than_max_handshake_bytes_before_login(
    prefix: bytes, start: bytes, junk: bytes, cuts: list[int]
) -> None:
    """Whatever a peer sends before login, a side accepts at most MAX_HANDSHAKE_BYTES of it
    without either logging in or raising one of the two typed errors."""
    clock = FakeClock()
    b = responder(clock)
    stream = prefix + start + junk
    off = 0
    for step in [*cuts, len(stream)]:
        chunk = stream[off : off + step]
        off += len(chunk)
        try:
            b.receive_data(chunk, clock.now)
        except (FrameError, LinkAuthError):
            return
        assert not b.authenticated  # 2**-256
        assert off <= MAX_HANDSHAKE_BYTES, f"{off} bytes taken before login"
        if off >= len(stream):
            return


# -- the responder speaks last -----------------------------------------------------


def test_responder_sends_no_auth_before_the_initiators_is_verified() -> None:
    pair = LinkPair.make()
    pair.collect()
    assert types([bytes(pair.wire["b"])]) == [FrameType.HELLO]
    pair.deliver("a")  # a's HELLO: b answers nothing
    assert pair.b.data_to_send() == []
    pair.deliver("b")  # b's HELLO: a proves itself
    pair.collect()
    assert types([bytes(pair.wire["a"])]) == [FrameType.AUTH]
    assert not pair.b.authenticated
    pair.deliver("a")  # a's AUTH verified: now b proves itself, first thing after HELLO
    assert pair.b.authenticated
    pair.b.ping(1)
    assert types(pair.b.data_to_send()) == [FrameType.AUTH, FrameType.PING]


def test_nothing_but_the_handshake_goes_out_before_login() -> None:
    clock = FakeClock()
    a = initiator(clock)
    with pytest.raises(LinkError):
        a.open_flow(REF, b"", 0, clock.now)
    with pytest.raises(LinkError):
        a.send_control(fr.encode_frame(fr.Frame(0x40, 0, 0, b"\x00\x00")))
    with pytest.raises(LinkError):
        responder(clock).send_control(fr.encode_frame(fr.Frame(0x40, 0, 0, b"\x00\x00")))
    assert types(a.data_to_send()) == [FrameType.HELLO]


# -- strangers: replay, relay, reflection -----------------------------------------------


def test_stranger_claiming_a_member_learns_no_proof() -> None:
    """Claim to be node-a to b: b says HELLO and nothing else; any guess at a's AUTH fails."""
    clock = FakeClock()
    b = responder(clock)
    assert types(b.data_to_send()) == [FrameType.HELLO]
    b.receive_data(hello(NAME_A, NONCE_M), clock.now)
    assert b.data_to_send() == []
    with pytest.raises(LinkAuthError):
        b.receive_data(fr.encode_auth(SPEC_AUTH_B), clock.now)


def test_relaying_one_responders_hello_to_another_logs_nobody_in() -> None:
    """The relay of tests/integration/test_link_attacks.py: a stranger connects to both a and
    b, hands a's HELLO to b and b's answer to a. Neither ever says AUTH; a PING is refused."""
    clock = FakeClock()
    node_a = responder(clock, name=NAME_A, nonce=NONCE_A)  # a's listening side
    node_b = responder(clock)  # b's listening side
    hello_a = b"".join(node_a.data_to_send())
    hello_b = b"".join(node_b.data_to_send())
    assert node_b.receive_data(hello_a, clock.now) == []  # "I am a", with a's own nonce
    from_b = b"".join(node_b.data_to_send())
    assert from_b == b""  # no AUTH to relay
    assert node_a.receive_data(hello_b + from_b, clock.now) == []  # "I am b"
    assert node_a.data_to_send() == []
    with pytest.raises(FrameError):
        node_a.receive_data(fr.encode_ping(7, 0), clock.now)
    with pytest.raises(FrameError):
        node_b.receive_data(fr.encode_ping(7, 0), clock.now)


def test_reflecting_a_responder_to_itself_logs_nobody_in() -> None:
    """Two connections to one node, each fed the other's HELLO: no AUTH either way."""
    clock = FakeClock()
    first = responder(clock, name=NAME_A, nonce=NONCE_A)
    second = responder(clock, name=NAME_A, nonce=OTHER_NONCE)
    first.data_to_send()
    second.data_to_send()
    second.receive_data(hello(NAME_B, NONCE_A), clock.now)  # b's name, a's first nonce
    first.receive_data(hello(NAME_B, NONCE_M), clock.now)
    assert first.data_to_send() == [] and second.data_to_send() == []
    for conn in (first, second):
        with pytest.raises(FrameError):
            conn.receive_data(fr.encode_ping(1, 0), clock.now)


def test_reflecting_the_initiators_auth_back_to_it_fails() -> None:
    """a connects to a stranger posing as b; the stranger echoes a's AUTH: the role differs."""
    clock = FakeClock()
    a = initiator(clock)
    a.data_to_send()
    a.receive_data(hello(NAME_B, NONCE_M), clock.now)
    [auth_a] = frames_of(a.data_to_send())
    assert auth_a.type == FrameType.AUTH
    with pytest.raises(LinkAuthError):
        a.receive_data(fr.encode_auth(auth_a.payload), clock.now)
    assert not a.authenticated


def test_an_auth_in_the_other_role_is_refused_even_with_the_right_key() -> None:
    """Right key, right nonces, right names, but the other side's role: worth nothing."""
    clock = FakeClock()
    b = responder(clock)
    b.receive_data(hello(NAME_A, NONCE_A), clock.now)
    as_responder = auth_mac(KEY, Role.RESPONDER, NONCE_A, NONCE_B, NAME_A, NAME_B)
    with pytest.raises(LinkAuthError):
        b.receive_data(fr.encode_auth(as_responder), clock.now)
    assert types(b.data_to_send()) == [FrameType.HELLO]  # and no AUTH
    a = initiator(clock)
    a.receive_data(hello(NAME_B, NONCE_B), clock.now)
    as_initiator = auth_mac(KEY, Role.INITIATOR, NONCE_A, NONCE_B, NAME_A, NAME_B)
    with pytest.raises(LinkAuthError):
        a.receive_data(fr.encode_auth(as_initiator), clock.now)


def test_replaying_a_recorded_login_fails_on_a_fresh_link() -> None:
    """Frames recorded from a real login, replayed to each side of a new link (new nonce)."""
    pair = LinkPair.make()
    pair.login()
    from_a = bytes(pair.sent_log["a"])
    from_b = bytes(pair.sent_log["b"])
    clock = FakeClock()
    b2 = responder(clock, nonce=OTHER_NONCE)
    with pytest.raises(LinkAuthError):
        b2.receive_data(from_a, clock.now)
    assert FrameType.AUTH not in types(b2.data_to_send())
    a2 = initiator(clock, nonce=OTHER_NONCE)
    with pytest.raises(LinkAuthError):
        a2.receive_data(from_b, clock.now)


def test_an_auth_made_for_another_node_cannot_be_relayed() -> None:
    """a meant to reach node-c; a stranger posing as c uses b's nonce and relays a's AUTH
    to b on a link where it claims to be a with a's nonce. The names differ: refused."""
    clock = FakeClock()
    a = initiator(clock, expected_peer="node-c")
    b = responder(clock)
    hello_a = b"".join(a.data_to_send())
    b.receive_data(hello_a, clock.now)  # to b: "I am a", a's nonce
    [hello_b] = frames_of(b.data_to_send())
    _farm, _name, nonce_b = fr.parse_hello(hello_b.payload)
    a.receive_data(hello("node-c", nonce_b), clock.now)  # to a: "I am c", b's nonce
    auth_a = b"".join(a.data_to_send())
    with pytest.raises(LinkAuthError):
        b.receive_data(auth_a, clock.now)
    assert b.data_to_send() == []


# -- the handshake deadline ---------------------------------------------------------


@pytest.mark.parametrize("side", ["a", "b"])
@pytest.mark.parametrize("progress", ["nothing", "hellos"])
def test_handshake_times_out(side: Side, progress: str) -> None:
    clock = FakeClock(50.0)
    pair = LinkPair.make(clock=clock, a={"handshake_timeout": 2.0}, b={"handshake_timeout": 2.0})
    if progress == "hellos":
        pair.deliver("a")
        pair.deliver("b")  # a's AUTH never reaches b
    conn = pair.conn(side)
    assert conn.next_deadline() == 52.0
    assert conn.handle_timeout(51.999) == []
    assert not conn.closed
    with pytest.raises(LinkAuthError, match="no login within 2s"):
        conn.handle_timeout(52.0)
    assert conn.closed and conn.next_deadline() is None
    assert conn.handle_timeout(60.0) == []
    assert conn.receive_data(fr.encode_auth(bytes(32)), 60.0) == []


# -- secret rotation -----------------------------------------------------------------

OLD = link_key(b"old secret")
NEW = link_key(b"new secret")


def rotation_pair(a_keys: list[bytes], b_keys: list[bytes], key_index: int = 0) -> LinkPair:
    return LinkPair.make(a={"keys": a_keys, "key_index": key_index}, b={"keys": b_keys})


def test_responder_with_new_and_old_keys_accepts_an_initiator_with_the_old() -> None:
    pair = rotation_pair([OLD], [NEW, OLD])
    pair.login()
    assert pair.b.key == OLD  # and b proved itself with the key a knows


def test_responder_with_new_and_old_keys_accepts_an_initiator_with_the_new() -> None:
    pair = rotation_pair([NEW, OLD], [NEW, OLD])
    pair.login()


@pytest.mark.parametrize(("key_index", "ok"), [(0, False), (1, True), (2, False), (3, True)])
def test_initiator_picks_its_key_by_index(key_index: int, ok: bool) -> None:
    """keys[key_index % len(keys)]: with [new, old] only an odd index reaches an [old] node."""
    pair = rotation_pair([NEW, OLD], [OLD], key_index)
    if ok:
        pair.login()
        return
    pair.deliver("a")
    pair.deliver("b")
    with pytest.raises(LinkAuthError):
        pair.deliver("a")
    assert pair.b.data_to_send() == []  # no AUTH: a never logs in
    assert not pair.a.authenticated


def test_keys_unknown_to_the_responder_fail() -> None:
    pair = rotation_pair([KEY], [NEW, OLD])
    pair.deliver("a")
    pair.deliver("b")
    with pytest.raises(LinkAuthError):
        pair.deliver("a")


def test_constructor_refuses_a_link_it_could_not_run() -> None:
    clock = FakeClock()
    with pytest.raises(ValueError):
        initiator(clock, expected_peer=None)
    with pytest.raises(ValueError):
        responder(clock, is_member=None)
    with pytest.raises(ValueError):
        initiator(clock, keys=[])
    with pytest.raises(ValueError):
        initiator(clock, nonce=b"short")
    assert isinstance(initiator(clock), LinkConnection)
