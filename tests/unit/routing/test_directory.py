"""Tests of lb.routing.directory: learn, merge, lookup, conflict rule, bounds, expiry, outbox."""

from __future__ import annotations

import gc
import sys
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.routing.directory import (
    ENTRY_OVERHEAD,
    MAX_KEY_BYTES,
    Directory,
    DirectoryEntry,
    entry_memory,
)

NOW = 1_700_000_000.0
HOUR = 3600.0


def entry(key: str, home: str, version: int, expires: int = int(NOW + HOUR)) -> DirectoryEntry:
    return DirectoryEntry(key, home, version, expires)


# -- learn and lookup ----------------------------------------------------------------


def test_learn_then_lookup() -> None:
    d = Directory()
    e = d.learn("cookie:JSESSIONID=abc123", "node-b", NOW, HOUR)
    assert e == DirectoryEntry(
        "cookie:JSESSIONID=abc123", "node-b", int(NOW * 1000), int(NOW + HOUR)
    )
    assert d.lookup("cookie:JSESSIONID=abc123", NOW + 1) == "node-b"
    assert d.lookup("cookie:JSESSIONID=other", NOW + 1) is None
    assert len(d) == 1


def test_versions_are_strictly_increasing_per_node_even_if_the_clock_stands_or_steps_back() -> None:
    d = Directory()
    versions = [
        d.learn("k1", "a", NOW, HOUR).version,
        d.learn("k2", "a", NOW, HOUR).version,  # same millisecond
        d.learn("k3", "a", NOW - 10, HOUR).version,  # clock stepped back
        d.learn("k4", "a", NOW + 5, HOUR).version,
    ]
    assert versions == [
        int(NOW * 1000),
        int(NOW * 1000) + 1,
        int(NOW * 1000) + 2,
        int(NOW * 1000) + 5000,
    ]


def test_local_learning_beats_a_peer_entry_from_a_clock_ahead() -> None:
    d = Directory()
    ahead = int((NOW + 600) * 1000)
    assert d.merge(entry("k", "peer", ahead), NOW)
    mine = d.learn("k", "me", NOW, HOUR)
    assert mine.version == ahead + 1
    assert d.lookup("k", NOW) == "me"
    # and a peer applying it agrees
    other = Directory()
    other.merge(entry("k", "peer", ahead), NOW)
    assert other.merge(mine, NOW)
    assert other.lookup("k", NOW) == "me"


@pytest.mark.parametrize(
    "key", ["", "x" * (MAX_KEY_BYTES + 1), "é" * (MAX_KEY_BYTES // 2 + 1), "k\udc80"]
)
def test_learn_refuses_bad_keys(key: str) -> None:
    with pytest.raises(ValueError):
        Directory().learn(key, "a", NOW, HOUR)


def test_key_limit_is_in_utf8_bytes() -> None:
    d = Directory()
    d.learn("x" * MAX_KEY_BYTES, "a", NOW, HOUR)
    d.learn("é" * (MAX_KEY_BYTES // 2), "a", NOW, HOUR)
    d.learn("\U0001f600" + "k" * (MAX_KEY_BYTES - 4), "a", NOW, HOUR)
    assert len(d) == 3


@pytest.mark.parametrize(
    ("home", "now", "ttl"),
    [
        ("", NOW, HOUR),
        ("h" * 256, NOW, HOUR),
        ("a", NOW, 0.0),
        ("a", float("nan"), HOUR),
        ("a", NOW, 2.0**64),
    ],
)
def test_learn_refuses_bad_arguments(home: str, now: float, ttl: float) -> None:
    with pytest.raises(ValueError):
        Directory().learn("k", home, now, ttl)


def test_constructor_checks_bounds() -> None:
    with pytest.raises(ValueError):
        Directory(max_entries=0)
    with pytest.raises(ValueError):
        Directory(max_bytes=100)


# -- merge: newest wins, tie rule ------------------------------------------------------


def test_merge_newest_version_wins_in_either_order() -> None:
    old, new = entry("k", "zzz", 10), entry("k", "aaa", 11)
    d1, d2 = Directory(), Directory()
    assert d1.merge(old, NOW) and d1.merge(new, NOW)
    assert d2.merge(new, NOW) and not d2.merge(old, NOW)
    assert d1.lookup("k", NOW) == d2.lookup("k", NOW) == "aaa"


def test_merge_equal_versions_larger_home_wins() -> None:
    a, b = entry("k", "node-a", 10), entry("k", "node-b", 10)
    d1, d2 = Directory(), Directory()
    d1.merge(a, NOW)
    assert d1.merge(b, NOW)
    d2.merge(b, NOW)
    assert not d2.merge(a, NOW)
    assert d1.lookup("k", NOW) == d2.lookup("k", NOW) == "node-b"


def test_merge_of_the_same_entry_twice_changes_nothing() -> None:
    d = Directory()
    assert d.merge(entry("k", "a", 10), NOW)
    assert not d.merge(entry("k", "a", 10), NOW)


def test_merge_ignores_expired_entries() -> None:
    d = Directory()
    assert not d.merge(entry("k", "a", 10, expires=int(NOW)), NOW)
    assert not d.merge(entry("k", "a", 10, expires=int(NOW) - 5), NOW)
    assert len(d) == 0


def test_merge_replaces_an_expired_entry_even_with_an_older_version() -> None:
    d = Directory()
    d.merge(entry("k", "a", 50, expires=int(NOW) + 10), NOW)
    later = NOW + 20
    assert d.merge(entry("k", "b", 10, expires=int(later) + 100), later)
    assert d.lookup("k", later) == "b"


@pytest.mark.parametrize(
    "bad",
    [
        entry("x" * (MAX_KEY_BYTES + 1), "a", 1),
        entry("", "a", 1),
        entry("k", "", 1),
        entry("k", "h" * 256, 1),
        entry("k", "a", -1),
        entry("k", "a", 2**64),
        entry("k", "a", 1, expires=2**64),
        entry("k\udc80", "a", 1),
    ],
)
def test_merge_ignores_invalid_entries(bad: DirectoryEntry) -> None:
    d = Directory()
    assert d.merge(bad, NOW) is False
    assert len(d) == 0
    assert d.bytes_used == 0


def test_merge_does_not_fill_the_outbox() -> None:
    d = Directory()
    d.merge(entry("k", "a", 10), NOW)
    assert d.take_outbox() == []


# -- convergence -----------------------------------------------------------------------

entries_strategy = st.lists(
    st.builds(
        DirectoryEntry,
        key=st.sampled_from(["k1", "k2", "k3", "cookie:S=1"]),
        home=st.sampled_from(["a", "b", "c", "node-10"]),
        version=st.integers(1, 6),
        expires=st.integers(int(NOW) - 2, int(NOW) + 4),
    ),
    max_size=25,
)


@given(data=st.data(), entries=entries_strategy)
@settings(max_examples=300, deadline=None)
def test_any_merge_order_converges_on_three_nodes(
    data: st.DataObject, entries: list[DirectoryEntry]
) -> None:
    nodes = [Directory() for _ in range(3)]
    for node in nodes:
        order = data.draw(st.permutations(entries))
        for e in order:
            node.merge(e, NOW)
    tables = [{e.key: e for e in node.entries(NOW)} for node in nodes]
    assert tables[0] == tables[1] == tables[2]
    # and the table is what the rule says: per key, the largest (version, home, expires)
    expected: dict[str, DirectoryEntry] = {}
    for e in entries:
        if e.expires <= NOW:
            continue
        best = expected.get(e.key)
        if best is None or (e.version, e.home, e.expires) > (best.version, best.home, best.expires):
            expected[e.key] = e
    assert tables[0] == expected


@given(data=st.data())
@settings(max_examples=200, deadline=None)
def test_nodes_that_learn_and_exchange_outboxes_converge(data: st.DataObject) -> None:
    nodes = {name: Directory() for name in ("a", "b", "c")}
    now = NOW
    sent: list[DirectoryEntry] = []
    for _ in range(data.draw(st.integers(1, 12))):
        name = data.draw(st.sampled_from(sorted(nodes)))
        key = data.draw(st.sampled_from(["k1", "k2", "k3"]))
        now += data.draw(st.sampled_from([0.0, 0.0005, 0.002, -1.0]))
        nodes[name].learn(key, name, now, HOUR)
        if data.draw(st.booleans()):  # a node ships its outbox to both peers
            for sender, directory in nodes.items():
                batch = directory.take_outbox()
                sent += batch
                for other, peer in nodes.items():
                    if other != sender:
                        for e in batch:
                            peer.merge(e, now)
    for sender, directory in nodes.items():
        batch = directory.take_outbox()
        for other, peer in nodes.items():
            if other != sender:
                for e in batch:
                    peer.merge(e, now)
    tables = [{e.key: e for e in d.entries(now)} for d in nodes.values()]
    assert tables[0] == tables[1] == tables[2]


# -- expiry ----------------------------------------------------------------------------


def test_lookup_drops_an_expired_entry() -> None:
    d = Directory()
    d.learn("k", "a", NOW, 10)
    assert d.lookup("k", NOW + 9.9) == "a"
    assert d.lookup("k", NOW + 10) is None
    assert len(d) == 0
    assert d.bytes_used == 0


def test_expire_drops_exactly_the_expired_entries() -> None:
    d = Directory()
    for i in range(100):
        d.learn(f"k{i}", "a", NOW, 10 + i)  # expires NOW + 10 + i
    assert d.expire(NOW + 9) == 0
    assert d.expire(NOW + 30) == 21  # 10..30
    assert len(d) == 79
    assert d.lookup("k20", NOW + 30) is None
    assert d.lookup("k21", NOW + 30) == "a"
    assert d.expire(NOW + 1000) == 79
    assert len(d) == 0
    assert d.bytes_used == 0


def test_expire_follows_a_relearned_expiry() -> None:
    d = Directory()
    d.learn("k", "a", NOW, 10)
    d.learn("k", "b", NOW + 5, 100)  # now expires at NOW + 105
    assert d.expire(NOW + 50) == 0
    assert d.lookup("k", NOW + 50) == "b"
    assert d.expire(NOW + 105) == 1


def test_entries_lists_only_live_entries() -> None:
    d = Directory()
    d.learn("short", "a", NOW, 10)
    d.learn("long", "b", NOW, 100)
    assert [e.key for e in d.entries(NOW + 50)] == ["long"]
    assert {e.key for e in d.entries(NOW)} == {"short", "long"}


def test_expiry_index_stays_bounded_under_updates() -> None:
    d = Directory()
    for i in range(5000):
        d.learn("k", "a", NOW + i, 10 + i % 7)
    assert d._bucket_items <= 2 * len(d) + 64 + 1
    assert sum(len(b) for b in d._buckets.values()) == d._bucket_items
    assert len(d._bucket_times) == len(d._buckets) <= d._bucket_items


# -- LRU bounds ------------------------------------------------------------------------


def test_lru_eviction_by_entries() -> None:
    d = Directory(max_entries=3)
    for key in ("k1", "k2", "k3"):
        d.learn(key, "a", NOW, HOUR)
    assert d.lookup("k1", NOW) == "a"  # k1 is now the most recently used
    d.learn("k4", "a", NOW, HOUR)
    assert len(d) == 3
    assert d.lookup("k2", NOW) is None  # the least recently used went
    assert {e.key for e in d.entries(NOW)} == {"k1", "k3", "k4"}
    assert d.evictions == 1


def test_merge_also_respects_the_entry_bound() -> None:
    d = Directory(max_entries=2)
    for i in range(5):
        d.merge(entry(f"k{i}", "a", 1), NOW)
    assert [e.key for e in d.entries(NOW)] == ["k3", "k4"]


def test_expired_entries_go_before_live_ones_when_full() -> None:
    d = Directory(max_entries=2)
    d.learn("old-but-live", "a", NOW, HOUR)
    d.learn("soon-dead", "a", NOW, 5)
    d.learn("new", "a", NOW + 10, HOUR)
    assert {e.key for e in d.entries(NOW + 10)} == {"old-but-live", "new"}
    assert d.evictions == 0


def test_lru_eviction_by_bytes() -> None:
    per_entry = entry_memory("key-00")
    limit = 20 * per_entry + per_entry // 2  # above the smallest max_bytes allowed
    d = Directory(max_entries=1000, max_bytes=limit)
    for i in range(50):
        d.learn(f"key-{i:02d}", "a", NOW, HOUR)
        assert d.bytes_used <= limit
    assert len(d) == limit // per_entry
    kept = [e.key for e in d.entries(NOW)]
    assert kept == [f"key-{i:02d}" for i in range(50 - len(kept), 50)]


def test_bytes_used_follows_the_entries() -> None:
    d = Directory()
    keys = [f"cookie:S={i}" for i in range(20)]
    for key in keys:
        d.learn(key, "a", NOW, HOUR)
    assert d.bytes_used == sum(sys.getsizeof(k) + ENTRY_OVERHEAD for k in keys)
    d.learn(keys[0], "b", NOW, HOUR)  # replacing does not count twice
    assert d.bytes_used == sum(sys.getsizeof(k) + ENTRY_OVERHEAD for k in keys)


def test_bytes_used_estimate_matches_measured_memory() -> None:
    n = 10_000
    keys = [f"cookie:JSESSIONID={i:032x}" for i in range(n)]
    d = Directory(max_entries=n, max_bytes=2**30)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, key in enumerate(keys):
            d.learn(key, "node-b" if i % 2 else "node-c", NOW, HOUR + i % 100)
        d.take_outbox()
        gc.collect()
        measured = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    measured += sum(sys.getsizeof(k) for k in keys)  # the keys were made before tracing
    assert 0.8 * measured <= d.bytes_used <= 1.2 * measured


# -- outbox ----------------------------------------------------------------------------


def test_outbox_holds_local_learning_once() -> None:
    d = Directory()
    a = d.learn("k1", "me", NOW, HOUR)
    d.learn("k2", "me", NOW, HOUR)
    b = d.learn("k2", "me", NOW + 1, HOUR)  # relearned: only the newest goes out
    assert d.take_outbox() == [a, b]
    assert d.take_outbox() == []
    c = d.learn("k1", "me", NOW + 2, HOUR)
    assert d.take_outbox() == [c]


def test_outbox_is_bounded() -> None:
    d = Directory(max_entries=4)
    learned = [d.learn(f"k{i}", "me", NOW, HOUR) for i in range(10)]
    assert d.take_outbox() == learned[-4:]
