"""Extractors: bytes seen so far -> identifier, need-more or no-match. Pure: no I/O."""

from lb.extract.api import (
    Extractor,
    ExtractorContext,
    ExtractResult,
    HomeCookieVerifier,
    Identifier,
    Seen,
    Verdict,
    run_chain,
)
from lb.extract.registry import (
    ENTRY_POINT_GROUP,
    ExtractorFactory,
    FactoryInfo,
    available,
    build_chain,
    load_errors,
    refresh,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "ExtractResult",
    "Extractor",
    "ExtractorContext",
    "ExtractorFactory",
    "FactoryInfo",
    "HomeCookieVerifier",
    "Identifier",
    "Seen",
    "Verdict",
    "available",
    "build_chain",
    "load_errors",
    "refresh",
    "run_chain",
]
