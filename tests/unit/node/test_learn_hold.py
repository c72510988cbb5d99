"""Tests of lb.node.learn.SessionLearner: what it registers, and the response bytes it
holds until every registration is released (issue 11)."""

from __future__ import annotations

from collections.abc import Callable

from lb.node.learn import SessionLearner

HEAD = b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc; Path=/\r\nContent-Length: 5\r\n\r\n"


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
    learner = SessionLearner(owners, ("sid",), tls=False)
    learner.feed(HEAD)
    assert owners.calls == [("cookie", "sid=abc", None)]
    assert not learner.hold(HEAD, lambda data, eof: None)
    assert learner.finished


def test_the_response_waits_for_the_release_in_order_and_with_its_eof() -> None:
    owners = Owners(done_now=False)
    learner = SessionLearner(owners, ("sid",), tls=False)
    out: list[tuple[bytes, bool]] = []
    learner.feed(HEAD[:20])
    assert not learner.hold(HEAD[:20], lambda d, e: out.append((d, e)))  # nothing learned yet
    learner.feed(HEAD[20:])
    assert learner.hold(HEAD[20:], lambda d, e: out.append((d, e)))
    learner.feed(b"hello")
    assert learner.hold(b"hello", lambda d, e: out.append((d, e)))
    assert learner.hold_eof()
    assert out == [] and not learner.finished
    owners.releases[0]()
    assert out == [(HEAD[20:] + b"hello", True)]
    assert learner.finished
    owners.releases[0]()  # a second release changes nothing
    assert out == [(HEAD[20:] + b"hello", True)]


def test_two_findings_wait_for_both() -> None:
    owners = Owners(done_now=False)
    learner = SessionLearner(owners, ("sid", "other"), tls=False)
    head = HEAD.replace(b"\r\n\r\n", b"\r\nSet-Cookie: other=x\r\n\r\n")
    out: list[bytes] = []
    learner.feed(head)
    assert [c[1] for c in owners.calls] == ["sid=abc", "other=x"]
    assert learner.hold(head, lambda d, e: out.append(d))
    owners.releases[1]()
    assert out == []
    owners.releases[0]()
    assert out == [head]


def test_a_deletion_is_not_registered() -> None:
    owners = Owners(done_now=False)
    learner = SessionLearner(owners, ("sid",), tls=False)
    learner.feed(b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=; Max-Age=0\r\n\r\n")
    assert owners.calls == []
    assert not learner.hold(b"x", lambda d, e: None)
