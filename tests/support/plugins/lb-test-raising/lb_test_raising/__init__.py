"""Test-only extractor plugins: one that raises on every request, one that logs, one that
blocks its worker.

Installed by scripts/test.sh through their entry points, exactly like a third-party
plugin, so the integration tests can prove that a plugin failure is contained
(`test-raise`: the connection goes on as "no match", the failure is counted and
logged, and the node keeps running; with `answer = "text"` it returns that string,
an answer of the wrong type, instead of raising, and with `answer = "need-more"` it
never decides), and that what a plugin logs with the standard
library's `logging`, as plugin authors do, reaches the node's log in its format
(`test-stdlib-log`: one warning per request, then "no match"), and that a worker
busy past its peers' silence deadline does not take its own stall for theirs
(`test-stall`: a request for /__stall blocks the worker `seconds` seconds, as a
plugin doing a synchronous look-up would, then "no match").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from lb.extract.api import ExtractorContext, Identifier, Seen, Verdict


class RaisingExtractor:
    name = "test-raise"

    def __init__(self, answer: str | None) -> None:
        self.answer = answer

    def extract(self, seen: Seen) -> Identifier | Verdict:
        if self.answer == "need-more":
            return Verdict.NEED_MORE  # never decided, whatever comes
        if self.answer is not None:
            return self.answer  # type: ignore[return-value]  # a wrong type, on purpose
        raise RuntimeError("test-raise: this plugin always fails")


def make_raising(options: Mapping[str, Any], ctx: ExtractorContext) -> RaisingExtractor:
    """Option `answer` (a string): return it instead of raising, the wrong type;
    `answer = "need-more"` answers Verdict.NEED_MORE to everything instead."""
    answer = options.get("answer")
    return RaisingExtractor(answer if isinstance(answer, str) else None)


class StdlibLoggingExtractor:
    name = "test-stdlib-log"

    def __init__(self) -> None:
        self.log = logging.getLogger("lb_test_raising")

    def extract(self, seen: Seen) -> Identifier | Verdict:
        self.log.warning("test-stdlib-log: a plugin's warning\nover two lines")
        return Verdict.NO_MATCH


def make_stdlib_logging(
    options: Mapping[str, Any], ctx: ExtractorContext
) -> StdlibLoggingExtractor:
    return StdlibLoggingExtractor()


class StallingExtractor:
    name = "test-stall"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def extract(self, seen: Seen) -> Identifier | Verdict:
        head = seen.http
        if head is not None and head.path == "/__stall":
            time.sleep(self.seconds)  # blocks the whole worker, on purpose
        return Verdict.NO_MATCH


def make_stalling(options: Mapping[str, Any], ctx: ExtractorContext) -> StallingExtractor:
    return StallingExtractor(float(options.get("seconds", 1.0)))
