"""The directory: learned identifier -> home entries, bounded, replicated by merge.

A node learns an entry when its application hands out a session (an app
Set-Cookie, a TLS 1.2 session id or ticket); the I/O layer sends what
``take_outbox`` returns to the peers, which ``merge`` it. Every node applies the
same conflict rule (newest version, then the larger home name, then the later
expiry), so nodes that saw the same entries hold the same table whatever the
order. Details and the measured memory per entry: docs/directory.md.

Pure: no I/O, no clock (time is ``now``), no randomness. Not thread-safe: one
directory per worker process.
"""

from __future__ import annotations

import heapq
import math
import sys
from collections import OrderedDict

from lb.wire.directory import MAX_HOME_BYTES, DirectoryEntry

__all__ = [
    "ENTRY_OVERHEAD",
    "MAX_KEY_BYTES",
    "MAX_VERSION_AHEAD",
    "Directory",
    "DirectoryEntry",
    "entry_memory",
]

MAX_KEY_BYTES = 512
"""Longer keys are refused by ``learn`` (ValueError) and ignored by ``merge``."""

_U64_MAX = 2**64 - 1

MAX_VERSION_AHEAD = 600.0
"""How far (seconds) a peer's clock may run ahead: ``merge`` refuses an entry whose
version (ms) is more than this, plus one second, ahead of ``now``, so no peer can pin
a key with a version nobody can ever beat. The extra second is room for relearning:
a learn takes one ms above the version held, so a node's own observation of a key
held at this bound is still taken by its peers."""

_VERSION_SLACK = 1.0  # seconds beyond MAX_VERSION_AHEAD: up to 1,000 relearns

ENTRY_OVERHEAD = 280
"""Bytes one entry costs beyond its key string, measured with tracemalloc on CPython
3.11 (64-bit): the entry object (80 with its GC header), its version and expiry ints
(64), the expiry heap's tuple and slot (80) and the table's dict slot and order node
(40-70, depending on how full the dict's hash table is). The home name is shared by
all entries of one home and not counted. tests/unit/routing/test_directory.py checks
the estimate against a tracemalloc measurement; docs/directory.md has the figures."""

# The widest character sets the width of all characters of a str: one astral
# character among ASCII ones makes the largest string of MAX_KEY_BYTES bytes of UTF-8.
_LARGEST_KEY_MEMORY = sys.getsizeof("\U0001f600" + "k" * (MAX_KEY_BYTES - 4))


def entry_memory(key: str) -> int:
    """The estimated bytes the directory holds for one entry with ``key``."""
    return sys.getsizeof(key) + ENTRY_OVERHEAD


def _key_ok(key: object) -> bool:
    if not isinstance(key, str) or not key:
        return False
    if key.isascii():
        return len(key) <= MAX_KEY_BYTES
    try:
        return len(key.encode("utf-8")) <= MAX_KEY_BYTES
    except UnicodeEncodeError:
        return False


def _home_ok(home: object) -> bool:
    if not isinstance(home, str) or not home:
        return False
    try:
        return len(home.encode("utf-8")) <= MAX_HOME_BYTES
    except UnicodeEncodeError:
        return False


def _rank(entry: DirectoryEntry) -> tuple[int, str, int]:
    """The conflict order: the entry with the larger rank wins everywhere."""
    return (entry.version, entry.home, entry.expires)


class Directory:
    """Learned identifier -> home, bounded by entries and by bytes (LRU eviction)."""

    __slots__ = (
        "_bytes",
        "_evictions",
        "_heap",
        "_last_version",
        "_max_bytes",
        "_max_entries",
        "_outbox",
        "_refused",
        "_table",
    )

    def __init__(self, max_entries: int = 100_000, max_bytes: int = 32 * 2**20) -> None:
        """ValueError unless ``max_entries >= 1`` and ``max_bytes`` holds one entry of
        the largest key (about 2,400 bytes)."""
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        smallest = _LARGEST_KEY_MEMORY + ENTRY_OVERHEAD
        if max_bytes < smallest:
            raise ValueError(f"max_bytes must be at least {smallest}, got {max_bytes}")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._table: OrderedDict[str, DirectoryEntry] = OrderedDict()  # LRU first
        self._heap: list[tuple[int, str]] = []  # (expires, key); stale items are skipped
        self._outbox: OrderedDict[str, DirectoryEntry] = OrderedDict()
        self._bytes = 0
        self._last_version = 0
        self._evictions = 0
        self._refused = 0

    # -- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._table)

    @property
    def bytes_used(self) -> int:
        """Estimated bytes held by the live table (sum of ``entry_memory`` per entry)."""
        return self._bytes

    @property
    def evictions(self) -> int:
        """Entries dropped because a bound was reached (not counting expiry)."""
        return self._evictions

    @property
    def refused(self) -> int:
        """Entries ``merge`` ignored because their version was too far ahead of ``now``."""
        return self._refused

    def lookup(self, key: str, now: float) -> str | None:
        """The home of ``key``, or None if absent or expired (an expired entry is dropped).

        A hit becomes the most recently used entry. Never raises.
        """
        entry = self._table.get(key)
        if entry is None:
            return None
        if not entry.expires > now:
            self._remove(key, entry)
            return None
        self._table.move_to_end(key)
        return entry.home

    def get(self, key: str, now: float) -> DirectoryEntry | None:
        """The live entry of ``key`` without touching its LRU position (for inspection)."""
        entry = self._table.get(key)
        if entry is None or not entry.expires > now:
            return None
        return entry

    def entries(self, now: float) -> list[DirectoryEntry]:
        """Every live entry, least recently used first: a full sync for a peer."""
        return [e for e in self._table.values() if e.expires > now]

    # -- writing ---------------------------------------------------------------------

    def learn(self, key: str, home: str, now: float, ttl: float) -> DirectoryEntry:
        """Record locally that ``home`` owns ``key`` for ``ttl`` seconds; queue it for peers.

        The version is ``max(now in ms, last version + 1, current version of key + 1)``:
        strictly increasing on this node, and newer than what the table holds for the
        key, so a local observation always takes effect and wins on the peers too.
        ValueError for an empty key or one longer than MAX_KEY_BYTES bytes of UTF-8, an
        empty home or one longer than 255 bytes, a non-finite ``now`` or ``ttl <= 0``.
        """
        if not _key_ok(key):
            raise ValueError(
                f"directory key must be 1..{MAX_KEY_BYTES} bytes of UTF-8, got {len(key)} chars"
            )
        if not _home_ok(home):
            raise ValueError(f"directory home must be 1..{MAX_HOME_BYTES} bytes of UTF-8")
        if not (math.isfinite(now) and math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"now must be finite and ttl > 0, got now={now} ttl={ttl}")
        version = max(int(now * 1000), self._last_version + 1)
        current = self._table.get(key)
        if current is not None and current.version >= version:
            version = current.version + 1
        expires = int(now + ttl)
        if version > _U64_MAX or not 0 <= expires <= _U64_MAX:
            raise ValueError("directory version or expiry outside u64")
        self._last_version = version
        entry = DirectoryEntry(key, sys.intern(home), version, expires)
        self._store(key, entry, now)
        self._outbox[key] = entry
        self._outbox.move_to_end(key)
        while len(self._outbox) > self._max_entries:
            self._outbox.popitem(last=False)
        return entry

    def merge(self, entry: DirectoryEntry, now: float) -> bool:
        """Apply an entry from a peer; True if the table changed.

        Ignored: an expired entry (``expires <= now``), a key that is empty or longer
        than MAX_KEY_BYTES, an empty or too long home, a version or expiry outside
        u64, a version more than MAX_VERSION_AHEAD (+ 1) seconds ahead of ``now``
        (counted in ``refused``). Otherwise it replaces the current entry of its key
        only if it ranks higher: newer version; equal versions -> the lexicographically
        larger home; equal too -> the later expiry. Never raises for a bad entry.
        """
        if not isinstance(entry, DirectoryEntry):
            return False
        key, expires, version = entry.key, entry.expires, entry.version
        if not (
            isinstance(expires, int)
            and isinstance(version, int)
            and 0 <= version <= _U64_MAX
            and expires <= _U64_MAX
            and expires > now
            and _key_ok(key)
            and _home_ok(entry.home)
        ):
            return False
        if version > (now + MAX_VERSION_AHEAD + _VERSION_SLACK) * 1000:
            self._refused += 1
            return False
        current = self._table.get(key)
        if current is not None and current.expires > now and _rank(current) >= _rank(entry):
            return False
        home = sys.intern(entry.home)
        if home is not entry.home:
            entry = DirectoryEntry(key, home, version, expires)
        self._store(key, entry, now)
        return True

    def expire(self, now: float) -> int:
        """Drop every entry with ``expires <= now``; returns how many. O(expired) amortized."""
        heap = self._heap
        table = self._table
        dropped = 0
        while heap and not heap[0][0] > now:
            _, key = heapq.heappop(heap)
            entry = table.get(key)
            if entry is not None and not entry.expires > now:
                self._remove(key, entry)
                dropped += 1
        return dropped

    def take_outbox(self) -> list[DirectoryEntry]:
        """Entries learned locally since the last call, oldest first (the newest per key).

        At most ``max_entries`` are kept between calls; older ones are dropped.
        """
        out = list(self._outbox.values())
        self._outbox.clear()
        return out

    # -- internals -------------------------------------------------------------------

    def _store(self, key: str, entry: DirectoryEntry, now: float) -> None:
        table = self._table
        current = table.get(key)
        if current is None:
            self._bytes += entry_memory(key)
        else:
            table.move_to_end(key)
        table[key] = entry
        if current is None or current.expires != entry.expires:
            heapq.heappush(self._heap, (entry.expires, key))
            if len(self._heap) > 2 * len(table) + 64:
                self._compact_heap()
        if len(table) > self._max_entries or self._bytes > self._max_bytes:
            self._evict(now)

    def _remove(self, key: str, entry: DirectoryEntry) -> None:
        del self._table[key]
        self._bytes -= entry_memory(entry.key)

    def _evict(self, now: float) -> None:
        """Back under both bounds: expired entries first, then least recently used."""
        self.expire(now)
        table = self._table
        while table and (len(table) > self._max_entries or self._bytes > self._max_bytes):
            _, entry = table.popitem(last=False)
            self._bytes -= entry_memory(entry.key)
            self._evictions += 1

    def _compact_heap(self) -> None:
        self._heap = [(e.expires, k) for k, e in self._table.items()]
        heapq.heapify(self._heap)
