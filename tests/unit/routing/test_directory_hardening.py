"""The directory under attack (lb.routing.directory): future versions, floods, one source.

* a version far ahead of the wall clock is refused, so no peer can pin a key forever;
* entries that were used (looked up) survive a flood of new, never-used entries;
* evictions of used entries are counted;
* learning per client source is bounded over a window.
"""

from __future__ import annotations

import pytest

from lb.routing.directory import (
    MAX_VERSION_AHEAD,
    PROTECTED_SHARE,
    Directory,
    DirectoryEntry,
    SourceLimited,
    entry_memory,
    source_key,
)
from lb.wire.directory import (
    DIRECTORY_UPDATE,
    decode_directory_update,
    encode_directory_frames,
)
from lb.wire.frames import FrameDecoder

NOW = 1_700_000_000.0
HOUR = 3600.0
U64_MAX = 2**64 - 1


def over_the_wire(entries: list[DirectoryEntry]) -> list[DirectoryEntry]:
    """Entries as a peer's DIRECTORY_UPDATE frames deliver them."""
    out: list[DirectoryEntry] = []
    for raw in encode_directory_frames(entries):
        for frame in FrameDecoder().feed(raw):
            assert frame.type == DIRECTORY_UPDATE
            out += decode_directory_update(frame.payload)
    return out


# -- versions from the far future ---------------------------------------------------------


def test_a_directory_update_with_version_u64_max_is_refused() -> None:
    d = Directory()
    mine = d.learn("cookie:S=1", "node-a", NOW, HOUR)
    forged = over_the_wire([DirectoryEntry("cookie:S=1", "evil", U64_MAX, int(NOW + HOUR))])
    assert forged[0].version == U64_MAX
    assert d.merge(forged[0], NOW) is False
    assert d.lookup("cookie:S=1", NOW) == "node-a"
    assert d.refused == 1
    # and a new key at that version is not stored either
    assert d.merge(DirectoryEntry("cookie:S=2", "evil", U64_MAX, int(NOW + HOUR)), NOW) is False
    assert d.get("cookie:S=2", NOW) is None
    # the node's own learning goes on from its own clock, not from the forged version
    again = d.learn("cookie:S=1", "node-a", NOW + 1, HOUR)
    assert again.version == int((NOW + 1) * 1000)
    assert again.version > mine.version


def test_the_version_bound_is_max_version_ahead_of_now_and_a_second() -> None:
    d = Directory()
    limit = int((NOW + MAX_VERSION_AHEAD + 1) * 1000)
    assert d.merge(DirectoryEntry("k1", "a", limit, int(NOW + HOUR)), NOW)
    assert not d.merge(DirectoryEntry("k2", "a", limit + 1, int(NOW + HOUR)), NOW)
    # a minute later the same version is within the bound
    assert d.merge(DirectoryEntry("k2", "a", limit + 1, int(NOW + HOUR)), NOW + 60)


def test_a_restarted_node_wins_its_keys_back_after_a_far_ahead_entry() -> None:
    """A peer whose clock ran MAX_VERSION_AHEAD ahead cannot lock a key: the node that
    learns it again (after a restart: its own versions start from its clock) takes a
    version above it, and every peer agrees at once."""
    ahead = int((NOW + MAX_VERSION_AHEAD) * 1000)
    peer, restarted = Directory(), Directory()
    peer.merge(DirectoryEntry("k", "old-home", ahead, int(NOW + HOUR)), NOW)
    for e in peer.entries(NOW):  # the full sync on link up
        restarted.merge(e, NOW)
    learned = restarted.learn("k", "new-home", NOW, HOUR)
    assert learned.version == ahead + 1
    assert peer.merge(learned, NOW)
    assert peer.lookup("k", NOW) == restarted.lookup("k", NOW) == "new-home"


# -- used entries survive a flood of new ones ----------------------------------------------


def test_a_flood_of_120000_never_used_entries_does_not_evict_used_ones() -> None:
    d = Directory()  # the defaults: 100,000 entries, 32 MiB
    used = [f"cookie:JSESSIONID={i:032x}" for i in range(1000)]
    for key in used:
        d.learn(key, "node-b", NOW, HOUR)
    for key in used:
        assert d.lookup(key, NOW) == "node-b"  # a hit before the flood
    for i in range(120_000):  # more than the 100,000 entries the table holds
        key = f"cookie:JSESSIONID=f{i:031x}"
        if i % 2:
            d.learn(key, "node-c", NOW + 1, HOUR)
        else:
            d.merge(DirectoryEntry(key, "node-c", int(NOW * 1000) + i, int(NOW + HOUR)), NOW + 1)
    assert d.evictions > 0  # the flood did hit the bounds
    print(f"the flood evicted {d.evictions} entries")
    assert d.used_evictions == 0
    for key in used:
        assert d.lookup(key, NOW + 2) == "node-b", key


def test_new_entries_go_before_used_ones_even_when_the_used_ones_are_older() -> None:
    d = Directory(max_entries=10)
    for i in range(5):
        d.learn(f"used{i}", "a", NOW, HOUR)
        assert d.lookup(f"used{i}", NOW) == "a"
    for i in range(100):
        d.learn(f"new{i}", "a", NOW + 1, HOUR)
    assert all(d.lookup(f"used{i}", NOW + 2) == "a" for i in range(5))
    assert len(d) == 10
    assert d.used_evictions == 0


def test_a_full_protected_segment_still_leaves_room_for_new_entries() -> None:
    d = Directory(max_entries=10)
    for i in range(30):
        d.learn(f"k{i}", "a", NOW, HOUR)
        d.lookup(f"k{i}", NOW)  # everything is used
    fresh = d.learn("fresh", "b", NOW + 1, HOUR)
    assert d.get("fresh", NOW + 1) == fresh
    assert d.lookup("fresh", NOW + 1) == "b"


def test_used_entries_bytes_leave_room_for_new_entries() -> None:
    big = "k" * 500
    per_entry = entry_memory(big + "00")
    d = Directory(max_entries=1000, max_bytes=20 * per_entry)
    for i in range(40):
        d.learn(f"{big}{i:02d}", "a", NOW, HOUR)
        d.lookup(f"{big}{i:02d}", NOW)
    assert d.bytes_used <= 20 * per_entry
    d.learn(f"{big}xx", "b", NOW + 1, HOUR)
    assert d.lookup(f"{big}xx", NOW + 1) == "b"


def test_evictions_of_used_entries_are_counted() -> None:
    d = Directory(max_entries=5)  # the protected segment holds 4
    for i in range(5):
        d.learn(f"k{i}", "a", NOW, HOUR)
    for i in range(4):
        d.lookup(f"k{i}", NOW)
    d.learn("n1", "a", NOW, HOUR)  # evicts k4: never used
    assert (d.evictions, d.used_evictions) == (1, 0)
    assert d.get("k4", NOW) is None
    d.learn("n2", "a", NOW, HOUR)  # evicts n1: never used
    assert (d.evictions, d.used_evictions) == (2, 0)
    d.lookup("n2", NOW)  # n2 is used now: k0, the least recent used one, leaves the protection
    d.learn("n3", "a", NOW, HOUR)  # evicts k0, which was used
    assert (d.evictions, d.used_evictions) == (3, 1)
    assert d.get("k0", NOW) is None
    assert {e.key for e in d.entries(NOW)} == {"k1", "k2", "k3", "n2", "n3"}


def test_a_demoted_entry_looked_up_again_is_protected_again() -> None:
    d = Directory(max_entries=5)
    for i in range(5):
        d.learn(f"k{i}", "a", NOW, HOUR)
        d.lookup(f"k{i}", NOW)  # k0 is demoted when k4 is promoted
    assert d.lookup("k0", NOW) == "a"  # protected again; k1 is demoted
    d.learn("n1", "a", NOW, HOUR)  # evicts k1
    assert d.get("k0", NOW) is not None
    assert d.get("k1", NOW) is None
    assert d.used_evictions == 1


def test_protected_share() -> None:
    assert 0 < PROTECTED_SHARE < 1


# -- learning per source ----------------------------------------------------------------------


def test_learning_per_source_is_capped_over_a_window() -> None:
    d = Directory(source_limit=3, source_window=60.0)
    for i in range(3):
        d.learn(f"k{i}", "a", NOW, HOUR, source="198.51.100.7")
    with pytest.raises(SourceLimited):
        d.learn("k3", "a", NOW + 1, HOUR, source="198.51.100.7")
    assert d.get("k3", NOW + 1) is None
    assert d.source_refusals == 1
    assert d.take_outbox() == [d.get(f"k{i}", NOW) for i in range(3)]  # nothing refused goes out
    # other sources, and learning without a source, are not limited by it
    d.learn("k4", "a", NOW + 1, HOUR, source="198.51.100.8")
    d.learn("k5", "a", NOW + 1, HOUR)
    # relearning a key the table holds is no new entry: allowed
    d.learn("k0", "a", NOW + 2, HOUR, source="198.51.100.7")
    # the next window starts afresh
    d.learn("k6", "a", NOW + 61, HOUR, source="198.51.100.7")
    assert d.get("k6", NOW + 61) is not None


def test_source_limited_is_a_value_error() -> None:
    """The node counts every refused learning with one ``except ValueError``."""
    assert issubclass(SourceLimited, ValueError)


def test_the_source_tracker_is_bounded() -> None:
    d = Directory(max_entries=100, source_limit=1)
    for i in range(1000):
        d.learn(f"k{i}", "a", NOW, HOUR, source=f"10.0.{i // 256}.{i % 256}")
    assert d.tracked_sources <= 100


@pytest.mark.parametrize(
    ("bad", "value"),
    [("source_limit", 0), ("source_limit", True), ("source_window", 0.0)],
)
def test_source_settings_are_checked(bad: str, value: object) -> None:
    with pytest.raises(ValueError):
        Directory(**{bad: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        # an IPv4 client through NAT64/SIIT is its IPv4 address, not a /64 of all of them
        ("64:ff9b::198.51.100.7", "198.51.100.7"),
        ("64:ff9b::203.0.113.9", "203.0.113.9"),
        ("::ffff:0:198.51.100.7", "198.51.100.7"),
        # a network-specific NAT64 prefix (RFC 6052 /96 of the operator's own) stays a /64
        ("2001:db8:64::198.51.100.7", "2001:db8:64::/64"),
        ("64:ff9b:1::198.51.100.7", "64:ff9b:1::/64"),
        ("not an address", "not an address"),
    ],
)
def test_source_key(address: str, key: str) -> None:
    assert source_key(address) == key


# -- keys are keyed hashes, never the session token ---------------------------------------


def test_directory_keys_hide_the_value_and_depend_on_the_secret() -> None:
    from lb.routing.directory import DirectoryKeys, directory_secret

    token = "JSESSIONID=8f14e45fceea167a5a36dedd4bea2543"
    keys = DirectoryKeys(b"s" * 32)
    key = keys.key("cookie", token)
    assert key.startswith("cookie:") and "8f14e45f" not in key and token not in key
    assert len(key) == len("cookie:") + 22  # 16 bytes, base64url without padding
    assert keys.key("cookie", token) == key  # the same on every node with the secret
    assert DirectoryKeys(b"t" * 32).key("cookie", token) != key
    assert keys.key("tls-session-id", token) != key  # the kind is part of the MAC
    assert keys.key("cookie", token + "x") != key
    # the oldest secret a node knows names the keys, so a rolling change agrees
    assert directory_secret(b"new", (b"old",)) == b"old"
    assert directory_secret(b"only", ()) == b"only"


def test_router_looks_a_learned_session_up_by_its_hashed_key() -> None:
    from lb.extract.api import Identifier
    from lb.routing.cookie import CookieKeyring
    from lb.routing.directory import DirectoryKeys
    from lb.routing.route import Router
    from lb.routing.view import FarmView, NodeInfo

    keys = DirectoryKeys(b"s" * 32)
    d = Directory()
    d.learn(keys.key("cookie", "SID=abc"), "b", NOW, HOUR)
    nodes = {n: NodeInfo(n, ("127.0.0.1", 1), {}) for n in ("a", "b")}
    view = FarmView("a", nodes, frozenset({"a", "b"}), {"a": 0.0, "b": 0.0})
    router = Router(CookieKeyring("f", b"k" * 32), d, keys)
    hit = router.route(Identifier("cookie", "SID=abc", "directory"), view, NOW, 1)
    assert (hit.home, hit.reason) == ("b", "directory")
    # a router that names keys differently (another secret) misses: the hash is the name
    other = Router(CookieKeyring("f", b"k" * 32), d, DirectoryKeys(b"t" * 32))
    miss = other.route(Identifier("cookie", "SID=abc", "directory"), view, NOW, 1)
    assert miss.reason == "directory-miss"
