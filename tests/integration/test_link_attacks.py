"""A stranger on the link port: what it can make real nodes say and accept.

Every node's forward address is reachable by anyone on the farm's network.
These tests play the stranger against a running farm with raw sockets and the
frame codec. On plaintext links (chosen explicitly) the HELLO/AUTH handshake
alone must hold: relaying one node's handshake to another logs nobody in. On
mutual TLS links (the default) a stranger does not even get to HELLO without a
certificate of the farm CA naming the node it claims to be.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import resource
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from lb.certs import ensure_certs, load_ca, make_node_cert
from lb.wire import frames as fr
from tests.support.farm import HOST, Farm
from tests.support.wait import eventually_passes_async

pytestmark = pytest.mark.integration


class RawLink:
    """One TCP connection to a node's forward address, spoken frame by frame."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = fr.FrameDecoder()
        self.frames: list[fr.Frame] = []
        self.closed = False

    @classmethod
    async def open(cls, farm: Farm, node: str) -> RawLink:
        reader, writer = await asyncio.open_connection(HOST, farm.ports[node].forward)
        return cls(reader, writer)

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    async def read_for(self, seconds: float) -> list[fr.Frame]:
        """Frames that arrive within `seconds` (stops early when the node closes)."""
        got: list[fr.Frame] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.closed:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                data = await asyncio.wait_for(self.reader.read(65536), left)
            except TimeoutError:
                break
            except ConnectionError:
                data = b""
            if not data:
                self.closed = True
                break
            got += self.decoder.feed(data)
        self.frames += got
        return got

    async def first(self, ftype: fr.FrameType, seconds: float = 3.0) -> fr.Frame:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            for frame in self.frames:
                if frame.type == ftype:
                    return frame
            await self.read_for(min(0.2, max(0.01, deadline - loop.time())))
        raise AssertionError(f"no {ftype.name} within {seconds}s; got {self.frames}")

    def close(self) -> None:
        self.writer.close()


def _types(frames: list[fr.Frame]) -> list[str]:
    return [fr.FrameType(f.type).name if f.type < 0x40 else hex(f.type) for f in frames]


async def test_relaying_one_nodes_handshake_to_another_logs_nobody_in(
    make_farm: Callable[..., Farm],
) -> None:
    """The relay: a's HELLO to b, b's answer to a. Neither node may accept the stranger."""
    farm = make_farm(nodes=("a", "b"), link_security="plaintext")
    async with asyncio.timeout(30):
        to_a = await RawLink.open(farm, "a")
        to_b = await RawLink.open(farm, "b")
        try:
            hello_a = await to_a.first(fr.FrameType.HELLO)
            hello_b = await to_b.first(fr.FrameType.HELLO)
            _farm_a, name_a, _ = fr.parse_hello(hello_a.payload)
            _farm_b, name_b, _ = fr.parse_hello(hello_b.payload)
            assert (name_a, name_b) == ("a", "b")

            # "I am a" to b, with a's own nonce: whatever b proves in reply is
            # computed over a's nonce, exactly what a expects from b.
            to_b.send(fr.encode_frame(hello_a))
            from_b = await to_b.read_for(1.0)

            # "I am b" to a, with b's nonce, followed by everything b said.
            to_a.send(fr.encode_frame(hello_b), *(fr.encode_frame(f) for f in from_b))
            to_a.send(fr.encode_ping(7, 0))
            from_a = await to_a.read_for(3.0)
            assert not [f for f in from_a if f.type in (fr.FrameType.PONG, fr.FrameType.AUTH)], (
                f"node a answered a stranger as if it were b: {_types(from_a)}"
            )
            assert to_a.closed, "a frame before login must close the link"
            # A node proves who it is only to an initiator that proved it first.
            assert not [f for f in from_b if f.type == fr.FrameType.AUTH], _types(from_b)
        finally:
            to_a.close()
            to_b.close()
    # the farm's own links are untouched
    resp_ok = await asyncio.to_thread(farm._probe_http, "a", "b")
    assert resp_ok


async def test_reflecting_a_nodes_handshake_back_to_it_fails(
    make_farm: Callable[..., Farm],
) -> None:
    """Two connections to one node, each fed the other's frames: no login either way."""
    farm = make_farm(nodes=("a", "b"), link_security="plaintext")
    async with asyncio.timeout(30):
        first = await RawLink.open(farm, "a")
        second = await RawLink.open(farm, "a")
        try:
            h1 = await first.first(fr.FrameType.HELLO)
            await second.first(fr.FrameType.HELLO)
            # claim to be b on both, with nonces of our own and of a
            own = fr.encode_hello(farm.name, "b", os.urandom(fr.NONCE_SIZE))
            _, _, nonce_a1 = fr.parse_hello(h1.payload)
            second.send(fr.encode_hello(farm.name, "b", nonce_a1))
            first.send(own)
            f2 = await second.read_for(1.0)
            f1 = await first.read_for(1.0)
            for got in (f1, f2):
                assert not [f for f in got if f.type == fr.FrameType.AUTH], _types(got)
            # whatever came back, hand it over crosswise and ask for a PONG
            first.send(*(fr.encode_frame(f) for f in f2), fr.encode_ping(1, 0))
            second.send(*(fr.encode_frame(f) for f in f1), fr.encode_ping(2, 0))
            for conn in (first, second):
                got = await conn.read_for(3.0)
                assert not [f for f in got if f.type == fr.FrameType.PONG], _types(got)
                assert conn.closed
        finally:
            first.close()
            second.close()


async def test_a_silent_socket_on_the_link_port_is_closed_within_5s(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(nodes=("a", "b"), link_security="plaintext")
    async with asyncio.timeout(15):
        silent = await RawLink.open(farm, "a")
        try:
            t0 = asyncio.get_running_loop().time()
            await silent.read_for(8.0)
            took = asyncio.get_running_loop().time() - t0
            assert silent.closed, "a socket that never logs in stays open"
            assert took < 5.0, f"closed after {took:.1f} s"
            assert _types(silent.frames) == ["HELLO"]
        finally:
            silent.close()

    def failure_logged() -> None:
        fails = farm.events("a", "link_login_failed")
        assert fails and fails[0]["source"] == HOST, fails

    # failed logins are logged at most once a second
    await eventually_passes_async(failure_logged, timeout=1.1, what="no failed login logged")


async def test_a_frame_before_login_is_refused_from_its_header(
    make_farm: Callable[..., Farm],
) -> None:
    """A DATA header announcing 256 KiB: the node closes before any payload byte arrives."""
    farm = make_farm(nodes=("a", "b"), link_security="plaintext")
    async with asyncio.timeout(15):
        conn = await RawLink.open(farm, "a")
        try:
            header = fr.data_header(1, fr.MAX_PAYLOAD)
            conn.send(header)
            await conn.read_for(1.5)
            assert conn.closed
        finally:
            conn.close()


async def test_bad_proof_is_refused_and_logged(make_farm: Callable[..., Farm]) -> None:
    farm = make_farm(nodes=("a", "b"), link_security="plaintext")
    async with asyncio.timeout(15):
        conn = await RawLink.open(farm, "a")
        try:
            await conn.first(fr.FrameType.HELLO)
            conn.send(
                fr.encode_hello(farm.name, "b", os.urandom(fr.NONCE_SIZE)),
                fr.encode_auth(os.urandom(fr.AUTH_MAC_SIZE)),
            )
            got = await conn.read_for(2.0)
            assert conn.closed and not [f for f in got if f.type == fr.FrameType.AUTH]
        finally:
            conn.close()

    def bad_proof_logged() -> None:
        fails = farm.events("a", "link_login_failed")
        assert any("bad link authentication" in f.get("reason", "") for f in fails), fails
        assert any(f.get("claimed") == "b" for f in fails), fails

    await eventually_passes_async(
        bad_proof_logged, timeout=0.2, interval=0.02, what="bad proof not logged"
    )


def _open_idle_sockets(port: int, count: int) -> list[socket.socket]:
    out = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((HOST, port))
        out.append(s)
    return out


async def test_two_thousand_sockets_before_login_cost_little(
    make_farm: Callable[..., Farm],
) -> None:
    """Pre-login sockets are capped and each holds at most a handshake's bytes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2600:
        pytest.skip(f"descriptor limit {hard} < 2600")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    farm = make_farm(nodes=("a", "b"), link_security="plaintext")
    before = farm.rss_mib("a")
    socks = _open_idle_sockets(farm.ports["a"].forward, 2000)
    try:
        # fixed waits: the node gets a second to take the connections in, then one to read
        # what they send; the memory bound is measured after that (a poll would pass on an
        # early, low reading)
        await asyncio.sleep(1.0)
        # each sends the start of a HELLO that never completes (the most a socket may hold)
        partial = fr.encode_hello(farm.name, "b", os.urandom(fr.NONCE_SIZE))[:-1]
        for s in socks:
            with contextlib.suppress(OSError):
                s.send(partial)
        await asyncio.sleep(1.0)
        grown = farm.rss_mib("a") - before
        assert grown < 50, f"RSS grew {grown:.1f} MiB"
        # the farm keeps working meanwhile: a's own links are up
        assert await asyncio.to_thread(farm._probe_http, "b", "a")
        refused = [e for e in farm.events("a", "link_login_failed") if "too many" in e["reason"]]
        assert refused, "the cap on sockets before login never applied"
    finally:
        for s in socks:
            s.close()


# -- mutual TLS links (the default) ---------------------------------------------------------


def _client_context(certs: Path, node: str, ca: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=str(ca or certs / "ca.pem"))
    ctx.load_cert_chain(str(certs / f"{node}.pem"), str(certs / f"{node}.key"))
    return ctx


async def _tls_login(farm: Farm, node: str, ctx: ssl.SSLContext, claim: str = "b") -> RawLink:
    """TLS to `node`'s forward address with `ctx`, then a HELLO claiming to be `claim`."""
    reader, writer = await asyncio.open_connection(
        HOST, farm.ports[node].forward, ssl=ctx, server_hostname=node
    )
    link = RawLink(reader, writer)
    link.send(fr.encode_hello(farm.name, claim, os.urandom(fr.NONCE_SIZE)))
    return link


async def _refused(farm: Farm, ctx: ssl.SSLContext) -> bool:
    """Whether node a refuses a TLS login with `ctx` (at the handshake or right after it)."""
    try:
        async with asyncio.timeout(10):
            link = await _tls_login(farm, "a", ctx)
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    try:
        got = await link.read_for(3.0)
        return link.closed and not [f for f in got if f.type == fr.FrameType.AUTH]
    finally:
        link.close()


def _refusals(farm: Farm, node: str, text: str) -> list[dict[str, object]]:
    return [e for e in farm.events(node, "link_login_failed") if text in str(e.get("reason"))]


async def test_mtls_links_form_and_strangers_without_a_certificate_are_refused(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(nodes=("a", "b"))  # link_security = "mtls", certificates from lb certs
    assert await asyncio.to_thread(farm._probe_http, "a", "b")
    assert not farm.events("a", "links_in_plaintext")
    async with asyncio.timeout(15):
        plain = await RawLink.open(farm, "a")
        try:
            plain.send(fr.encode_hello(farm.name, "b", os.urandom(fr.NONCE_SIZE)))
            got = await plain.read_for(5.0)
            assert plain.closed and not got, _types(got)
        finally:
            plain.close()
    await eventually_passes_async(
        lambda: _assert(_refusals(farm, "a", "TLS handshake failed")),
        timeout=3.0,
        what="a logs the refused TLS handshake",
    )


def _assert(value: object) -> object:
    assert value
    return value


async def test_mtls_refuses_another_ca_an_expired_certificate_and_a_wrong_name(
    make_farm: Callable[..., Farm], tmp_path: Path
) -> None:
    farm = make_farm(nodes=("a", "b"))
    certs = farm.workdir / "certs"
    # 1. a certificate for "b" from another CA (same farm name)
    ensure_certs(tmp_path / "other", farm.name, ["b"])
    other = _client_context(tmp_path / "other", "b", certs / "ca.pem")
    assert await _refused(farm, other), "a certificate of another CA logged in"
    await eventually_passes_async(
        lambda: _assert(_refusals(farm, "a", "unable to get local issuer certificate")),
        timeout=3.0,
        what="a logs the certificate of another CA",
    )
    await asyncio.sleep(1.1)  # failed logins are logged at most once a second
    # 2. an expired certificate for "b" from the farm's own CA
    ca = load_ca(certs)
    assert ca is not None
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
    cert, key = make_node_cert(farm.name, "b", ca, past, days=1)
    expired = tmp_path / "expired"
    expired.mkdir()
    (expired / "b.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (expired / "b.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    assert await _refused(farm, _client_context(expired, "b", certs / "ca.pem")), (
        "an expired certificate logged in"
    )
    await eventually_passes_async(
        lambda: _assert(len(_refusals(farm, "a", "certificate has expired")) >= 1),
        timeout=3.0,
        what="a logs the expired certificate",
    )
    await asyncio.sleep(1.1)
    # 3. a valid certificate of node "b" whose HELLO claims another member
    async with asyncio.timeout(10):
        link = await _tls_login(farm, "a", _client_context(certs, "b"), claim="a")
        try:
            got = await link.read_for(3.0)
            assert link.closed and not [f for f in got if f.type == fr.FrameType.AUTH]
        finally:
            link.close()
    await eventually_passes_async(
        lambda: _assert(_refusals(farm, "a", "certificate names 'b', its HELLO 'a'")),
        timeout=3.0,
        what="a logs the certificate / HELLO mismatch",
    )
    # the farm's own links are untouched by all this
    assert await asyncio.to_thread(farm._probe_http, "b", "a")


async def test_a_silent_socket_on_an_mtls_link_port_is_closed_within_5s(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(nodes=("a", "b"))
    async with asyncio.timeout(15):
        silent = await RawLink.open(farm, "a")
        try:
            t0 = asyncio.get_running_loop().time()
            await silent.read_for(8.0)
            took = asyncio.get_running_loop().time() - t0
            assert silent.closed and took < 5.0, f"closed={silent.closed} after {took:.1f} s"
        finally:
            silent.close()


# -- a node that holds the secret may still only speak for itself ----------------------------


async def _login_as(farm: Farm, node: str, claim: str) -> RawLink:
    """A plaintext link to `node`, logged in as member `claim` with the farm secret."""
    from lb.link import Role, auth_mac, link_key

    link = await RawLink.open(farm, node)
    hello = await link.first(fr.FrameType.HELLO)
    _, _, responder_nonce = fr.parse_hello(hello.payload)
    nonce = os.urandom(fr.NONCE_SIZE)
    key = link_key(farm.secret.encode())
    link.send(
        fr.encode_hello(farm.name, claim, nonce),
        fr.encode_auth(auth_mac(key, Role.INITIATOR, nonce, responder_nonce, claim, node)),
    )
    await link.first(fr.FrameType.AUTH)
    return link


async def test_a_member_cannot_say_another_left_nor_pin_a_session_far_ahead(
    make_farm: Callable[..., Farm],
) -> None:
    """Logged in as b: "c LEFT at incarnation 2^64-1" and a directory version 2^64-1."""
    from lb.wire import membership as mw
    from lb.wire.directory import DirectoryEntry, encode_directory_frames

    farm = make_farm(link_security="plaintext")
    async with asyncio.timeout(30):
        rogue = await _login_as(farm, "a", "b")
        try:
            left = mw.NodeState("c", mw.MemberState.LEFT, 2**64 - 1)
            draining = mw.NodeState("c", mw.MemberState.DRAINING, 2**63)
            far = DirectoryEntry("cookie:pinned", "b", 2**64 - 1, 2**63)
            rogue.send(
                mw.encode_node_state_frame([left, draining]),
                *encode_directory_frames([far]),
                fr.encode_ping(99, 0),
            )
            # the PONG says a processed everything sent before the PING
            pong = await rogue.first(fr.FrameType.PONG)
            assert fr.parse_ping(pong.payload)[0] == 99
        finally:
            rogue.close()
    tables = farm.tables("a")
    assert tables["members"]["c"] == "alive", tables["members"]
    assert "c" in tables["live"]
    assert "cookie:pinned" not in tables["directory_sample"]
    # c still gets new sessions through a
    placed = set()
    for _ in range(30):
        resp = await asyncio.to_thread(farm._probe_http, "a", "c")
        placed.add(resp)
    assert placed == {True}
