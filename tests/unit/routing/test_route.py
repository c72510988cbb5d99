"""Tests of lb.routing.route: every row of the route() decision table, determinism, caching."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.extract.api import Identifier
from lb.routing.cookie import CookieKeyring
from lb.routing.directory import Directory
from lb.routing.maglev import MaglevTable
from lb.routing.route import MAX_CACHED_DECISIONS, MAX_CACHED_TABLES, REASONS, Decision, Router
from lb.routing.view import FarmView, NodeInfo

SECRET = b"farm-secret-for-route-tests-0123456789"
NOW = 1_700_000_000.0
LATER = int(NOW) + 3600
NAMES = ("n1", "n2", "n3", "n4")


def node(name: str, weight: int = 1) -> NodeInfo:
    return NodeInfo(name, ("127.0.0.1", 7000), {"http": ("127.0.0.1", 8080)}, weight)


def make_view(
    self_name: str = "n1",
    live: tuple[str, ...] = NAMES,
    loads: dict[str, float] | None = None,
    draining: tuple[str, ...] = (),
    weights: dict[str, int] | None = None,
) -> FarmView:
    weights = weights or {}
    return FarmView(
        self_name=self_name,
        nodes={n: node(n, weights.get(n, 1)) for n in NAMES},
        live=frozenset(live),
        loads=loads or {},
        draining=frozenset(draining),
    )


KEYRING = CookieKeyring("prod", SECRET)


def cookie(home: str, expires: int = LATER, ring: CookieKeyring = KEYRING) -> Identifier:
    return Identifier("home-cookie", ring.sign(home, expires), "home-cookie")


def test_reasons_are_the_metrics_labels() -> None:
    assert REASONS == (
        "home-cookie",
        "home-cookie-rehomed",
        "hash",
        "new-session",
        "directory",
        "directory-rehomed",
        "directory-miss",
        "retry",
    )


# --- row: no identifier -> new session by load ---------------------------------------


def test_no_identifier_places_a_new_session_on_the_less_loaded_node() -> None:
    view = make_view(loads={"n1": 0.9, "n2": 0.0, "n3": 0.8, "n4": 0.7})
    router = Router(KEYRING)
    homes: Counter[str] = Counter()
    for salt in range(400):
        d = router.route(None, view, NOW, salt)
        assert d.new_session and d.reason == "new-session"
        assert d.local == (d.home == "n1")
        homes[d.home] += 1
    assert "n1" not in homes  # the most loaded node never wins a pair
    assert homes.most_common(1)[0][0] == "n2"


def test_new_session_can_be_local() -> None:
    view = make_view(self_name="n2", loads={"n1": 5.0, "n3": 5.0, "n4": 5.0})
    decisions = {Router(KEYRING).route(None, view, NOW, salt) for salt in range(100)}
    assert Decision("n2", True, True, "new-session") in decisions
    assert all(d.local == (d.home == "n2") for d in decisions)


def test_new_sessions_avoid_draining_nodes() -> None:
    view = make_view(draining=("n2", "n3"), loads={"n1": 9.0, "n4": 0.0, "n2": 0.0})
    homes = {Router(KEYRING).route(None, view, NOW, s).home for s in range(200)}
    assert homes == {"n4"}


def test_new_sessions_fall_back_to_live_when_all_drain() -> None:
    view = make_view(live=("n1", "n2"), draining=("n1", "n2"), loads={"n1": 1.0})
    homes = {Router(KEYRING).route(None, view, NOW, s).home for s in range(100)}
    assert homes == {"n2"}


def test_new_sessions_avoid_dead_nodes() -> None:
    view = make_view(live=("n1", "n3"), loads={"n2": 0.0, "n4": 0.0, "n1": 1.0, "n3": 1.0})
    homes = {Router(KEYRING).route(None, view, NOW, s).home for s in range(200)}
    assert homes == {"n1", "n3"}  # live ones only; n1 and n3 tie, so both are chosen


# --- rows: home cookie ---------------------------------------------------------------


def test_valid_cookie_for_a_live_remote_node() -> None:
    d = Router(KEYRING).route(cookie("n3"), make_view(), NOW, 1)
    assert d == Decision("n3", False, False, "home-cookie")


def test_valid_cookie_for_this_node_is_local() -> None:
    d = Router(KEYRING).route(cookie("n1"), make_view(), NOW, 1)
    assert d == Decision("n1", True, False, "home-cookie")


def test_valid_cookie_for_a_draining_node_keeps_its_home() -> None:
    d = Router(KEYRING).route(cookie("n2"), make_view(draining=("n2",)), NOW, 1)
    assert d == Decision("n2", False, False, "home-cookie")


def test_cookie_ignores_load() -> None:
    view = make_view(loads={"n4": 1e9})
    assert Router(KEYRING).route(cookie("n4"), view, NOW, 1).home == "n4"


def test_dead_home_is_rehomed_with_a_fresh_cookie() -> None:
    view = make_view(live=("n1", "n2", "n4"), loads={"n1": 0.5, "n2": 0.5, "n4": 0.5})
    router = Router(KEYRING)
    homes = set()
    for salt in range(200):
        d = router.route(cookie("n3"), view, NOW, salt)
        assert d.new_session is True
        assert d.reason == "home-cookie-rehomed"
        assert d.local == (d.home == "n1")
        homes.add(d.home)
    assert homes == {"n1", "n2", "n4"}  # every live node, never the dead home n3


def test_cookie_for_an_unknown_node_is_rehomed() -> None:
    d = Router(KEYRING).route(cookie("retired-node"), make_view(), NOW, 5)
    assert d.new_session and d.reason == "home-cookie-rehomed"
    assert d.home in NAMES


def test_expired_cookie_is_a_new_session() -> None:
    d = Router(KEYRING).route(cookie("n3", expires=int(NOW)), make_view(), NOW, 5)
    assert d.new_session and d.reason == "new-session"


@pytest.mark.parametrize(
    "value",
    ["", "garbage", "1.deadbeef.n3.99999999999.AAAAAAAAAAAAAAAAAAAAAA", "1" * 500],
)
def test_invalid_cookie_is_a_new_session(value: str) -> None:
    ident = Identifier("home-cookie", value, "home-cookie")
    d = Router(KEYRING).route(ident, make_view(), NOW, 5)
    assert d.new_session and d.reason == "new-session"


def test_cookie_of_another_secret_is_a_new_session() -> None:
    other = CookieKeyring("prod", b"some-other-secret-value-xx")
    d = Router(KEYRING).route(cookie("n3", ring=other), make_view(), NOW, 5)
    assert d.reason == "new-session"


def test_cookie_from_the_previous_secret_still_routes() -> None:
    old = CookieKeyring("prod", b"last-years-secret-value-xx")
    ring = CookieKeyring("prod", SECRET, previous=[b"last-years-secret-value-xx"])
    d = Router(ring).route(cookie("n3", ring=old), make_view(), NOW, 5)
    assert d == Decision("n3", False, False, "home-cookie")


def test_a_cookie_routed_before_is_not_honored_past_its_expiry() -> None:
    router = Router(KEYRING)
    ident = cookie("n3", expires=int(NOW) + 10)
    assert router.route(ident, make_view(), NOW, 5).reason == "home-cookie"
    assert router.route(ident, make_view(), NOW + 9, 5).reason == "home-cookie"
    late = router.route(ident, make_view(), NOW + 10, 5)
    assert late.new_session and late.reason == "new-session"
    assert router.route(ident, make_view(), NOW + 9.5, 5).reason == "home-cookie"


def test_a_refused_cookie_is_refused_again() -> None:
    router = Router(KEYRING)
    forged = Identifier("home-cookie", cookie("n3").value[:-1] + "A", "home-cookie")
    if forged.value == cookie("n3").value:
        forged = Identifier("home-cookie", cookie("n3").value[:-1] + "B", "home-cookie")
    for _ in range(3):
        assert router.route(forged, make_view(), NOW, 5).reason == "new-session"


# --- row: hashed identifier ----------------------------------------------------------


def test_hash_uses_maglev_over_live_weights() -> None:
    weights = {"n1": 1, "n2": 3, "n3": 1, "n4": 2}
    view = make_view(weights=weights)
    table = MaglevTable(weights)
    router = Router(KEYRING)
    for i in range(300):
        ident = Identifier("uri", f"/cart/{i}", "hash")
        d = router.route(ident, view, NOW, i)
        assert d.home == table.lookup(f"uri:/cart/{i}")
        assert d.new_session is False
        assert d.reason == "hash"
        assert d.local == (d.home == "n1")


def test_hash_still_reaches_draining_nodes() -> None:
    view = make_view(draining=("n2",))
    table = MaglevTable(dict.fromkeys(NAMES, 1))
    router = Router(KEYRING)
    homes = {
        router.route(Identifier("uri", f"/{i}", "hash"), view, NOW, 0).home for i in range(200)
    }
    assert homes == set(NAMES)
    assert all(
        router.route(Identifier("uri", f"/{i}", "hash"), view, NOW, 0).home
        == table.lookup(f"uri:/{i}")
        for i in range(200)
    )


def test_hash_key_includes_the_kind() -> None:
    view = make_view()
    table = MaglevTable(view.weights())
    router = Router(KEYRING)
    for i in range(100):
        d = router.route(Identifier("query", str(i), "hash"), view, NOW, 0)
        assert d.home == table.lookup(f"query:{i}")


def test_hash_never_picks_a_dead_node_and_ignores_salt_and_load() -> None:
    view = make_view(live=("n1", "n2", "n4"), loads={"n2": 1e9})
    router = Router(KEYRING)
    homes: Counter[str] = Counter()
    for i in range(600):
        ident = Identifier("uri", f"/p/{i}", "hash")
        d = router.route(ident, view, NOW, i)
        assert d == router.route(ident, view, NOW, i + 12345)
        homes[d.home] += 1
    assert set(homes) == {"n1", "n2", "n4"}


def test_hash_identifiers_mostly_stay_when_another_node_dies() -> None:
    router = Router(KEYRING)
    full, less = make_view(), make_view(live=("n1", "n2", "n4"))
    kept = moved = 0
    for i in range(2000):
        ident = Identifier("uri", f"/x/{i}", "hash")
        before = router.route(ident, full, NOW, 0).home
        after = router.route(ident, less, NOW, 0).home
        assert after != "n3"
        if before != "n3":
            kept += before == after
            moved += before != after
    assert moved / (kept + moved) < 0.05


# --- row: unknown placement ----------------------------------------------------------


def test_unknown_placement_is_a_new_session() -> None:
    ident = Identifier("cookie", "JSESSIONID=abc", "someday")
    d = Router(KEYRING).route(ident, make_view(), NOW, 3)
    assert d.new_session and d.reason == "new-session"


# --- determinism and caching ---------------------------------------------------------

identifiers = st.one_of(
    st.none(),
    st.builds(Identifier, st.sampled_from(["uri", "sni"]), st.text(max_size=20), st.just("hash")),
    st.builds(
        lambda n, e: cookie(n, e),
        st.sampled_from(["n1", "n2", "n3", "n4", "gone"]),
        st.integers(min_value=int(NOW) - 10, max_value=int(NOW) + 10),
    ),
    st.builds(Identifier, st.text(max_size=5), st.text(max_size=40), st.text(max_size=12)),
)


@given(
    ident=identifiers,
    salt=st.integers(),
    live=st.sets(st.sampled_from(["n2", "n3", "n4"])),
    loads=st.dictionaries(st.sampled_from(NAMES), st.floats(0, 10, allow_nan=False)),
)
@settings(max_examples=200)
def test_same_inputs_same_decision(
    ident: Identifier | None, salt: int, live: set[str], loads: dict[str, float]
) -> None:
    view = make_view(live=("n1", *live), loads=loads)
    d1 = Router(KEYRING).route(ident, view, NOW, salt)
    d2 = Router(KEYRING).route(ident, dataclasses.replace(view, loads=dict(loads)), NOW, salt)
    assert d1 == d2
    assert d1.home in view.live
    assert d1.local == (d1.home == "n1")
    assert d1.reason in REASONS
    assert d1.new_session == (
        d1.reason in ("new-session", "home-cookie-rehomed", "directory-miss", "directory-rehomed")
    )


def test_table_is_cached_per_live_weights() -> None:
    router = Router(KEYRING)
    view = make_view()
    table = router.table_for(view)
    assert router.table_for(view) is table
    # a new view object with only new loads reuses the table
    assert router.table_for(make_view(loads={"n2": 3.0})) is table
    assert router.cached_tables == 1
    other = router.table_for(make_view(live=("n1", "n2")))
    assert other is not table
    assert router.table_for(make_view(weights={"n2": 5})) is not table
    assert router.cached_tables == 3


def test_equal_decisions_are_shared_and_the_cache_is_bounded() -> None:
    router = Router(KEYRING)
    view = make_view()
    first = router.route(cookie("n3"), view, NOW, 1)
    assert router.route(cookie("n3"), view, NOW, 2) is first
    assert router.route(cookie("n1"), view, NOW, 1) == Decision("n1", True, False, "home-cookie")
    for i in range(MAX_CACHED_DECISIONS + 10):
        alone = f"h{i}"  # a farm of one node: each placement is a new distinct answer
        one = FarmView("n1", {alone: node(alone)}, frozenset({alone}), {})
        assert router.route(None, one, NOW, i) == Decision(alone, False, True, "new-session")
    assert len(router._decisions) <= MAX_CACHED_DECISIONS


def test_table_cache_is_bounded() -> None:
    router = Router(KEYRING)
    lives = [("n1",), ("n1", "n2"), ("n1", "n3"), ("n1", "n4"), ("n1", "n2", "n3"), NAMES]
    for live in lives:
        router.route(Identifier("uri", "/", "hash"), make_view(live=live), NOW, 0)
    assert router.cached_tables == MAX_CACHED_TABLES


# --- rows: directory -----------------------------------------------------------------


def learned(entries: dict[str, str], ttl: float = 3600.0) -> Directory:
    directory = Directory()
    for key, home in entries.items():
        directory.learn(key, home, NOW, ttl)
    return directory


def app_cookie(value: str) -> Identifier:
    return Identifier("cookie", value, "directory")


def test_directory_hit_on_a_live_remote_node() -> None:
    router = Router(KEYRING, learned({"cookie:JSESSIONID=abc": "n3"}))
    d = router.route(app_cookie("JSESSIONID=abc"), make_view(loads={"n3": 1e9}), NOW, 7)
    assert d == Decision("n3", False, False, "directory")


def test_directory_hit_on_this_node_is_local() -> None:
    router = Router(KEYRING, learned({"tls-session-id:00ff": "n1"}))
    ident = Identifier("tls-session-id", "00ff", "directory")
    assert router.route(ident, make_view(), NOW, 7) == Decision("n1", True, False, "directory")


def test_directory_hit_on_a_draining_node_keeps_its_home() -> None:
    router = Router(KEYRING, learned({"cookie:S=1": "n2"}))
    d = router.route(app_cookie("S=1"), make_view(draining=("n2",)), NOW, 7)
    assert d == Decision("n2", False, False, "directory")


def test_directory_key_is_kind_and_value() -> None:
    router = Router(KEYRING, learned({"cookie:S=1": "n2"}))
    d = router.route(Identifier("uri", "S=1", "directory"), make_view(), NOW, 7)
    assert d.reason == "directory-miss"


def test_directory_home_not_live_is_rehomed() -> None:
    router = Router(KEYRING, learned({"cookie:S=1": "n3", "cookie:S=2": "retired"}))
    view = make_view(live=("n1", "n2", "n4"), loads={"n1": 0.5, "n2": 0.5, "n4": 0.5})
    for value in ("S=1", "S=2"):
        homes = set()
        for salt in range(100):
            d = router.route(app_cookie(value), view, NOW, salt)
            assert d.new_session and d.reason == "directory-rehomed"
            assert d.local == (d.home == "n1")
            homes.add(d.home)
        assert homes == {"n1", "n2", "n4"}  # equal loads: spread over every live node


def test_directory_miss_is_a_new_session() -> None:
    router = Router(KEYRING, learned({"cookie:S=1": "n3"}))
    view = make_view(loads={"n1": 9.0, "n2": 0.0, "n3": 9.0, "n4": 9.0})
    d = router.route(app_cookie("S=unknown"), view, NOW, 3)
    assert d.new_session and d.reason == "directory-miss"
    assert d.local == (d.home == "n1")


def test_directory_miss_places_like_a_new_session() -> None:
    view = make_view(loads={"n1": 0.9, "n2": 0.0, "n3": 0.8, "n4": 0.7})
    router = Router(KEYRING, Directory())
    for salt in range(100):
        miss = router.route(app_cookie("S=x"), view, NOW, salt)
        fresh = router.route(None, view, NOW, salt)
        assert (miss.home, miss.new_session) == (fresh.home, fresh.new_session)


def test_expired_directory_entry_is_a_miss() -> None:
    directory = learned({"cookie:S=1": "n3"}, ttl=60)
    router = Router(KEYRING, directory)
    assert router.route(app_cookie("S=1"), make_view(), NOW + 59, 1).reason == "directory"
    assert router.route(app_cookie("S=1"), make_view(), NOW + 60, 1).reason == "directory-miss"
    assert len(directory) == 0


def test_without_a_directory_directory_placement_is_a_miss() -> None:
    router = Router(KEYRING)
    assert router.directory is None
    d = router.route(app_cookie("JSESSIONID=abc"), make_view(), NOW, 3)
    assert d.new_session and d.reason == "directory-miss"


def test_directory_lookup_refreshes_the_lru_position() -> None:
    directory = Directory(max_entries=2)
    directory.learn("cookie:S=1", "n2", NOW, 3600)
    directory.learn("cookie:S=2", "n3", NOW, 3600)
    router = Router(KEYRING, directory)
    assert router.route(app_cookie("S=1"), make_view(), NOW, 1).reason == "directory"
    directory.learn("cookie:S=3", "n4", NOW, 3600)  # evicts S=2, the least recently used
    assert router.route(app_cookie("S=1"), make_view(), NOW, 1).home == "n2"
    assert router.route(app_cookie("S=2"), make_view(), NOW, 1).reason == "directory-miss"
