"""Tests of lb.node.learn.SessionLearner: what it registers from a recorded TLS server
flight, and the response bytes it holds until every registration is released (issue 11)."""

from __future__ import annotations

from collections.abc import Callable

from lb.extract.tls import digest
from lb.node.learn import SessionLearner
from tests.fixtures.tls.sessions import load, session_id, ticket

SID_FLIGHT = load("tls12-sid-full-s2c")  # a TLS 1.2 ServerHello with a session id
TICKET_FLIGHT = load("tls12-ticket-full-s2c")  # empty session id, then NewSessionTicket


class Owners:
    """Registrations answered by hand: done now, or released later."""

    def __init__(self, done_now: bool) -> None:
        self.done_now = done_now
        self.calls: list[tuple[str, str, float | None]] = []
        self.releases: list[Callable[[], None]] = []

    def __call__(
        self, kind: str, value: str, ttl: float | None, release: Callable[[], None]
    ) -> bool:
        self.calls.append((kind, value, ttl))
        self.releases.append(release)
        return self.done_now


def test_a_registration_done_now_holds_nothing() -> None:
    owners = Owners(done_now=True)
    learner = SessionLearner(owners, tls=True)
    assert learner.feed(SID_FLIGHT)
    assert owners.calls == [("tls-session-id", session_id("tls12-sid").hex(), None)]
    assert not learner.hold(SID_FLIGHT, lambda data, eof: None)
    assert learner.finished


def test_the_response_waits_for_the_release_in_order_and_with_its_eof() -> None:
    owners = Owners(done_now=False)
    learner = SessionLearner(owners, tls=True)
    out: list[tuple[bytes, bool]] = []
    first, rest = TICKET_FLIGHT[:20], TICKET_FLIGHT[20:]
    assert not learner.feed(first)
    assert not learner.hold(first, lambda d, e: out.append((d, e)))  # nothing learned yet
    assert learner.feed(rest)
    assert owners.calls == [("tls-ticket", digest(ticket("tls12-ticket")), None)]
    assert learner.hold(rest, lambda d, e: out.append((d, e)))
    assert learner.hold(b"application data", lambda d, e: out.append((d, e)))
    assert learner.hold_eof()
    assert out == [] and not learner.finished
    owners.releases[0]()
    assert out == [(rest + b"application data", True)]
    assert learner.finished
    owners.releases[0]()  # a second release changes nothing
    assert out == [(rest + b"application data", True)]


def test_nothing_is_learned_without_tls() -> None:
    owners = Owners(done_now=False)
    learner = SessionLearner(owners, tls=False)
    assert learner.feed(SID_FLIGHT)
    assert owners.calls == []
    assert not learner.hold(b"x", lambda d, e: None)
    assert learner.finished
