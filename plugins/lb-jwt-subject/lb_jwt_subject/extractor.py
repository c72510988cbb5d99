"""The ``jwt-subject`` extractor: homes HTTP requests by one claim of their JWT bearer token.

The token is read from ``Authorization: Bearer <jwt>`` (default), a named cookie
or a named header. Its payload is decoded WITHOUT verifying the signature: the
extractor only chooses the node a request goes to, the application behind lb
still verifies every token. The claim (by default hashed with BLAKE2b-128)
becomes a ``hash``-placement identifier, so all requests of one subject go to
one node.

Pure and bounded: no I/O, no global state, no clock, work bounded by
MAX_TOKEN_CHARS. Bad input is Verdict.NO_MATCH, never an exception. The raw
token never leaves this module: it is not in identifiers, errors or reprs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lb.errors import ExtractorError
from lb.extract.api import ExtractorContext, Identifier, Seen, Verdict
from lb.wire.http import RequestHead

__all__ = [
    "KIND",
    "MAX_CLAIM_CHARS",
    "MAX_DEPTH",
    "MAX_TOKEN_CHARS",
    "JwtSubjectExtractor",
    "make_jwt_subject",
]

KIND = "jwt-subject"
"""The extractor kind and the kind of the identifiers it returns."""

MAX_TOKEN_CHARS = 8192
"""A longer token is not looked at (NO_MATCH)."""

MAX_DEPTH = 32
"""Deepest JSON nesting of the header or payload that is decoded at all."""

MAX_CLAIM_CHARS = 1024
"""A longer string claim is not an identifier (NO_MATCH)."""

MAX_OPTION_CHARS = 256

_KNOWN_OPTIONS = ("claim", "cookie", "header", "hash_value")
_TOKEN_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_B64URL_OR_EMPTY = re.compile(r"[A-Za-z0-9_-]*")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def _b64url_decode(segment: str) -> bytes | None:
    """Unpadded base64url (RFC 7515) to bytes, or None."""
    if len(segment) % 4 == 1 or _B64URL.fullmatch(segment) is None:
        return None
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def _too_deep(text: str) -> bool:
    """Whether JSON ``text`` nests deeper than MAX_DEPTH (strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        else:
            depth -= 1
    return False


def _json_object(segment: str) -> dict[str, Any] | None:
    """A base64url segment holding a UTF-8 JSON object, decoded; None for anything else."""
    raw = _b64url_decode(segment)
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if _too_deep(text):
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def _claim_text(value: object) -> str | None:
    """A claim usable as an identifier: a non-empty printable str or an int, as text of
    at most MAX_CLAIM_CHARS characters."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)  # json.loads already refused ints beyond Python's digit limit
        return text if len(text) <= MAX_CLAIM_CHARS else None
    if isinstance(value, str) and value and len(value) <= MAX_CLAIM_CHARS and value.isprintable():
        return value
    return None


@dataclass(frozen=True, slots=True)
class JwtSubjectExtractor:
    """One claim of the request's JWT, unverified, as a ``hash``-placement identifier.

    Exactly one source is used: ``cookie`` if set, else the header ``header``
    (``Authorization`` by default, which must carry the ``Bearer`` scheme).
    """

    claim: str = "sub"
    cookie: str | None = None
    header: str = "Authorization"
    hash_value: bool = True
    name: str = KIND

    def extract(self, seen: Seen) -> Identifier | Verdict:
        if seen.http is None:
            return Verdict.NO_MATCH
        token = self._token(seen.http)
        if token is None or not token or len(token) > MAX_TOKEN_CHARS:
            return Verdict.NO_MATCH
        parts = token.split(".")
        if len(parts) != 3 or _B64URL_OR_EMPTY.fullmatch(parts[2]) is None:
            return Verdict.NO_MATCH
        header = _json_object(parts[0])
        if header is None:
            return Verdict.NO_MATCH
        payload = _json_object(parts[1])
        if payload is None:
            return Verdict.NO_MATCH
        value = _claim_text(payload.get(self.claim))
        if value is None:
            return Verdict.NO_MATCH
        if self.hash_value:
            value = hashlib.blake2b(value.encode("utf-8"), digest_size=16).hexdigest()
        return Identifier(KIND, value, "hash")

    def _token(self, head: RequestHead) -> str | None:
        if self.cookie is not None:
            value = head.cookies().get(self.cookie)
            if value is not None and len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
        raw = head.header(self.header)
        if raw is None:
            return None
        scheme, space, rest = raw.partition(" ")
        if space and scheme.lower() == "bearer":
            return rest.strip(" \t")
        if self.header.lower() == "authorization":
            return None  # another scheme (Basic, Digest...): not a bearer token
        return raw


def make_jwt_subject(options: Mapping[str, Any], ctx: ExtractorContext) -> JwtSubjectExtractor:
    """Kind ``jwt-subject``. Options, all optional:

    - ``claim``: the payload claim to read (non-empty string, default ``"sub"``);
    - ``cookie``: read the token from this cookie instead of the Authorization header;
    - ``header``: read the token from this header (raw, or ``Bearer <jwt>``);
    - ``hash_value``: identify by the BLAKE2b-128 hex digest of the claim (default
      true) instead of the claim itself.

    ``cookie`` and ``header`` exclude each other. Raises ExtractorError with one
    ``option 'x': message`` line per problem, unknown options included.
    """
    if not isinstance(options, Mapping):
        raise ExtractorError(f"options must be a table, not {type(options).__name__}")
    problems: list[str] = []
    known = ", ".join(_KNOWN_OPTIONS)
    for key in options:
        if key not in _KNOWN_OPTIONS:
            problems.append(f"option '{key}': unknown option (known options: {known})")

    claim = options.get("claim", "sub")
    if not isinstance(claim, str) or not claim or len(claim) > MAX_OPTION_CHARS:
        problems.append(
            f"option 'claim': must be a non-empty string of at most {MAX_OPTION_CHARS} characters"
        )

    cookie = options.get("cookie")
    if "cookie" in options and not (
        isinstance(cookie, str)
        and len(cookie) <= MAX_OPTION_CHARS
        and _TOKEN_NAME.fullmatch(cookie) is not None
    ):
        problems.append("option 'cookie': must be a cookie name (letters, digits, !#$%&'*+-.^_`|~)")

    header = options.get("header", "Authorization")
    if "header" in options:
        if not (
            isinstance(header, str)
            and len(header) <= MAX_OPTION_CHARS
            and _TOKEN_NAME.fullmatch(header) is not None
        ):
            problems.append(
                "option 'header': must be a header name (letters, digits, !#$%&'*+-.^_`|~)"
            )
        elif header.lower() == "cookie":
            problems.append("option 'header': to read a cookie, use the option 'cookie'")
        if "cookie" in options:
            problems.append("option 'header': give either 'cookie' or 'header', not both")

    hash_value = options.get("hash_value", True)
    if not isinstance(hash_value, bool):
        problems.append("option 'hash_value': must be true or false")

    if problems:
        raise ExtractorError("\n".join(problems))
    assert isinstance(claim, str) and isinstance(header, str) and isinstance(hash_value, bool)
    assert cookie is None or isinstance(cookie, str)
    return JwtSubjectExtractor(claim=claim, cookie=cookie, header=header, hash_value=hash_value)
