"""The directory under attack (lb.routing.directory): versions from the far future.

A version far ahead of the wall clock is refused, so no peer can pin a key forever.
"""

from __future__ import annotations

from lb.routing.directory import MAX_VERSION_AHEAD, Directory, DirectoryEntry
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
