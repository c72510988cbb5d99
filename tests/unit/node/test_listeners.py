"""lb.node.listeners.accept_queued: a closing listener takes its accept queue first.

Real loopback sockets: connects whose handshake the kernel completed wait in a
listening socket's accept queue until accept_queued takes them.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from lb.node import listeners
from lb.node.listeners import accept_queued

QUEUED = 5


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0), backlog=64)
    sock.setblocking(False)
    with sock:
        yield sock


def connect(sock: socket.socket, n: int) -> list[socket.socket]:
    return [socket.create_connection(sock.getsockname(), timeout=2.0) for _ in range(n)]


def test_every_queued_connect_is_taken_until_the_queue_is_empty(
    listening: socket.socket,
) -> None:
    clients = connect(listening, QUEUED)
    taken: list[tuple[socket.socket, str]] = []
    errors: list[OSError] = []
    try:
        assert accept_queued(listening, lambda c, a: taken.append((c, a)), errors.append) == QUEUED
        assert [a for _, a in taken] == ["127.0.0.1"] * QUEUED
        assert all(not c.getblocking() for c, _ in taken)
        # each is the server side of one of the clients
        assert {c.getpeername() for c, _ in taken} == {c.getsockname() for c in clients}
        assert errors == []
        assert accept_queued(listening, lambda c, a: taken.append((c, a)), errors.append) == 0
    finally:
        for s in clients + [c for c, _ in taken]:
            s.close()


def test_a_closing_listener_takes_no_more_than_a_full_queue(
    listening: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listeners, "MAX_QUEUED", 3)
    clients = connect(listening, QUEUED)
    taken: list[socket.socket] = []
    try:
        assert accept_queued(listening, lambda c, a: taken.append(c), lambda e: None) == 3
        assert accept_queued(listening, lambda c, a: taken.append(c), lambda e: None) == 2
    finally:
        for s in clients + taken:
            s.close()


def test_a_failed_accept_is_reported_and_ends_it() -> None:
    with socket.socket() as not_listening:
        not_listening.bind(("127.0.0.1", 0))
        not_listening.setblocking(False)
        errors: list[OSError] = []
        assert accept_queued(not_listening, lambda c, a: None, errors.append) == 0
    assert len(errors) == 1 and not isinstance(errors[0], BlockingIOError)
