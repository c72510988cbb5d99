"""A deliberately broken extractor plugin: `extract` raises on every request.

Installed by scripts/test.sh through its entry point, exactly like a third-party
plugin, so the integration tests can prove that a plugin failure is contained:
the connection goes on as "no match", the failure is counted and logged, and
the node keeps running.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lb.extract.api import ExtractorContext, Identifier, Seen, Verdict


class RaisingExtractor:
    name = "test-raise"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        raise RuntimeError("test-raise: this plugin always fails")


def make_raising(options: Mapping[str, Any], ctx: ExtractorContext) -> RaisingExtractor:
    return RaisingExtractor()
