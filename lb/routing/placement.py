"""Load-aware placement of new sessions: the power of two choices.

Two distinct candidates are picked from ``salt`` (no hidden randomness: the
same inputs always give the same answer) and the less loaded one wins. Pure:
no I/O, no clock, no global random state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lb.routing.maglev import stable_hash64

__all__ = ["least_loaded_of_two", "pick_two"]

_SALT_PREFIX = b"lb-p2c\x00"


def pick_two(count: int, salt: int) -> tuple[int, int]:
    """Two distinct indexes in ``range(count)`` (count >= 2) derived from ``salt``.

    ``h = stable_hash64(b"lb-p2c\\x00" + decimal(salt))``; the first index is
    ``h % count``, the second ``(h // count) % (count - 1)``, shifted up by one
    when it is >= the first. Every ordered pair is (nearly) equally likely.
    """
    if count < 2:
        raise ValueError(f"pick_two needs at least 2 candidates, got {count}")
    h = stable_hash64(_SALT_PREFIX + str(salt).encode("ascii"))
    first = h % count
    second = (h // count) % (count - 1)
    if second >= first:
        second += 1
    return first, second


def _load(loads: Mapping[str, float], name: str) -> float:
    load = loads.get(name, 0.0)
    return math.inf if math.isnan(load) else load


def least_loaded_of_two(candidates: Sequence[str], loads: Mapping[str, float], salt: int) -> str:
    """The less loaded of two candidates chosen by ``salt``.

    A missing load counts as 0 and a NaN load as infinite; equal loads go to
    the first drawn candidate, so an idle farm spreads new sessions evenly
    (breaking ties by name would send them all to the smallest name). One
    candidate is returned as is; no candidate raises ValueError.
    """
    if not candidates:
        raise ValueError("no candidate node to place a session on")
    if len(candidates) == 1:
        return candidates[0]
    i, j = pick_two(len(candidates), salt)
    a, b = candidates[i], candidates[j]
    la, lb = _load(loads, a), _load(loads, b)
    return b if lb < la else a
