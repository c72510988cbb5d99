"""Weighted Maglev consistent hashing: identifier key -> node name.

The table is a pure function of the node weights (names are sorted, hashes are
blake2b), so every node of a farm, every process and every Python version
builds the same table from the same weights. This module must never use
Python's built-in ``hash()`` (salted per process), read the clock or do I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from math import gcd, isqrt

__all__ = ["TABLE_SIZES", "MaglevTable", "stable_hash64"]

# Primes the table size is chosen from: the smallest one >= 100 * nodes.
TABLE_SIZES: tuple[int, ...] = (1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)

_OFFSET_PREFIX = b"lb-maglev-offset\x00"
_SKIP_PREFIX = b"lb-maglev-skip\x00"


def stable_hash64(data: bytes) -> int:
    """The unsigned 64-bit hash lb uses everywhere: blake2b(digest_size=8), big-endian."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _encode(text: str) -> bytes:
    # surrogatepass: any str encodes, so a lookup never raises.
    return text.encode("utf-8", "surrogatepass")


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def _default_size(nodes: int) -> int:
    want = 100 * nodes
    for size in TABLE_SIZES:
        if size >= want:
            return size
    return TABLE_SIZES[-1]


def _gcd_all(values: list[int]) -> int:
    g = 0
    for v in values:
        g = gcd(g, v)
    return g


class MaglevTable:
    """A weighted Maglev lookup table over named nodes.

    Each node walks its own permutation of the slots (offset and skip from
    blake2b of its name); nodes take turns claiming their next free slot, a node
    of weight ``w`` taking ``w`` turns per round (weights divided by their common
    divisor first). Build cost is about ``size * ln(size)`` slot probes.
    """

    __slots__ = ("_names", "_table", "size", "weights")

    size: int
    weights: dict[str, int]

    def __init__(self, weights: Mapping[str, int], size: int | None = None) -> None:
        if not weights:
            raise ValueError("a Maglev table needs at least one node")
        names = sorted(weights)
        turns: list[int] = []
        for name in names:
            w = weights[name]
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise ValueError(f"weight of node {name!r} must be an int >= 1, got {w!r}")
            turns.append(w)
        if size is None:
            size = _default_size(len(names))
        elif isinstance(size, bool) or not isinstance(size, int) or not _is_prime(size):
            raise ValueError(f"table size must be a prime, got {size!r}")
        if size < len(names):
            raise ValueError(f"table size {size} is smaller than the node count {len(names)}")
        g = _gcd_all(turns)
        turns = [t // g for t in turns]

        self.size = size
        self.weights = {name: weights[name] for name in names}
        self._names = names
        owners = _fill(size, names, turns)
        self._table: list[str] = [names[i] for i in owners]

    def lookup(self, key: str) -> str:
        """The node that owns ``key``."""
        return self._table[stable_hash64(_encode(key)) % self.size]

    def slot_owner(self, slot: int) -> str:
        """The node that owns slot ``slot`` (for inspection and tests)."""
        return self._table[slot]

    def slot_counts(self) -> dict[str, int]:
        """How many slots each node owns."""
        counts = dict.fromkeys(self._names, 0)
        for name in self._table:
            counts[name] += 1
        return counts


def _fill(size: int, names: list[str], turns: list[int]) -> list[int]:
    """Run the Maglev population loop; returns the owner index of every slot.

    Nodes take turns in name order, node ``i`` taking ``turns[i]`` turns per
    round; a turn claims the first free slot in the node's permutation
    ``offset, offset + skip, offset + 2*skip, ... (mod size)``. Once only
    ``isqrt(size)`` slots are free, a turn finds that slot directly instead of
    walking: every slot the node walked past is taken, so its next claim is the
    free slot with the smallest permutation index ``(slot - offset) / skip
    (mod size)``. Both phases give the same table; the second avoids the long
    walks that dominate the end of the fill.
    """
    n = len(names)
    offsets: list[int] = []
    skips: list[int] = []
    for name in names:
        raw = _encode(name)
        offsets.append(stable_hash64(_OFFSET_PREFIX + raw) % size)
        skips.append(stable_hash64(_SKIP_PREFIX + raw) % (size - 1) + 1)
    pos = list(offsets)
    owner = [-1] * size
    remaining = size
    late = isqrt(size)
    free: list[int] | None = None
    while True:
        for i in range(n):
            for _ in range(turns[i]):
                if free is None:
                    p = pos[i]
                    s = skips[i]
                    while owner[p] >= 0:
                        p += s
                        if p >= size:
                            p -= size
                    owner[p] = i
                    p += s
                    if p >= size:
                        p -= size
                    pos[i] = p
                    remaining -= 1
                    if remaining <= late:
                        if remaining == 0:
                            return owner
                        free = [x for x in range(size) if owner[x] < 0]
                else:
                    off = offsets[i]
                    s = skips[i]
                    inv = pow(s, -1, size)
                    index = min([(x - off) * inv % size for x in free])
                    slot = (off + index * s) % size
                    free.remove(slot)
                    owner[slot] = i
                    if not free:
                        return owner
