"""lb.node.upstream.UpstreamPool: last in first out, bounded, idle ones expire, per home."""

from __future__ import annotations

from lb.node.upstream import POOL_MAX_IDLE, Upstream, UpstreamPool


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Recorded(Upstream):
    """An upstream without a transport: records how it was closed."""

    __slots__ = ("how", "reading")

    def __init__(self, pool: UpstreamPool, home: str, service: str = "web") -> None:
        super().__init__(pool, (home, service), home)
        self.how: str | None = None
        self.reading = True

    def pause_response(self) -> None:
        self.response_paused = True
        self.reading = False

    def resume_response(self) -> None:
        self.response_paused = False
        self.reading = True

    def close(self, clean: bool) -> None:
        self.pool.discard(self)
        self.closed = True
        self.how = "clean" if clean else "abort"


def test_last_in_first_out_per_home_and_service() -> None:
    pool = UpstreamPool(Clock(), 10.0)
    a1, a2, b1 = Recorded(pool, "a"), Recorded(pool, "a"), Recorded(pool, "b")
    for up in (a1, a2, b1):
        up.release(reusable=True)
    assert pool.take(("a", "web")) is a2
    assert pool.take(("a", "web")) is a1
    assert pool.take(("a", "web")) is None
    assert pool.take(("b", "other")) is None
    assert pool.take(("b", "web")) is b1
    assert a1.reused and a2.reused


def test_not_reusable_is_closed_cleanly_and_not_pooled() -> None:
    pool = UpstreamPool(Clock(), 10.0)
    up = Recorded(pool, "a")
    up.release(reusable=False)
    assert up.how == "clean"
    assert pool.take(("a", "web")) is None


def test_bounded_per_key() -> None:
    pool = UpstreamPool(Clock(), 10.0)
    ups = [Recorded(pool, "a") for _ in range(POOL_MAX_IDLE + 3)]
    for up in ups:
        up.release(reusable=True)
    assert len(pool) == POOL_MAX_IDLE
    assert [up.how for up in ups[-3:]] == ["clean"] * 3


def test_idle_ones_expire_oldest_first() -> None:
    clock = Clock()
    pool = UpstreamPool(clock, 10.0)
    old, new = Recorded(pool, "a"), Recorded(pool, "a")
    old.release(reusable=True)
    clock.t += 6
    new.release(reusable=True)
    clock.t += 5  # old idle 11 s, new 5 s
    pool.sweep()
    assert old.how == "clean" and new.how is None
    assert pool.take(("a", "web")) is new
    clock.t += 20
    pool.sweep()
    assert pool.describe() == {}


def test_close_home_and_describe() -> None:
    pool = UpstreamPool(Clock(), 10.0)
    a, b = Recorded(pool, "a"), Recorded(pool, "b")
    a.release(reusable=True)
    b.release(reusable=True)
    assert pool.describe() == {"a": [0], "b": [0]}
    pool.close_home("a")
    assert a.how == "clean" and b.how is None
    assert pool.describe() == {"b": [0]}


def test_closed_upstreams_are_skipped_and_idle_eof_forgets() -> None:
    pool = UpstreamPool(Clock(), 10.0)
    a, b = Recorded(pool, "a"), Recorded(pool, "a")
    a.release(reusable=True)
    b.release(reusable=True)
    b._eof()  # the application closed an idle connection
    assert b.how == "clean"
    assert pool.take(("a", "web")) is a


def test_a_paused_response_ends_with_its_exchange() -> None:
    """The client paused the response and the exchange ended meanwhile: the upstream
    goes back to the pool reading again (else the next request's response stalls)."""
    pool = UpstreamPool(Clock(), 10.0)
    up = Recorded(pool, "a")
    up.pause_response()
    up.release(reusable=True)
    assert pool.take(("a", "web")) is up
    assert up.reading and not up.response_paused


def test_upstreams_to_a_home_that_drains_are_not_kept() -> None:
    """A draining (or departed) home's flows must end between requests, or its drain
    never finishes while its sessions keep asking."""
    draining = {"b"}
    pool = UpstreamPool(Clock(), 10.0, keeps=lambda home: home not in draining)
    a, b = Recorded(pool, "a"), Recorded(pool, "b")
    a.release(reusable=True)
    b.release(reusable=True)
    assert b.how == "clean" and pool.take(("b", "web")) is None
    assert a.how is None and pool.take(("a", "web")) is a
