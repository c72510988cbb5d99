"""The extractor chain runner: the first Identifier of a chain of extractors wins.

Pure: no I/O, no clock. Part of the extractor API (lb.extract.api re-exports
`run_chain`); a module of its own so that the compiled build makes it native code,
while lb.extract.api stays plain Python for plugin authors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from lb.errors import ExtractorAnswerError
from lb.extract.api import Extractor, Identifier, Seen, Verdict
from lb.extract.builtin import HomeCookieExtractor

__all__ = ["PLACEMENTS", "run_chain"]

PLACEMENTS: Final = frozenset(("hash", "home-cookie", "directory"))
"""The placements the router knows (lb.routing.route): an Identifier with another is
reported as a wrong answer and counts as no match."""


def run_chain(
    chain: Sequence[Extractor],
    seen: Seen,
    on_error: Callable[[Extractor, BaseException], None],
) -> Identifier | Verdict:
    """Run ``chain`` in order; the first Identifier wins.

    An extractor answering NEED_MORE before any earlier one matched makes the chain
    answer NEED_MORE, unless ``seen.eof`` (then it counts as NO_MATCH). An
    extractor that raises an Exception, or returns something that is neither an
    Identifier nor a Verdict, or an Identifier whose placement is not in
    ``PLACEMENTS``, is reported to ``on_error`` (the latter two as an
    ExtractorAnswerError) and counts as NO_MATCH. Exceptions raised by ``on_error``
    itself propagate.
    """
    for extractor in chain:
        try:
            if isinstance(extractor, HomeCookieExtractor):
                # the usual first extractor: compiled, a direct call of its native
                # method instead of a look-up of `extract` and a call through Python;
                # its Identifier's placement is lb's own (no check: ~250 instructions)
                result = extractor.extract(seen)
                if isinstance(result, Identifier):
                    return result
            else:
                result = extractor.extract(seen)
        except Exception as exc:
            on_error(extractor, exc)
            continue
        if isinstance(result, Identifier):
            if result.placement in PLACEMENTS:
                return result
            # a typo such as "hsah" used to route every connection as a new session,
            # silently; its text is not quoted (a plugin may have put anything there)
            name = getattr(extractor, "name", type(extractor).__name__)
            on_error(
                extractor,
                ExtractorAnswerError(
                    f"extractor {name!r} returned an Identifier whose placement is not "
                    "one of: hash, home-cookie, directory"
                ),
            )
            continue
        if result is Verdict.NEED_MORE:
            if not seen.eof:
                return Verdict.NEED_MORE
        elif result is not Verdict.NO_MATCH:
            name = getattr(extractor, "name", type(extractor).__name__)
            on_error(
                extractor,
                ExtractorAnswerError(
                    f"extractor {name!r} returned {type(result).__name__}, "
                    "not an Identifier or a Verdict"
                ),
            )
    return Verdict.NO_MATCH
