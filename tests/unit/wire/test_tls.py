"""Tests for lb.wire.tls: ClientHello parsing and the ServerHello watcher.

Real bytes come from tests/fixtures/tls (captured from openssl, curl, Python,
gnutls and Chromium; see its README.md). Expected names are the ones the capture
passed to the clients; expected session ids and tickets come from openssl's own
dump of the sessions it saved.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lb.errors import TlsError
from lb.wire.tls import (
    MAX_RECORD_LENGTH,
    ClientHello,
    ServerHelloInfo,
    ServerHelloWatcher,
    parse_client_hello,
)
from tests.fixtures.tls.capture import SPLIT_ALPN_FILLER
from tests.fixtures.tls.sessions import load, names, session_id, ticket

CLIENT_HELLOS = names("ch-") + names("tls")
CLIENT_HELLOS = [name for name in CLIENT_HELLOS if not name.endswith("-s2c")]
SERVER_STREAMS = names("tls")
SERVER_STREAMS = [name for name in SERVER_STREAMS if name.endswith("-s2c")]

TLS12, TLS13 = 0x0303, 0x0304
GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))


def record_offsets(data: bytes) -> list[tuple[int, int, bytes]]:
    """Split a recorded stream into (offset, content type, body) records (test-side walker)."""
    out = []
    pos = 0
    while pos + 5 <= len(data):
        (length,) = struct.unpack_from("!H", data, pos + 3)
        out.append((pos, data[pos], data[pos + 5 : pos + 5 + length]))
        pos += 5 + length
    return out


def records(data: bytes) -> list[tuple[int, bytes]]:
    """(content type, body) of each record of a recorded stream."""
    return [(kind, body) for _, kind, body in record_offsets(data)]


def hello_message(data: bytes) -> bytes:
    """The ClientHello handshake message of a recorded client stream."""
    handshake = b"".join(body for kind, body in records(data) if kind == 22)
    (length,) = struct.unpack_from("!I", b"\0" + handshake[1:4])
    return handshake[: 4 + length]


def frame(message: bytes, cuts: list[int], version: bytes = b"\x03\x01") -> bytes:
    """``message`` re-framed into handshake records cut at ``cuts``."""
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(message))), len(message)]
    return b"".join(
        b"\x16" + version + struct.pack("!H", b - a) + message[a:b]
        for a, b in itertools.pairwise(bounds)
    )


def parsed(name: str) -> ClientHello:
    hello = parse_client_hello(load(name))
    assert hello is not None
    return hello


# -- real ClientHellos ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sni", "alpn", "tls13"),
    [
        ("ch-openssl-tls13", "tls13.example.test", ("h2", "http/1.1"), True),
        ("ch-openssl-tls12", "tls12.example.test", ("http/1.1",), False),
        ("ch-openssl-split", "split.example.test", ("h2", "http/1.1", *SPLIT_ALPN_FILLER), True),
        ("ch-curl-ip", None, ("h2", "http/1.1"), True),
        ("ch-curl-name", "curl.example.test", ("h2", "http/1.1"), True),
        ("ch-python-ssl", "python.example.test", ("http/1.1",), True),
        ("ch-gnutls", "gnutls.example.test", ("http/1.1",), True),
        ("ch-chromium", "chromium.example.test", ("h2", "http/1.1"), True),
        ("tls12-sid-full-c2s", "sid.example.test", (), False),
        ("tls12-ticket-full-c2s", "ticket.example.test", (), False),
        ("tls13-full-c2s", "psk.example.test", ("http/1.1",), True),
    ],
)
def test_fixture_names_and_versions(
    name: str, sni: str | None, alpn: tuple[str, ...], tls13: bool
) -> None:
    data = load(name)
    hello = parsed(name)
    assert hello.sni == sni
    assert hello.alpn == alpn
    assert hello.offers_tls13 is tls13
    assert hello.legacy_version == TLS12
    assert len(hello.random) == 32
    assert hello.length == 5 * len(records(data[: hello.length])) + len(hello_message(data))
    assert (0 in hello.extensions) is (sni is not None)
    assert (16 in hello.extensions) is bool(alpn)
    if tls13:
        # Middlebox compatibility mode: a random 32-byte legacy session id.
        assert len(hello.session_id) == 32
    else:
        assert hello.supported_versions == ()


def test_first_flights_are_exactly_one_client_hello() -> None:
    for name in names("ch-"):
        data = load(name)
        assert parsed(name).length == len(data), name


def test_supported_versions_as_configured() -> None:
    assert parsed("ch-python-ssl").supported_versions == (TLS13, TLS12)  # Python's minimum: 1.2
    for name in ("ch-openssl-tls13", "tls13-full-c2s", "tls13-resume-c2s"):  # -tls1_3
        assert parsed(name).supported_versions == (TLS13,)
    for name in ("ch-openssl-split", "ch-curl-name", "ch-gnutls"):  # no version options
        assert parsed(name).supported_versions[:2] == (TLS13, TLS12)


def test_chromium_client_hello_is_large_and_greased() -> None:
    hello = parsed("ch-chromium")
    assert hello.length > 1500
    assert len(records(load("ch-chromium"))) == 1
    assert GREASE & set(hello.extensions)
    assert GREASE & set(hello.supported_versions)
    assert GREASE & set(hello.cipher_suites)
    assert hello.supported_versions[-2:] == (TLS13, TLS12)


def test_openssl_split_client_hello_spans_three_records() -> None:
    data = load("ch-openssl-split")
    assert [len(body) for _, body in records(data)][:2] == [512, 512]
    assert len(records(data)) == 3
    assert parsed("ch-openssl-split").length == len(data)


def test_cipher_suites_are_read_in_order() -> None:
    # TLS 1.3-only openssl client: its three TLS 1.3 suites, then the SCSV.
    hello = parsed("ch-openssl-tls13")
    assert hello.cipher_suites == (0x1302, 0x1303, 0x1301, 0x00FF)


def test_tls12_resumption_by_session_id() -> None:
    full = parsed("tls12-sid-full-c2s")
    assert full.session_id == b""
    assert full.session_ticket is None  # -no_ticket: no extension 35 at all
    resume = parsed("tls12-sid-resume-c2s")
    assert resume.session_id == session_id("tls12-sid")
    assert resume.session_ticket is None
    assert resume.sni == "sid.example.test"


def test_tls12_resumption_by_ticket() -> None:
    full = parsed("tls12-ticket-full-c2s")
    assert full.session_ticket == b""  # asks for a ticket with an empty extension
    resume = parsed("tls12-ticket-resume-c2s")
    assert resume.session_ticket == ticket("tls12-ticket")
    assert resume.session_id == session_id("tls12-ticket")
    assert resume.psk_identities == ()


def test_tls13_resumption_by_psk_identity() -> None:
    assert parsed("tls13-full-c2s").psk_identities == ()
    resume = parsed("tls13-resume-c2s")
    assert resume.psk_identities == (ticket("tls13"),)
    assert resume.extensions[-1] == 41
    assert resume.offers_tls13


def test_length_stops_at_the_end_of_the_client_hello() -> None:
    # The full streams go on with ChangeCipherSpec, Finished and application data.
    for name in ("tls12-sid-full-c2s", "tls12-ticket-resume-c2s", "tls13-resume-c2s"):
        data = load(name)
        hello = parsed(name)
        assert hello.length == 5 + len(records(data)[0][1]) < len(data)
        assert parse_client_hello(data[: hello.length]) == hello


@pytest.mark.parametrize("name", CLIENT_HELLOS)
def test_every_prefix_needs_more(name: str) -> None:
    data = load(name)
    hello = parsed(name)
    for cut in range(hello.length):
        assert parse_client_hello(data[:cut]) is None, cut


@pytest.mark.parametrize("name", ["ch-chromium", "ch-openssl-split", "tls13-resume-c2s"])
def test_byte_by_byte_feeding(name: str) -> None:
    data = load(name)
    stream = bytearray()
    answers = []
    for byte in data:
        stream.append(byte)
        answers.append(parse_client_hello(bytes(stream)))
    first = next(i for i, answer in enumerate(answers) if answer is not None)
    assert first == parsed(name).length - 1
    assert all(answer == parsed(name) for answer in answers[first:])


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(CLIENT_HELLOS),
    cuts=st.lists(st.integers(1, 2100), max_size=12),
    minor=st.sampled_from([b"\x03\x01", b"\x03\x03", b"\x03\x00"]),
)
def test_multi_record_reassembly(name: str, cuts: list[int], minor: bytes) -> None:
    message = hello_message(load(name))
    data = frame(message, cuts, minor)
    expected = parsed(name)
    hello = parse_client_hello(data)
    assert hello is not None
    assert hello.length == len(data)
    assert hello == ClientHello(**{**_fields(expected), "length": len(data)})


def test_chromium_reframed_into_three_records() -> None:
    message = hello_message(load("ch-chromium"))
    third = len(message) // 3
    data = frame(message, [third, 2 * third])
    assert len(records(data)) == 3
    hello = parse_client_hello(data)
    assert hello is not None
    assert hello.sni == "chromium.example.test"
    assert hello.length == len(message) + 15
    for cut in range(len(data)):
        assert parse_client_hello(data[:cut]) is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(CLIENT_HELLOS), data=st.data())
def test_arbitrary_segmentation_gives_the_same_answer(name: str, data: st.DataObject) -> None:
    stream = load(name)
    sizes = data.draw(st.lists(st.integers(1, 700), min_size=1, max_size=20))
    seen = b""
    pos = 0
    answer: ClientHello | None = None
    for size in sizes:
        seen += stream[pos : pos + size]
        pos += size
        answer = parse_client_hello(seen)
        if answer is not None:
            break
    if answer is None:
        assert len(seen) < parsed(name).length
    else:
        assert answer == parsed(name)


def _fields(hello: ClientHello) -> dict[str, object]:
    return {field: getattr(hello, field) for field in ClientHello.__slots__}


# -- robustness ----------------------------------------------------------------------


def outcome(data: bytes, max_bytes: int = 65536) -> ClientHello | str | None:
    try:
        return parse_client_hello(data, max_bytes)
    except TlsError:
        return "error"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_give_none_a_hello_or_tls_error(data: bytes) -> None:
    result = outcome(data)
    assert result is None or result == "error" or isinstance(result, ClientHello)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 600), st.integers(40, 700))
def test_random_bodies_behind_a_handshake_header(body: bytes, declared: int, rec: int) -> None:
    header = b"\x16\x03\x01" + struct.pack("!H", rec) + b"\x01" + declared.to_bytes(3, "big")
    result = outcome(header + body)
    assert result is None or result == "error" or isinstance(result, ClientHello)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(load(draw(st.sampled_from(CLIENT_HELLOS))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x20, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            del data[at:]
        if not data:
            data = bytearray(b"\x16")
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(mutated(), st.integers(0, 2100))
def test_mutations_of_real_hellos_and_decided_prefixes(data: bytes, cut: int) -> None:
    whole = outcome(data)
    assert whole is None or whole == "error" or isinstance(whole, ClientHello)
    prefix = outcome(data[:cut])
    if prefix is not None:
        # A decided prefix stays decided.
        assert prefix == whole
    if isinstance(whole, ClientHello):
        assert outcome(data[: whole.length]) == whole
        assert whole.length <= len(data)


# -- bounds --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ch-chromium", "ch-openssl-split", "tls12-sid-full-c2s"])
def test_max_bytes_is_the_stream_length_of_the_hello(name: str) -> None:
    data = load(name)
    length = parsed(name).length
    assert parse_client_hello(data, max_bytes=length) == parsed(name)
    with pytest.raises(TlsError, match="more than"):
        parse_client_hello(data, max_bytes=length - 1)
    for cut in range(0, length, 97):
        assert outcome(data[:cut], length - 1) in (None, "error")


def test_a_huge_declared_message_is_refused_at_once() -> None:
    data = b"\x16\x03\x01\x40\x00" + b"\x01\x01\x00\x00"  # ClientHello of 65536 bytes
    with pytest.raises(TlsError, match="more than 65536"):
        parse_client_hello(data)
    assert parse_client_hello(data, max_bytes=70000) is None


def test_a_declared_message_longer_than_its_records_counts_their_headers() -> None:
    # 16 bytes of message in 8-byte records need a second header: 5 + 16 + 5 = 26.
    message_start = b"\x01\x00\x00\x0c" + b"\x03\x03\x00\x00"
    data = b"\x16\x03\x01\x00\x08" + message_start
    assert parse_client_hello(data, max_bytes=26) is None
    with pytest.raises(TlsError):
        parse_client_hello(data, max_bytes=25)


# -- malformed input, built by hand -----------------------------------------------------


def ext(kind: int, body: bytes) -> bytes:
    return struct.pack("!HH", kind, len(body)) + body


def vec(width: int, body: bytes) -> bytes:
    return len(body).to_bytes(width, "big") + body


def sni_ext(*names: tuple[int, bytes]) -> bytes:
    return ext(0, vec(2, b"".join(bytes([t]) + vec(2, n) for t, n in names)))


def hello_bytes(
    extensions: bytes | None = b"",
    session: bytes = b"",
    suites: bytes = b"\x13\x01",
    version: bytes = b"\x03\x03",
    tail: bytes = b"",
) -> bytes:
    body = version + bytes(32) + vec(1, session) + vec(2, suites) + vec(1, b"\x00")
    if extensions is not None:
        body += vec(2, extensions)
    body += tail
    message = b"\x01" + vec(3, body)
    return b"\x16\x03\x01" + vec(2, message)


PSK = ext(41, vec(2, vec(2, b"identity") + b"\0\0\0\0") + vec(2, vec(1, bytes(32))))


def test_a_minimal_hand_built_hello_parses() -> None:
    data = hello_bytes(
        sni_ext((0, b"Example.TEST"))
        + ext(16, vec(2, vec(1, b"h2")))
        + ext(43, vec(1, b"\x03\x04\x03\x03"))
        + ext(35, b"tick")
        + PSK,
        session=b"\x07" * 32,
    )
    hello = parse_client_hello(data)
    assert hello == ClientHello(
        legacy_version=TLS12,
        random=bytes(32),
        session_id=b"\x07" * 32,
        cipher_suites=(0x1301,),
        sni="example.test",
        alpn=("h2",),
        supported_versions=(TLS13, TLS12),
        session_ticket=b"tick",
        psk_identities=(b"identity",),
        extensions=(0, 16, 43, 35, 41),
        length=len(data),
    )


def test_a_hello_without_extensions_parses() -> None:
    hello = parse_client_hello(hello_bytes(extensions=None))
    assert hello is not None
    assert (hello.extensions, hello.sni, hello.session_ticket) == ((), None, None)


MALFORMED = [
    (b"\x17\x03\x03\x00\x10" + bytes(16), "record type"),
    (b"GET / HTTP/1.1\r\n\r\n", "record type"),
    (b"\x16\x02\x00\x00\x10", "major"),
    (b"\x16\x03\x01\x00\x00", "empty"),
    (b"\x16\x03\x01" + struct.pack("!H", MAX_RECORD_LENGTH + 1), "exceeds"),
    (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "not 1"),
    (hello_bytes(ext(5, b"") + ext(5, b"")), "duplicate"),
    (hello_bytes(sni_ext((1, b"example.test"))), "host_name"),
    (hello_bytes(sni_ext((0, "bücher.test".encode()))), "ASCII"),
    (hello_bytes(sni_ext((0, b"a b"))), "ASCII"),
    (hello_bytes(sni_ext((0, b"a"), (0, b"b"))), "more than one"),
    (
        hello_bytes(
            sni_ext((0, b"")),
        ),
        "shorter",
    ),
    (hello_bytes(ext(0, b"")), "truncated"),
    (hello_bytes(ext(16, b"\x00\x05\x02h2")), "truncated"),
    (hello_bytes(ext(16, vec(2, b"\x00"))), "shorter"),
    (hello_bytes(ext(43, vec(1, b"\x03\x04\x03"))), "odd"),
    (hello_bytes(PSK + ext(5, b"")), "last"),
    (hello_bytes(ext(41, vec(2, vec(2, b"id") + bytes(4)) + vec(2, b""))), "shorter"),
    (hello_bytes(b"\x00\x05\x00\x09abc"), "truncated"),
    (hello_bytes(b"\x00"), "truncated"),
    (hello_bytes(session=bytes(33)), "longer than 32"),
    (hello_bytes(suites=b"\x13"), "shorter"),
    (hello_bytes(suites=b"\x13\x01\x13"), "odd"),
    (hello_bytes(version=b"\x02\x00"), "not 3.x"),
    (hello_bytes(tail=b"\x00"), "stray"),
    (hello_bytes(ext(0, sni_ext((0, b"a"))[4:] + b"x")), "stray"),
]


@pytest.mark.parametrize(
    ("data", "why"), MALFORMED, ids=[f"{i}-{why}" for i, (_, why) in enumerate(MALFORMED)]
)
def test_malformed_input_is_one_tls_error(data: bytes, why: str) -> None:
    with pytest.raises(TlsError, match=why):
        parse_client_hello(data)


def test_a_record_after_the_first_must_be_handshake_too() -> None:
    message = hello_message(load("ch-openssl-tls13"))
    data = frame(message, [100])
    broken = data[:105] + b"\x15" + data[106:]  # the second record claims to be an alert
    with pytest.raises(TlsError, match="record type 21"):
        parse_client_hello(broken)
    assert parse_client_hello(broken[:105]) is None
    with pytest.raises(TlsError):
        parse_client_hello(broken[:106])


# -- ServerHelloWatcher --------------------------------------------------------------


def watch(
    data: bytes, sizes: list[int] | None = None, max_bytes: int = 65536
) -> ServerHelloWatcher:
    watcher = ServerHelloWatcher(max_bytes)
    pos = 0
    for size in sizes or [len(data)]:
        watcher.feed(data[pos : pos + size])
        pos += size
    if pos < len(data):
        watcher.feed(data[pos:])
    return watcher


def first_record_of(data: bytes, content_type: int, first_byte: int | None = None) -> int:
    """Offset of the first record of ``content_type`` (whose body starts with ``first_byte``)."""
    return next(
        pos
        for pos, kind, body in record_offsets(data)
        if kind == content_type and first_byte in (None, body[0])
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tls12-sid-full-s2c", ServerHelloInfo(TLS12, session_id("tls12-sid"), None)),
        ("tls12-sid-resume-s2c", ServerHelloInfo(TLS12, session_id("tls12-sid"), None)),
        # A full handshake that issues a ticket: empty session id, then NewSessionTicket.
        ("tls12-ticket-full-s2c", ServerHelloInfo(TLS12, b"", ticket("tls12-ticket"))),
        # Resumed by ticket: the server echoes the client's session id.
        ("tls12-ticket-resume-s2c", ServerHelloInfo(TLS12, session_id("tls12-ticket"), None)),
    ],
)
def test_watcher_on_tls12_servers(name: str, expected: ServerHelloInfo) -> None:
    watcher = watch(load(name))
    assert watcher.done
    assert watcher.result == expected


@pytest.mark.parametrize("label", ["tls13-full", "tls13-resume"])
def test_watcher_on_tls13_servers(label: str) -> None:
    client = parsed(f"{label}-c2s")
    stream = load(f"{label}-s2c")
    first = 5 + len(records(stream)[0][1])
    watcher = watch(stream[:first])
    assert watcher.done
    assert watcher.result is not None
    assert watcher.result.version == TLS13
    # TLS 1.3 echoes the client's random legacy session id: it names no session.
    assert watcher.result.session_id == client.session_id
    assert watcher.result.new_session_ticket is None


@pytest.mark.parametrize("name", SERVER_STREAMS)
def test_watcher_is_done_by_the_first_change_cipher_spec(name: str) -> None:
    stream = load(name)
    ccs = first_record_of(stream, 20)
    at_ccs = watch(stream[: ccs + 6])
    assert at_ccs.done
    assert at_ccs.result is not None
    assert at_ccs.result == watch(stream).result


def test_watcher_waits_for_the_ticket_across_the_client_flight() -> None:
    # ServerHello ... ServerHelloDone, (the client's flight), NewSessionTicket, CCS.
    stream = load("tls12-ticket-full-s2c")
    ticket_record = first_record_of(stream, 22, first_byte=4)
    assert first_record_of(stream, 22, first_byte=14) < ticket_record < first_record_of(stream, 20)
    early = watch(stream[:ticket_record])
    assert not early.done
    assert early.result == ServerHelloInfo(TLS12, b"", None)
    assert watch(stream[: ticket_record + 20]).result == early.result


@settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(SERVER_STREAMS),
    sizes=st.lists(st.integers(0, 400), max_size=40),
)
def test_watcher_any_chunking_same_result(name: str, sizes: list[int]) -> None:
    stream = load(name)
    whole = watch(stream)
    chunked = watch(stream, sizes)
    assert (chunked.done, chunked.result) == (whole.done, whole.result)


def test_watcher_byte_by_byte() -> None:
    stream = load("tls12-ticket-full-s2c")
    assert watch(stream, [1] * len(stream)).result == watch(stream).result


def test_watcher_gives_up_after_max_bytes() -> None:
    stream = load("tls12-ticket-full-s2c")
    watcher = watch(stream, max_bytes=first_record_of(stream, 22, first_byte=4) + 10)
    assert watcher.done
    assert watcher.result is not None  # the ServerHello came first
    assert watcher.result.new_session_ticket is None
    tiny = watch(stream, max_bytes=50)  # not even the whole ServerHello
    assert tiny.done and tiny.result is None


def test_watcher_on_garbage_is_done_without_result() -> None:
    for junk in (b"HTTP/1.1 200 OK\r\n\r\n", b"\x16\x03\x03\x00\x04\x0b\x00\x00\x00"):
        watcher = watch(junk)
        assert watcher.done and watcher.result is None


def test_watcher_ignores_what_comes_after_done() -> None:
    stream = load("tls13-full-s2c")
    watcher = watch(stream)
    result = watcher.result
    watcher.feed(b"garbage that would be malformed")
    assert watcher.done and watcher.result == result


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 64), max_size=10))
def test_watcher_never_raises_on_random_bytes(data: bytes, sizes: list[int]) -> None:
    watcher = watch(data, sizes)
    assert watcher.result is None or isinstance(watcher.result, ServerHelloInfo)


@st.composite
def mutated_server(draw: st.DrawFn) -> bytes:
    data = bytearray(load(draw(st.sampled_from(SERVER_STREAMS)))[:800])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=200, deadline=None)
@given(mutated_server(), st.lists(st.integers(0, 100), max_size=10))
def test_watcher_never_raises_on_mutated_streams(data: bytes, sizes: list[int]) -> None:
    whole = watch(data)
    chunked = watch(data, sizes)
    assert (chunked.done, chunked.result) == (whole.done, whole.result)
