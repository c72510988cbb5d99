"""The directory: learned identifier -> home entries, bounded, replicated by merge.

A node learns an entry when its application hands out a session (an app
Set-Cookie, a TLS 1.2 session id or ticket); the I/O layer sends what
``take_outbox`` returns to the peers, which ``merge`` it. Every node applies the
same conflict rule (newest version, then the larger home name, then the later
expiry), so nodes that saw the same entries hold the same table whatever the
order. Entries that were used (looked up) are protected from floods of new ones
(segmented LRU); a version far ahead of the clock is refused; learning per client
source is capped. Details and the measured memory per entry: docs/directory.md.

Pure: no I/O, no clock (time is ``now``), no randomness. Not thread-safe: one
directory per worker process.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import ipaddress
import math
import sys
from collections import OrderedDict
from collections.abc import Iterator

from lb.wire.directory import MAX_HOME_BYTES, DirectoryEntry

__all__ = [
    "ENTRY_OVERHEAD",
    "MAX_KEY_BYTES",
    "MAX_VERSION_AHEAD",
    "PROTECTED_SHARE",
    "Directory",
    "DirectoryEntry",
    "DirectoryKeys",
    "SourceLimited",
    "directory_secret",
    "entry_memory",
    "source_key",
]


class DirectoryKeys:
    """The one way to name a learned session in the directory: a keyed hash.

    ``key(kind, value)`` is ``kind + ":" + base64url(HMAC-SHA256(k, kind NUL value)[:16])``
    with ``k`` derived from a farm secret, so session tokens (cookie values, TLS
    session ids and tickets) never sit in memory, travel on links or appear in
    dumps in clear; the kind stays readable for statistics. Every node must use
    the same secret here (see ``directory_secret``).
    """

    __slots__ = ("_key",)

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"lb directory key v1", hashlib.sha256).digest()

    def key(self, kind: str, value: str) -> str:
        mac = hmac.new(self._key, kind.encode() + b"\0" + value.encode(), hashlib.sha256)
        return kind + ":" + base64.urlsafe_b64encode(mac.digest()[:16]).rstrip(b"=").decode()


def directory_secret(secret: bytes, previous_secrets: tuple[bytes, ...]) -> bytes:
    """The secret directory keys derive from: the oldest one a node knows.

    During a rolling change of the farm secret every node still knows the old
    one (as `secret` or in `previous_secrets`), so all nodes hash alike.
    """
    return previous_secrets[-1] if previous_secrets else secret


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

PROTECTED_SHARE = 0.8
"""The share of both bounds (entries and bytes) that used entries may hold; the rest
is always left to new entries."""


class SourceLimited(ValueError):
    """``learn`` refused a new key: its source learned its share in this window."""


ENTRY_OVERHEAD = 136
"""Bytes one entry costs beyond its stored key, measured with tracemalloc on CPython
3.11 (64-bit): the packed value int (version, expiry and home index; 40), the
segment's ordered-dict slot and order node (80-100, depending on how full the dict's
hash table is) and the expiry bucket's list slot (8-9). A key in the canonical form
of ``DirectoryKeys`` is stored as one int of 136 bits (44 bytes, counted by
``entry_memory``); any other key as its str. Home names are kept once, in a table.
tests/unit/routing/test_directory.py checks the estimate against a tracemalloc
measurement; docs/directory.md has the figures at 1,000,000 entries."""

# The widest character sets the width of all characters of a str: one astral
# character among ASCII ones makes the largest string of MAX_KEY_BYTES bytes of UTF-8.
_LARGEST_KEY_MEMORY = sys.getsizeof("\U0001f600" + "k" * (MAX_KEY_BYTES - 4))


def entry_memory(key: str) -> int:
    """The estimated bytes the directory holds for one entry with ``key``."""
    return sys.getsizeof(_KEYS.pack(key)) + ENTRY_OVERHEAD


# -- compact storage: keys and values as ints ---------------------------------------------

_DIGEST_CHARS = 22  # base64url of 16 bytes, unpadded
_EXPIRES_BITS = 40  # Unix seconds up to the year 36812
_HOME_BITS = 16
_VERSION_SHIFT = _EXPIRES_BITS + _HOME_BITS
_EXPIRES_MASK = (1 << _EXPIRES_BITS) - 1
_HOME_MASK = (1 << _HOME_BITS) - 1

Key = int | str  # a stored key: packed (canonical DirectoryKeys form) or the str itself
Value = int | tuple[int, int, str]  # packed (version, expires, home index) or a spill


class _KeyPacker:
    """``kind:base64url(16 bytes)`` <-> one int ``digest << 8 | kind code``.

    A key in any other form is kept as its str. Kind codes are given out in the order
    kinds are met (at most 255; later kinds stay str): they never leave the process.
    """

    __slots__ = ("_codes", "_kinds")

    def __init__(self) -> None:
        self._kinds: list[str] = []
        self._codes: dict[str, int] = {}

    def pack(self, key: str) -> Key:
        kind, sep, digest = key.rpartition(":")
        # canonical: 22 characters whose last carries 2 bits and 4 zero bits
        if not sep or len(digest) != _DIGEST_CHARS or not kind or digest[-1] not in "AQgw":
            return key
        try:
            raw = binascii.a2b_base64(
                digest.encode("ascii").translate(_URLSAFE) + b"==", strict_mode=True
            )
        except (ValueError, UnicodeEncodeError):
            return key  # not base64url: kept as it is
        if len(raw) != 16:
            return key
        code = self._codes.get(kind)
        if code is None:
            if len(self._kinds) >= 255:
                return key
            code = len(self._kinds)
            self._kinds.append(kind)
            self._codes[kind] = code
        return int.from_bytes(raw, "big") << 8 | code

    def unpack(self, stored: Key) -> str:
        if isinstance(stored, str):
            return stored
        raw = (stored >> 8).to_bytes(16, "big")
        digest = base64.urlsafe_b64encode(raw)[:_DIGEST_CHARS].decode()
        return self._kinds[stored & 0xFF] + ":" + digest


_URLSAFE = bytes.maketrans(b"-_", b"+/")
_KEYS = _KeyPacker()  # one per process: packed keys mean the same in every directory


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


#: IPv6 /96 prefixes whose last 32 bits are an IPv4 client's address: the well-known
#: NAT64 prefix 64:ff9b::/96 (RFC 6052; an IPv6-only farm behind SIIT-DC or a stateful
#: NAT64 sees every IPv4 client so) and the IPv4-translated ::ffff:0:0:0/96 (RFC 2765)
_IPV4_EMBEDDING = (
    bytes.fromhex("0064ff9b0000000000000000"),
    bytes.fromhex("0000000000000000ffff0000"),
)


def source_key(address: str) -> str:
    """The source ``learn`` counts for a client address: the address itself for IPv4,
    its /64 for IPv6 (one host commonly owns a whole /64), the IPv4 address of an
    IPv4-mapped one or of one that embeds an IPv4 client (64:ff9b::/96,
    ::ffff:0:0:0/96: their /64 would be every IPv4 client at once); anything that is
    not an address is returned unchanged."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        packed = ip.packed
        if packed[:12] in _IPV4_EMBEDDING:
            return str(ipaddress.IPv4Address(packed[12:]))
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Directory:
    """Learned identifier -> home, bounded by entries and by bytes.

    Eviction is a segmented LRU: a new entry enters the *probation* segment; its
    first lookup hit moves it to the *protected* segment, which holds at most
    PROTECTED_SHARE of both bounds (its least recently used entry goes back to
    probation when it is full). Evictions take the least recently used entry of
    probation first, so a flood of entries that are never used evicts only other
    unused entries. ``used_evictions`` counts evicted entries that had been hit.

    Storage is compact (docs/directory.md, "Memory per entry"): a key is one int, a
    value one int (version, expiry, home index); expiries sit in per-second buckets.
    """

    __slots__ = (
        "_bucket_items",
        "_bucket_times",
        "_buckets",
        "_bytes",
        "_demoted",
        "_evictions",
        "_home_index",
        "_homes",
        "_last_version",
        "_max_bytes",
        "_max_entries",
        "_outbox",
        "_probation",
        "_protected",
        "_protected_bytes",
        "_protected_max_bytes",
        "_protected_max_entries",
        "_refused",
        "_source_epoch",
        "_source_limit",
        "_source_refusals",
        "_source_window",
        "_sources",
        "_used_evictions",
    )

    def __init__(
        self,
        max_entries: int = 100_000,
        max_bytes: int = 32 * 2**20,
        *,
        source_limit: int = 1000,
        source_window: float = 60.0,
    ) -> None:
        """ValueError unless ``max_entries >= 1``, ``max_bytes`` holds one entry of the
        largest key (about 2,300 bytes), ``source_limit >= 1`` and ``source_window > 0``.

        ``source_limit`` new keys per ``source_window`` seconds is what ``learn`` takes
        from one ``source``.
        """
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        smallest = _LARGEST_KEY_MEMORY + ENTRY_OVERHEAD
        if max_bytes < smallest:
            raise ValueError(f"max_bytes must be at least {smallest}, got {max_bytes}")
        if isinstance(source_limit, bool) or not isinstance(source_limit, int) or source_limit < 1:
            raise ValueError(f"source_limit must be an int >= 1, got {source_limit!r}")
        if isinstance(source_window, bool) or not (
            isinstance(source_window, int | float) and 0 < source_window < math.inf
        ):
            raise ValueError(f"source_window must be seconds > 0, got {source_window!r}")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._protected_max_entries = int(max_entries * PROTECTED_SHARE)
        self._protected_max_bytes = int(max_bytes * PROTECTED_SHARE)
        # least recently used first in each segment; a key is in one of them
        self._probation: OrderedDict[Key, Value] = OrderedDict()
        self._protected: OrderedDict[Key, Value] = OrderedDict()
        self._demoted: set[Key] = set()  # keys in probation that were hit once
        # expiry: second -> keys expiring then (stale items are skipped), a heap of seconds
        self._buckets: dict[int, list[Key]] = {}
        self._bucket_times: list[int] = []
        self._bucket_items = 0
        self._homes: list[str] = []  # home index -> name
        self._home_index: dict[str, int] = {}
        self._outbox: OrderedDict[str, DirectoryEntry] = OrderedDict()
        self._bytes = 0
        self._protected_bytes = 0
        self._last_version = 0
        self._evictions = 0
        self._used_evictions = 0
        self._refused = 0
        self._source_limit = source_limit
        self._source_window = float(source_window)
        self._source_epoch = math.nan
        self._sources: dict[str, int] = {}  # source -> new keys learned in this window
        self._source_refusals = 0

    # -- reading ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    @property
    def bytes_used(self) -> int:
        """Estimated bytes held by the live table (sum of ``entry_memory`` per entry)."""
        return self._bytes

    @property
    def evictions(self) -> int:
        """Entries dropped because a bound was reached (not counting expiry)."""
        return self._evictions

    @property
    def used_evictions(self) -> int:
        """Evicted entries that had had a lookup hit: a sign the directory is too small
        for the sessions in use, or under a flood."""
        return self._used_evictions

    @property
    def refused(self) -> int:
        """Entries ``merge`` ignored because their version was too far ahead of ``now``."""
        return self._refused

    @property
    def source_refusals(self) -> int:
        """New keys ``learn`` refused because their source had learned its share."""
        return self._source_refusals

    @property
    def tracked_sources(self) -> int:
        """Sources counted in the current window (at most ``max_entries``)."""
        return len(self._sources)

    def lookup(self, key: str, now: float) -> str | None:
        """The home of ``key``, or None if absent or expired (an expired entry is dropped).

        A hit makes the entry the most recently used of the protected segment. Never
        raises.
        """
        if not isinstance(key, str):
            return None
        k = _KEYS.pack(key)
        value = self._protected.get(k)
        if value is not None:
            _, expires, home = self._unpack(value)
            if not expires > now:
                self._remove(k)
                return None
            self._protected.move_to_end(k)
            return home
        value = self._probation.get(k)
        if value is None:
            return None
        _, expires, home = self._unpack(value)
        if not expires > now:
            self._remove(k)
            return None
        self._promote(k, value)
        return home

    def get(self, key: str, now: float) -> DirectoryEntry | None:
        """The live entry of ``key`` without touching its LRU position (for inspection)."""
        if not isinstance(key, str):
            return None
        value = self._find(_KEYS.pack(key))
        if value is None:
            return None
        version, expires, home = self._unpack(value)
        if not expires > now:
            return None
        return DirectoryEntry(key, home, version, expires)

    def iter_entries(self, now: float) -> Iterator[DirectoryEntry]:
        """Every live entry (probation then protected, each least recently used first),
        made one at a time: a full sync for a peer without a second copy of the table.
        The table must not change while the iterator is in use."""
        unpack, unkey = self._unpack, _KEYS.unpack
        for segment in (self._probation, self._protected):
            for k, value in segment.items():
                version, expires, home = unpack(value)
                if expires > now:
                    yield DirectoryEntry(unkey(k), home, version, expires)

    def entries(self, now: float) -> list[DirectoryEntry]:
        """Every live entry (probation then protected, each least recently used first)."""
        return list(self.iter_entries(now))

    # -- writing ---------------------------------------------------------------------

    def learn(
        self, key: str, home: str, now: float, ttl: float, *, source: str | None = None
    ) -> DirectoryEntry:
        """Record locally that ``home`` owns ``key`` for ``ttl`` seconds; queue it for peers.

        The version is ``max(now in ms, last version + 1, current version of key + 1)``:
        strictly increasing on this node, and newer than what the table holds for the
        key, so a local observation always takes effect and wins on the peers too.
        ValueError for an empty key or one longer than MAX_KEY_BYTES bytes of UTF-8, an
        empty home or one longer than 255 bytes, a non-finite ``now`` or ``ttl <= 0``.

        ``source`` (the client that started the session, see ``source_key``) is
        charged for a key the table does not hold: beyond ``source_limit`` new keys
        in the current window of ``source_window`` seconds, SourceLimited (a
        ValueError) is raised and nothing is stored.
        """
        if not _key_ok(key):
            raise ValueError(
                f"directory key must be 1..{MAX_KEY_BYTES} bytes of UTF-8, got {len(key)} chars"
            )
        if not _home_ok(home):
            raise ValueError(f"directory home must be 1..{MAX_HOME_BYTES} bytes of UTF-8")
        if not (math.isfinite(now) and math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"now must be finite and ttl > 0, got now={now} ttl={ttl}")
        k = _KEYS.pack(key)
        version = max(int(now * 1000), self._last_version + 1)
        current = self._find(k)
        if current is not None:
            current_version = self._unpack(current)[0]
            if current_version >= version:
                version = current_version + 1
        expires = int(now + ttl)
        if version > _U64_MAX or not 0 <= expires <= _U64_MAX:
            raise ValueError("directory version or expiry outside u64")
        if source is not None and current is None:
            self._charge(source, now)
        self._last_version = version
        entry = DirectoryEntry(key, sys.intern(home), version, expires)
        self._store(k, self._pack(version, expires, entry.home), expires, now)
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
        (counted in ``refused``). Otherwise it replaces the current entry of its key only if it
        ranks higher: newer version; equal versions -> the lexicographically larger
        home; equal too -> the later expiry. Never raises for a bad entry.
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
        k = _KEYS.pack(key)
        current = self._find(k)
        if current is not None:
            c_version, c_expires, c_home = self._unpack(current)
            if c_expires > now and (c_version, c_home, c_expires) >= _rank(entry):
                return False
        self._store(k, self._pack(version, expires, entry.home), expires, now)
        return True

    def expire(self, now: float) -> int:
        """Drop every entry with ``expires <= now``; returns how many. O(expired) amortized."""
        times = self._bucket_times
        dropped = 0
        while times and not times[0] > now:
            second = heapq.heappop(times)
            keys = self._buckets.pop(second, [])
            self._bucket_items -= len(keys)
            for k in keys:
                value = self._find(k)
                if value is not None and not self._unpack(value)[1] > now:
                    self._remove(k)
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

    def _pack(self, version: int, expires: int, home: str) -> Value:
        index = self._home_index.get(home)
        if index is None and len(self._homes) <= _HOME_MASK:
            index = len(self._homes)
            home = sys.intern(home)
            self._homes.append(home)
            self._home_index[home] = index
        if index is None or expires > _EXPIRES_MASK:
            return (version, expires, sys.intern(home))  # rare: spilled as a tuple
        return version << _VERSION_SHIFT | expires << _HOME_BITS | index

    def _unpack(self, value: Value) -> tuple[int, int, str]:
        if isinstance(value, tuple):
            return value
        return (
            value >> _VERSION_SHIFT,
            value >> _HOME_BITS & _EXPIRES_MASK,
            self._homes[value & _HOME_MASK],
        )

    def _find(self, k: Key) -> Value | None:
        value = self._probation.get(k)
        return self._protected.get(k) if value is None else value

    def _charge(self, source: str, now: float) -> None:
        """Count one new key for ``source``; SourceLimited beyond its share."""
        epoch = math.floor(now / self._source_window)
        sources = self._sources
        if epoch != self._source_epoch:
            self._source_epoch = epoch
            sources.clear()
        count = sources.get(source)
        if count is None:
            if len(sources) < self._max_entries:  # beyond that many sources: not tracked
                sources[source] = 1
            return
        if count >= self._source_limit:
            self._source_refusals += 1
            raise SourceLimited(
                f"source {source} learned {count} new keys in this "
                f"{self._source_window:g}s window (limit {self._source_limit})"
            )
        sources[source] = count + 1

    def _store(self, k: Key, value: Value, expires: int, now: float) -> None:
        current = self._find(k)
        if current is None:
            self._bytes += sys.getsizeof(k) + ENTRY_OVERHEAD
            self._probation[k] = value
        else:
            segment = self._protected if k in self._protected else self._probation
            segment.move_to_end(k)
            segment[k] = value
        if current is None or self._unpack(current)[1] != expires:
            bucket = self._buckets.get(expires)
            if bucket is None:
                self._buckets[expires] = bucket = []
                heapq.heappush(self._bucket_times, expires)
            bucket.append(k)
            self._bucket_items += 1
            if self._bucket_items > 2 * len(self) + 64:
                self._compact_buckets()
        if len(self) > self._max_entries or self._bytes > self._max_bytes:
            self._evict(now)

    def _promote(self, k: Key, value: Value) -> None:
        """A hit in probation: into the protected segment; its overflow back to probation."""
        del self._probation[k]
        if self._demoted:
            self._demoted.discard(k)
        protected = self._protected
        protected[k] = value
        self._protected_bytes += sys.getsizeof(k) + ENTRY_OVERHEAD
        while (
            len(protected) > self._protected_max_entries
            or self._protected_bytes > self._protected_max_bytes
        ):
            old, old_value = protected.popitem(last=False)
            self._protected_bytes -= sys.getsizeof(old) + ENTRY_OVERHEAD
            self._probation[old] = old_value
            self._demoted.add(old)

    def _remove(self, k: Key) -> None:
        size = sys.getsizeof(k) + ENTRY_OVERHEAD
        if self._protected.pop(k, None) is not None:
            self._protected_bytes -= size
        else:
            del self._probation[k]
            if self._demoted:
                self._demoted.discard(k)
        self._bytes -= size

    def _evict(self, now: float) -> None:
        """Back under both bounds: expired entries first, then the least recently used
        entry of probation, and of the protected segment only when probation is empty."""
        self.expire(now)
        probation, protected = self._probation, self._protected
        while len(self) > self._max_entries or self._bytes > self._max_bytes:
            if probation:
                k, _ = probation.popitem(last=False)
                used = bool(self._demoted) and k in self._demoted
                if used:
                    self._demoted.discard(k)
            elif protected:
                k, _ = protected.popitem(last=False)
                self._protected_bytes -= sys.getsizeof(k) + ENTRY_OVERHEAD
                used = True
            else:
                break
            self._bytes -= sys.getsizeof(k) + ENTRY_OVERHEAD
            self._evictions += 1
            if used:
                self._used_evictions += 1

    def _compact_buckets(self) -> None:
        buckets: dict[int, list[Key]] = {}
        for segment in (self._probation, self._protected):
            for k, value in segment.items():
                buckets.setdefault(self._unpack(value)[1], []).append(k)
        self._buckets = buckets
        self._bucket_times = list(buckets)
        heapq.heapify(self._bucket_times)
        self._bucket_items = len(self)
