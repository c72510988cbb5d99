"""lb.node.ticketkeys and the ticket modes of lb.node.servertls.ServerTls.

The derivation is checked as a function; the installed key by real OpenSSL
handshakes between ssl.SSLObjects over memory BIOs (no sockets): a session a
client got from one context resumes on another only when both hold the key.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import pytest

from lb.config.build import server_context
from lb.node.servertls import ServerTls
from lb.node.ticketkeys import (
    TICKET_KEY_BYTES,
    TICKET_KEY_PERIOD,
    install_ticket_key,
    ticket_epoch,
    ticket_key,
)
from tests.support.pem import write_self_signed

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    return write_self_signed(
        tmp_path_factory.mktemp("ticketkeys"), start, start + datetime.timedelta(days=3)
    )


_CLIENTS: dict[ssl.TLSVersion, ssl.SSLContext] = {}


def _client_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    """One client context per version: a client resumes a session only from its own."""
    if version in _CLIENTS:
        return _CLIENTS[version]
    ctx = _CLIENTS[version] = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def _pump(src: ssl.MemoryBIO, dst: ssl.MemoryBIO) -> bool:
    data = src.read()
    dst.write(data)
    return bool(data)


def handshake(
    server: ssl.SSLContext, version: ssl.TLSVersion, session: ssl.SSLSession | None = None
) -> tuple[bool, ssl.SSLSession | None]:
    """One full exchange over memory BIOs: (the client's session was reused, the
    session the client holds after the server's tickets)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = _client_context(version).wrap_bio(c_in, c_out, server_hostname="localhost")
    if session is not None:
        client.session = session
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(20):
        for n, end in enumerate((client, srv)):
            if not done[n]:
                try:
                    end.do_handshake()
                    done[n] = True
                except ssl.SSLWantReadError:
                    pass
        moved = _pump(c_out, s_in) | _pump(s_out, c_in)
        if all(done) and not moved:
            break
    assert all(done)
    # TLS 1.3 tickets come after the handshake: the server writes them on its first
    # write, the client takes them on its first read
    srv.write(b"x")
    _pump(s_out, c_in)
    assert client.read(1) == b"x"
    return client.session_reused, client.session


def _sealed_session(server: ssl.SSLContext, version: ssl.TLSVersion) -> ssl.SSLSession:
    reused, session = handshake(server, version)
    assert not reused and session is not None and session.has_ticket
    return session


VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]


def test_the_key_is_openssls_size_and_one_per_farm_service_and_epoch() -> None:
    key = ticket_key(SECRET, "farm", "web", 7)
    assert len(key) == TICKET_KEY_BYTES
    assert key == ticket_key(SECRET, "farm", "web", 7)  # every node derives the same
    others = {
        ticket_key(SECRET, "farm", "web", 8),
        ticket_key(SECRET, "farm", "api", 7),
        ticket_key(SECRET, "other", "web", 7),
        ticket_key(SECRET[::-1], "farm", "web", 7),
        key,
    }
    assert len(others) == 5
    assert len({k[:16] for k in others}) == 5  # the key names differ too


def test_the_epoch_turns_every_period() -> None:
    start = ticket_epoch(NOW - NOW % TICKET_KEY_PERIOD)
    assert ticket_epoch(NOW - NOW % TICKET_KEY_PERIOD + TICKET_KEY_PERIOD - 0.001) == start
    assert ticket_epoch(NOW - NOW % TICKET_KEY_PERIOD + TICKET_KEY_PERIOD) == start + 1


def test_a_key_of_the_wrong_size_is_refused(cert_files: tuple[Path, Path]) -> None:
    with pytest.raises(ValueError):
        install_ticket_key(server_context(*cert_files), b"short")


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_two_contexts_with_one_installed_key_resume_each_others_sessions(
    cert_files: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    one, two, stranger = (server_context(*cert_files) for _ in range(3))
    key = ticket_key(SECRET, "farm", "web", 1)
    assert install_ticket_key(one, key) and install_ticket_key(two, key)
    session = _sealed_session(one, version)
    assert handshake(two, version, session)[0]  # another worker or node: resumed
    assert not handshake(stranger, version, session)[0]  # OpenSSL's own key: full


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_farm_tickets_survive_a_reload_and_turn_with_the_hour(
    cert_files: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    node_a = ServerTls("web", *cert_files, tickets="farm", farm="farm", secret=SECRET)
    node_b = ServerTls("web", *cert_files, tickets="farm", farm="farm", secret=SECRET)
    session = _sealed_session(node_a.context, version)
    assert handshake(node_b.context, version, session)[0]
    node_b.reload()  # a renewed certificate: a fresh context, the hour's key again
    assert handshake(node_b.context, version, session)[0]
    assert node_b.epoch is not None
    next_hour = (node_b.epoch + 1) * TICKET_KEY_PERIOD
    node_b.refresh_ticket_key(next_hour - 1)  # the same hour: nothing changes
    assert handshake(node_b.context, version, session)[0]
    node_b.refresh_ticket_key(next_hour)
    assert node_b.epoch == ticket_epoch(next_hour)
    assert not handshake(node_b.context, version, session)[0]


@pytest.mark.parametrize("version", VERSIONS, ids=["tls1.2", "tls1.3"])
def test_worker_tickets_resume_only_on_their_context_and_off_seals_none(
    cert_files: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    one = ServerTls("web", *cert_files, tickets="worker", farm="farm", secret=SECRET)
    two = ServerTls("web", *cert_files, tickets="worker", farm="farm", secret=SECRET)
    session = _sealed_session(one.context, version)
    assert handshake(one.context, version, session)[0]
    assert not handshake(two.context, version, session)[0]
    # off: no stateless ticket (TLS 1.2 may resume by session id, TLS 1.3 by OpenSSL's
    # stateful ticket, a handle into the process's own session cache), so never on
    # another context
    off = ServerTls("web", *cert_files, tickets="off", farm="farm", secret=SECRET)
    _, session = handshake(off.context, version)
    assert session is not None
    if version == ssl.TLSVersion.TLSv1_2:
        assert not session.has_ticket
    other = ServerTls("web", *cert_files, tickets="off", farm="farm", secret=SECRET)
    assert not handshake(other.context, version, session)[0]
