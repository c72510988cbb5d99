"""Extractor API: identifiers, verdicts, what a connection has shown, and the chain runner
(`run_chain`, defined in lb.extract.chain and re-exported here).

An extractor is a pure function object: bytes seen so far -> Identifier,
Verdict.NEED_MORE or Verdict.NO_MATCH. This module does no I/O, keeps no global
state and never reads the clock (``Seen.now`` carries the time).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from lb.extract.seen import Seen

__all__ = [
    "ExtractResult",
    "Extractor",
    "ExtractorContext",
    "HomeCookieVerifier",
    "Identifier",
    "Seen",
    "Verdict",
    "run_chain",
]


@dataclass(frozen=True, slots=True)
class Identifier:
    """What an extractor read, and how its home is found."""

    kind: str
    """``"home-cookie"``, ``"uri"``, ``"query"``, ``"client-ip"``, or a plugin's kind."""
    value: str
    """What was read (a home cookie is the raw signed value, verified by the extractor
    when it has the farm's keyring; routing checks it again from the keyring's cache)."""
    placement: str
    """``"home-cookie"`` (the value names the home), ``"hash"`` (consistent hash) or
    ``"directory"`` (learned sessions); another is reported as a failure of the
    extractor and counts as no match (lb.extract.chain.PLACEMENTS)."""


class Verdict(enum.Enum):
    """An extractor's answer when it has no identifier."""

    NEED_MORE = "need-more"
    NO_MATCH = "no-match"


ExtractResult: TypeAlias = Identifier | Verdict
"""What ``Extractor.extract`` returns."""


class Extractor(Protocol):
    """A pure function object: bytes seen so far -> identifier, need-more or no-match."""

    @property
    def name(self) -> str:
        """The kind it was built from, for logs and metrics (a plain attribute will do)."""
        ...

    def extract(self, seen: Seen) -> Identifier | Verdict:
        """Answer from ``seen`` alone, in work bounded by the size of ``seen``."""
        ...


class HomeCookieVerifier(Protocol):
    """What checks a home cookie value: ``lb.routing.cookie.CookieKeyring`` in a node.

    Declared here so that this layer does not import the routing layer above it.
    """

    def verify(self, value: str, now: float) -> str | None:
        """The node named by a valid, unexpired cookie value; None for anything else.
        Never raises."""
        ...


@dataclass(frozen=True, slots=True)
class ExtractorContext:
    """Farm-wide settings a factory may need when it builds an extractor."""

    home_cookie_name: str = "lbhome"
    home_cookie_keyring: HomeCookieVerifier | None = None
    """The farm's keyring. With it, ``home-cookie`` answers only for a cookie that
    verifies at ``Seen.now``: a forged, tampered, expired or other-farm cookie is
    NO_MATCH, so the extractors after it in the chain still run. Without it (config
    validation builds chains without keys) every non-empty cookie is answered and
    routing alone verifies it."""


# the chain runner is on every request's path: in a module of the compiled build
from lb.extract.chain import run_chain  # noqa: E402
