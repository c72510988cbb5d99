"""Tests of lb.routing.route with the client's address: new sessions of one client agree,
retry away from an unreachable home, and nodes whose sessions are re-homed (FarmView.rehomed).
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from lb.extract.api import Identifier
from lb.routing.cookie import CookieKeyring
from lb.routing.directory import Directory
from lb.routing.maglev import MaglevTable
from lb.routing.memory import PlacementMemory
from lb.routing.placement import least_loaded_of_two_with_slack, source_salt
from lb.routing.route import REASONS, Decision, Router
from lb.routing.view import FarmView, NodeInfo

SECRET = b"farm-secret-for-route-tests-0123456789"
KEYRING = CookieKeyring("prod", SECRET)
NOW = 1_700_000_000.0  # a multiple of the 10 s hold: NOW starts a window
HOLD = 10.0
NAMES = ("n1", "n2", "n3", "n4")
PLACED = ("new-session", "home-cookie-rehomed", "directory-miss", "directory-rehomed")


def make_view(
    live: tuple[str, ...] = NAMES,
    loads: dict[str, float] | None = None,
    draining: tuple[str, ...] = (),
    rehomed: tuple[str, ...] = (),
    self_name: str = "n1",
) -> FarmView:
    return FarmView(
        self_name,
        {n: NodeInfo(n, ("127.0.0.1", 7000), {}, 1) for n in NAMES},
        frozenset(live),
        loads or {},
        frozenset(draining),
        frozenset(rehomed),
    )


def router(entries: int = 100, directory: Directory | None = None) -> Router:
    return Router(KEYRING, directory, memory=PlacementMemory(entries, HOLD))


def cookie(home: str) -> Identifier:
    return Identifier("home-cookie", KEYRING.sign(home, int(NOW) + 3600), "home-cookie")


# --- new sessions of one client agree ------------------------------------------------


def test_parallel_new_sessions_of_one_client_share_a_home_while_loads_move() -> None:
    r = router()
    first = r.route(None, make_view(), NOW, 1, "203.0.113.7")
    assert first.new_session and first.reason == "new-session"
    for i in range(1, 6):
        # each connection has its own salt; the view's loads change under them
        loads = {first.home: float(10 * i), **{n: 0.0 for n in NAMES if n != first.home}}
        d = r.route(None, make_view(loads=loads), NOW + 0.1 * i, 1000 + i, "203.0.113.7")
        assert d == first


def test_without_the_client_address_each_connection_is_placed_on_its_own() -> None:
    homes = {router().route(None, make_view(), NOW, salt).home for salt in range(200)}
    assert homes == set(NAMES)


def test_two_processes_without_shared_memory_agree_on_a_client() -> None:
    view = make_view(loads={"n1": 2.0, "n2": 1.0, "n3": 3.0, "n4": 1.0})
    for i in range(200):
        client = f"198.51.100.{i}"
        worker0, worker1 = router(), router()
        a = worker0.route(None, view, NOW + 1.0, 17, client)
        b = worker1.route(None, view, NOW + 2.0, 99_999, client)
        assert a.home == b.home


def test_clients_spread_over_the_farm() -> None:
    r = router(entries=1000)
    homes = Counter(r.route(None, make_view(), NOW, 0, f"10.1.{i // 250}.{i % 250}").home
                    for i in range(1000))  # fmt: skip
    assert set(homes) == set(NAMES)
    assert all(150 < n < 350 for n in homes.values()), homes


def test_the_placement_of_a_client_is_the_pair_of_its_source_salt_with_slack() -> None:
    view = make_view(loads={"n1": 50.0, "n2": 10.0, "n3": 900.0, "n4": 45.0})
    r = Router(KEYRING)  # no memory: the rule alone
    homes = Counter()
    for i in range(200):
        client = f"192.0.2.{i}"
        salt = source_salt(client, NOW, HOLD)
        expected = least_loaded_of_two_with_slack(view.placeable(), view.loads, salt)
        d = r.route(None, view, NOW, i, client)
        assert d.home == expected
        homes[d.home] += 1
    assert "n3" not in homes  # far the most loaded: it never wins a pair
    assert homes["n2"] > homes["n1"]  # clearly less loaded: wins its pairs with n1 and n4


def test_processes_whose_loads_differ_a_little_still_agree() -> None:
    # two workers (or entries) heard the loads at different moments of a burst
    one = make_view(loads={"n1": 3.0, "n2": 0.0, "n3": 120.0, "n4": 100.0})
    other = make_view(loads={"n1": 0.0, "n2": 6.0, "n3": 100.0, "n4": 115.0})
    for i in range(300):
        client = f"198.18.{i // 200}.{i % 200}"
        assert Router(KEYRING).route(None, one, NOW, 1, client).home == (
            Router(KEYRING).route(None, other, NOW, 2, client).home
        )


def test_an_ipv6_client_is_its_64() -> None:
    r = router()
    a = r.route(None, make_view(), NOW, 1, "2001:db8:1:2::1")
    b = r.route(None, make_view(), NOW, 2, "2001:db8:1:2:ffff::9")
    assert a.home == b.home
    assert r.memory is not None and len(r.memory) == 1
    mapped = r.route(None, make_view(), NOW, 3, "::ffff:192.0.2.1")
    plain = router().route(None, make_view(), NOW, 4, "192.0.2.1")
    assert mapped.home == plain.home


def test_every_placement_row_holds_the_client() -> None:
    directory = Directory()
    directory.learn("cookie:S=1", "gone", NOW, 3600)
    r = router(directory=directory)
    view = make_view()
    client = "203.0.113.9"
    first = r.route(None, view, NOW, 1, client)
    rows = [
        cookie("gone"),  # home-cookie-rehomed
        Identifier("cookie", "S=1", "directory"),  # directory-rehomed
        Identifier("cookie", "S=2", "directory"),  # directory-miss
        Identifier("x", "y", "unknown-placement"),  # new-session
    ]
    for ident in rows:
        d = r.route(ident, view, NOW + 1, 5, client)
        assert d.home == first.home and d.new_session


def test_a_remembered_home_that_died_drains_or_is_rehomed_is_not_returned() -> None:
    client = "203.0.113.50"
    for change in ("dead", "draining", "rehomed"):
        r = router()
        first = r.route(None, make_view(), NOW, 1, client).home
        others = tuple(n for n in NAMES if n != first)
        view = {
            "dead": make_view(live=others),
            "draining": make_view(draining=(first,)),
            "rehomed": make_view(rehomed=(first,)),
        }[change]
        moved = r.route(None, view, NOW + 1, 2, client)
        assert moved.home != first and moved.home in others
        # the new home is held from now on, also when the old one comes back
        assert r.route(None, make_view(), NOW + 2, 3, client).home == moved.home


def test_after_the_hold_a_client_is_placed_afresh() -> None:
    # one address (a NAT): its users share a home for the hold; later windows spread it
    r = router()
    client = "192.0.2.200"
    homes = Counter()
    for k in range(400):
        now = NOW + k * HOLD
        d = r.route(None, make_view(), now, k, client)
        assert r.route(None, make_view(), now + HOLD - 0.001, k + 1, client) == d
        homes[d.home] += 1
    assert set(homes) == set(NAMES)
    assert all(60 < n < 140 for n in homes.values()), homes


def test_a_full_memory_still_places_by_the_address_alone() -> None:
    view = make_view(loads={"n1": 1.0, "n2": 0.0, "n3": 2.0, "n4": 0.5})
    r = router(entries=4)
    for i in range(4):
        r.route(None, view, NOW, i, f"10.9.0.{i}")
    assert r.memory is not None and len(r.memory) == 4
    fresh = Router(KEYRING)
    for i in range(4, 60):
        client = f"10.9.0.{i}"
        d = r.route(None, view, NOW + 1, i, client)
        assert d.home == fresh.route(None, view, NOW + 1, 7 * i, client).home
        assert d == r.route(None, view, NOW + 1, i + 1000, client)
    assert len(r.memory) == 4
    assert r.memory.refused > 0


views = st.builds(
    lambda live, draining, rehomed, loads: make_view(
        live=("n1", *live), draining=tuple(draining), rehomed=tuple(rehomed), loads=loads
    ),
    st.sets(st.sampled_from(NAMES[1:])),
    st.sets(st.sampled_from(NAMES)),
    st.sets(st.sampled_from(NAMES)),
    st.dictionaries(st.sampled_from(NAMES), st.floats(0, 5, allow_nan=False)),
)


@settings(max_examples=200, deadline=None)
@given(
    script=st.lists(
        st.tuples(views, st.integers(0, 5), st.floats(0, 4), st.integers()), max_size=40
    ),
    entries=st.integers(0, 3),
)
def test_placements_are_always_placeable_and_the_memory_bounded(
    script: list[tuple[FarmView, int, float, int]], entries: int
) -> None:
    r = router(entries=entries)
    now = NOW
    for view, client, step, salt in script:
        now += step
        d = r.route(None, view, now, salt, f"10.0.0.{client}")
        assert d.home in view.placeable()  # never a dead, draining or re-homed home if avoidable
        assert d.local == (d.home == view.self_name)
        assert d.new_session and d.reason in REASONS
        assert r.memory is not None and len(r.memory) <= entries


# --- retry on another node ---------------------------------------------------------------


def test_retry_never_returns_the_failed_home_and_moves_the_client() -> None:
    view = make_view()
    for i in range(100):
        r = router()
        client = f"198.51.100.{i}"
        first = r.route(None, view, NOW, i, client)
        again = r.retry(first.home, view, NOW + 0.5, i, client)
        assert again is not None
        assert again.home != first.home and again.home in NAMES
        assert (again.new_session, again.reason) == (True, "retry")
        assert again.local == (again.home == "n1")
        # the client's next new sessions follow the retry instead of failing the same way
        assert r.route(None, view, NOW + 1, i + 1, client).home == again.home


def test_retry_places_only_on_placeable_nodes() -> None:
    view = make_view(live=("n1", "n2", "n3"), draining=("n2",), rehomed=("n1",))
    for salt in range(50):
        d = Router(KEYRING).retry("n4", view, NOW, salt)
        assert d is not None and d.home == "n3"
    assert Router(KEYRING).retry("n3", view, NOW, 1, "192.0.2.1") is None  # nobody else
    only_self = make_view(live=("n1",))
    assert Router(KEYRING).retry("n1", only_self, NOW, 1) is None


def test_retry_without_the_client_spreads_by_salt() -> None:
    homes = {Router(KEYRING).retry("n2", make_view(), NOW, s).home for s in range(200)}  # type: ignore[union-attr]
    assert homes == {"n1", "n3", "n4"}


# --- re-homed nodes (their application stayed down) ----------------------------------------


def test_a_cookie_for_a_rehomed_node_is_rehomed() -> None:
    view = make_view(rehomed=("n3",), draining=("n3",))
    homes = set()
    for salt in range(200):
        d = Router(KEYRING).route(cookie("n3"), view, NOW, salt)
        assert d.reason == "home-cookie-rehomed" and d.new_session
        homes.add(d.home)
    assert homes == {"n1", "n2", "n4"}


def test_this_node_rehomed_sends_its_own_sessions_away() -> None:
    view = make_view(rehomed=("n1",), draining=("n1",))
    for salt in range(100):
        d = Router(KEYRING).route(cookie("n1"), view, NOW, salt)
        assert d.reason == "home-cookie-rehomed" and not d.local and d.home != "n1"


def test_a_directory_entry_for_a_rehomed_node_is_rehomed() -> None:
    directory = Directory()
    directory.learn("cookie:S=1", "n2", NOW, 3600)
    r = Router(KEYRING, directory)
    d = r.route(Identifier("cookie", "S=1", "directory"), make_view(rehomed=("n2",)), NOW, 3)
    assert d.reason == "directory-rehomed" and d.home != "n2"
    kept = r.route(Identifier("cookie", "S=1", "directory"), make_view(draining=("n2",)), NOW, 3)
    assert kept == Decision("n2", False, False, "directory")  # draining alone keeps it


def test_hashed_identifiers_leave_a_rehomed_node_like_a_dead_one() -> None:
    r = Router(KEYRING)
    rehomed = make_view(rehomed=("n3",))
    dead = make_view(live=("n1", "n2", "n4"))
    table = MaglevTable({"n1": 1, "n2": 1, "n4": 1})
    for i in range(300):
        ident = Identifier("uri", f"/p/{i}", "hash")
        assert r.route(ident, rehomed, NOW, 0).home == r.route(ident, dead, NOW, 0).home
        assert r.route(ident, rehomed, NOW, 0).home == table.lookup(f"uri:/p/{i}")


def test_when_every_node_is_rehomed_sessions_still_go_somewhere() -> None:
    view = make_view(live=("n1", "n2"), rehomed=("n1", "n2"), draining=("n1", "n2"))
    assert {Router(KEYRING).route(None, view, NOW, s).home for s in range(50)} == {"n1", "n2"}
    assert Router(KEYRING).route(cookie("n2"), view, NOW, 1).reason == "home-cookie-rehomed"


@settings(max_examples=200, deadline=None)
@given(view=views, salt=st.integers(), client=st.none() | st.sampled_from(["10.0.0.1", "::1"]))
def test_rehomed_homes_never_keep_a_session(view: FarmView, salt: int, client: str | None) -> None:
    r = router()
    for home in NAMES:
        d = r.route(cookie(home), view, NOW, salt, client)
        if home in view.live and home not in view.rehomed:
            assert d == Decision(home, home == "n1", False, "home-cookie")
        else:
            assert d.reason == "home-cookie-rehomed" and d.home in view.placeable()
            if view.live - view.rehomed:
                assert d.home not in view.rehomed


# --- several workers: worker 0's word (Router.fresh_source, Router.hold_for_source) --------


def test_fresh_source_names_a_fresh_placement_and_only_that() -> None:
    r = router()
    view = make_view()
    r.route(None, view, NOW, 1, "203.0.113.7")
    assert r.fresh_source == "203.0.113.7"
    r.route(None, view, NOW + 1, 2, "203.0.113.7")  # recalled from the memory
    assert r.fresh_source is None
    r.route(None, view, NOW, 3, "2001:db8:1:2::9")
    assert r.fresh_source == "2001:db8:1:2::/64"  # the source key, as the memory holds it
    r.route(None, view, NOW, 4, None)  # no client: placed alone
    assert r.fresh_source is None


def test_worker_0_answers_what_it_holds_else_the_askers_choice() -> None:
    r = router()
    view = make_view()
    # nothing held: the asker's choice, held from now
    assert r.hold_for_source("203.0.113.7", "n3", view, NOW) == ("n3", NOW)
    # held: the held home and its placement time, whatever a later asker proposes
    assert r.hold_for_source("203.0.113.7", "n2", view, NOW + 2) == ("n3", NOW)
    # and worker 0's own requests from that source go there too
    assert r.route(None, view, NOW + 3, 9, "203.0.113.7").home == "n3"


def test_worker_0_does_not_hold_a_home_it_cannot_place_on() -> None:
    r = router()
    # the asker's choice is draining in worker 0's view: worker 0 places by its rule
    view = make_view(draining=("n3",))
    home, at = r.hold_for_source("198.51.100.1", "n3", view, NOW)
    salt = source_salt("198.51.100.1", NOW, HOLD)
    assert (home, at) == (least_loaded_of_two_with_slack(view.placeable(), {}, salt), NOW)
    assert home != "n3"
    # a held home that went away is replaced the same way
    gone = make_view(live=tuple(n for n in NAMES if n != home))
    again, at2 = r.hold_for_source("198.51.100.1", home, gone, NOW + 1)
    assert again != home and again in gone.placeable() and at2 == NOW + 1


def test_without_a_memory_worker_0_takes_the_askers_placeable_choice() -> None:
    r = Router(KEYRING)
    view = make_view()
    assert r.hold_for_source("203.0.113.7", "n2", view, NOW) == ("n2", NOW)
    assert r.hold_for_source("203.0.113.7", "n4", view, NOW) == ("n4", NOW)
