"""Load-aware placement of new sessions: the power of two choices.

Two distinct candidates are picked from ``salt`` (no hidden randomness: the
same inputs always give the same answer) and the less loaded one wins. For a
client whose address is known the salt is ``source_salt``: a hash of its
source and of the hold window ``now`` falls in, so every process of the farm
that sees the same view places a client's new sessions on the same node. Pure:
no I/O, no clock, no global random state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lb.routing.maglev import stable_hash64

__all__ = [
    "SOURCE_SLACK",
    "SOURCE_SLACK_SHARE",
    "least_loaded_of_two",
    "least_loaded_of_two_with_slack",
    "pick_two",
    "source_salt",
]

SOURCE_SLACK = 16.0
"""Sessions by which the second candidate of a client's pair must be less loaded to win
(more than the loads two processes see differ by between two PINGs)."""
SOURCE_SLACK_SHARE = 0.25
"""... or this share of the first candidate's load, whichever is more."""

_SALT_PREFIX = b"lb-p2c\x00"
_SOURCE_PREFIX = b"lb-source\x00"


def source_salt(source: str, now: float, window: float) -> int:
    """The placement salt of a client source in the window of ``window`` seconds at ``now``.

    ``stable_hash64(b"lb-source\\x00" + source + b"\\x00" + decimal(floor(now / window)))``,
    the source in UTF-8. The same source gets the same salt, on every node and
    worker, for ``window`` seconds; the next window draws a new pair, so one
    address (many users behind a NAT) does not stay on one pair of nodes for
    ever. A ``now`` that is not finite counts as window 0.
    """
    if not window > 0:
        raise ValueError(f"window must be > 0 seconds, got {window!r}")
    slot = now / window
    index = math.floor(slot) if math.isfinite(slot) else 0
    data = _SOURCE_PREFIX + source.encode("utf-8", "surrogatepass") + b"\x00" + str(index).encode()
    return stable_hash64(data)


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


def least_loaded_of_two_with_slack(
    candidates: Sequence[str],
    loads: Mapping[str, float],
    salt: int,
    slack: float = SOURCE_SLACK,
    share: float = SOURCE_SLACK_SHARE,
) -> str:
    """Like ``least_loaded_of_two``, but the second drawn candidate wins only when it is
    less loaded by more than ``max(slack, share * load of the first)``.

    For placements by a client's source: worker processes and entry nodes see
    loads that differ a little (each hears them at its own time), and the
    margin keeps them agreeing on a client's home while a clearly less loaded
    node still wins its pair. A NaN load counts as infinite: a candidate with
    an infinite load loses to any finite one.
    """
    if not candidates:
        raise ValueError("no candidate node to place a session on")
    if len(candidates) == 1:
        return candidates[0]
    i, j = pick_two(len(candidates), salt)
    a, b = candidates[i], candidates[j]
    la, lb = _load(loads, a), _load(loads, b)
    if math.isinf(la):
        return b if lb < la else a
    return b if lb < la - max(slack, share * la) else a
