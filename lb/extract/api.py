"""Extractor API: identifiers, verdicts, what a connection has shown, and the chain runner.

An extractor is a pure function object: bytes seen so far -> Identifier,
Verdict.NEED_MORE or Verdict.NO_MATCH. This module does no I/O, keeps no global
state and never reads the clock (``Seen.now`` carries the time).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeAlias

from lb.errors import ExtractorError
from lb.wire.http import RequestHead

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
    """``"home-cookie"`` (the value names the home) or ``"hash"`` (consistent hash)."""


class Verdict(enum.Enum):
    """An extractor's answer when it has no identifier."""

    NEED_MORE = "need-more"
    NO_MATCH = "no-match"


ExtractResult: TypeAlias = Identifier | Verdict
"""What ``Extractor.extract`` returns."""


@dataclass(slots=True)
class Seen:
    """What a client connection has shown so far."""

    data: bytes
    """Bytes received so far (bounded by the listener's head limit)."""
    eof: bool
    """The client half-closed: no more bytes will come."""
    client: tuple[str, int]
    """Client address and port."""
    http: RequestHead | None
    """The parsed request head on HTTP listeners once it is complete, else None."""
    now: float
    """The current time, from the caller."""


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


def run_chain(
    chain: Sequence[Extractor],
    seen: Seen,
    on_error: Callable[[Extractor, BaseException], None],
) -> Identifier | Verdict:
    """Run ``chain`` in order; the first Identifier wins.

    An extractor answering NEED_MORE before any earlier one matched makes the chain
    answer NEED_MORE, unless ``seen.eof`` (then it counts as NO_MATCH). An
    extractor that raises an Exception, or returns something that is neither an
    Identifier nor a Verdict, is reported to ``on_error`` (the latter as an
    ExtractorError) and counts as NO_MATCH. Exceptions raised by ``on_error``
    itself propagate.
    """
    for extractor in chain:
        try:
            result = extractor.extract(seen)
        except Exception as exc:
            on_error(extractor, exc)
            continue
        if isinstance(result, Identifier):
            return result
        if result is Verdict.NEED_MORE:
            if not seen.eof:
                return Verdict.NEED_MORE
        elif result is not Verdict.NO_MATCH:
            name = getattr(extractor, "name", type(extractor).__name__)
            on_error(
                extractor,
                ExtractorError(
                    f"extractor {name!r} returned {type(result).__name__}, "
                    "not an Identifier or a Verdict"
                ),
            )
    return Verdict.NO_MATCH
