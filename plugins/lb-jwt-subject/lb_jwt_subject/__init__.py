"""lb-jwt-subject: an lb extractor plugin that homes HTTP requests by a JWT claim.

Registered in the entry-point group ``lb.extractors`` as ``jwt-subject``; a
service's extractor chain in the farm file switches it on. This package does no
I/O and keeps no state; see ``lb_jwt_subject.extractor``.
"""

from __future__ import annotations

from lb_jwt_subject.extractor import (
    KIND,
    MAX_CLAIM_CHARS,
    MAX_DEPTH,
    MAX_TOKEN_CHARS,
    JwtSubjectExtractor,
    make_jwt_subject,
)

__all__ = [
    "KIND",
    "MAX_CLAIM_CHARS",
    "MAX_DEPTH",
    "MAX_TOKEN_CHARS",
    "JwtSubjectExtractor",
    "make_jwt_subject",
]

__version__ = "0.1.0"
