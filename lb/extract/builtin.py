"""Built-in extractors and their factories (registered in the ``lb.extractors`` group).

A factory has the signature ``(options, ctx) -> Extractor`` and raises
ExtractorError for bad options, one line ``option 'x': message`` per problem;
every unknown option key is a problem too. Extractors are pure, keep no state
between calls (the home cookie one memoizes its immutable answers) and do work
bounded by the size of the request head.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lb.errors import ExtractorError
from lb.extract.api import ExtractorContext, HomeCookieVerifier, Identifier, Seen, Verdict
from lb.extract.verifier import CookieVerifier

__all__ = [
    "MAX_PATTERN_LENGTH",
    "MAX_REGEX_SUBJECT",
    "AppCookieExtractor",
    "ClientIpExtractor",
    "HeaderExtractor",
    "HomeCookieExtractor",
    "QueryParamExtractor",
    "UriPathExtractor",
    "UriRegexExtractor",
    "make_app_cookie",
    "make_client_ip",
    "make_header",
    "make_home_cookie",
    "make_query_param",
    "make_uri_path",
    "make_uri_regex",
]

MAX_SEGMENTS = 16
MAX_REMEMBERED_COOKIES = 4096
"""Home cookie identifiers ``home-cookie`` keeps for reuse (then it starts over)."""
MAX_PATTERN_LENGTH = 512
"""The longest ``uri-regex`` pattern accepted."""
MAX_REGEX_SUBJECT = 2048
"""``uri-regex`` matches only the first this many characters of path + query."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class _Options:
    """Collects every problem with a factory's options, then raises them at once."""

    def __init__(self, options: Mapping[str, Any], known: tuple[str, ...]) -> None:
        self.options = options
        self.problems: list[str] = []
        if not isinstance(options, Mapping):
            self.options = {}
            self.problems.append(f"options must be a table, not {type(options).__name__}")
            return
        takes = ", ".join(known) if known else "none"
        for key in options:
            if key not in known:
                self.problems.append(f"option '{key}': unknown option (known options: {takes})")

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"option '{key}': {message}")

    def check(self) -> None:
        if self.problems:
            raise ExtractorError("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class HomeCookieExtractor:
    """The farm's home cookie from the request head: placement by the node it names.

    With a ``keyring``, a cookie that does not verify at ``seen.now`` (forged,
    tampered, expired, of another farm or an unknown key) is no identifier at all:
    NO_MATCH, and the next extractor of the chain answers. The keyring remembers
    the values it verified, so the router's own check of the same value, and the
    later requests of the session, cost a dict look-up, not an HMAC. The
    Identifier of a value is built once and shared by the session's requests
    (it is immutable; building one costs more than the rest of the extraction).
    """

    cookie_name: str
    keyring: HomeCookieVerifier | None = None
    name: str = "home-cookie"
    identifiers: dict[str, Identifier] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def extract(self, seen: Seen) -> Identifier | Verdict:
        if seen.http is None:
            return Verdict.NO_MATCH
        value = seen.http.cookie(self.cookie_name)
        if not value:
            return Verdict.NO_MATCH
        keyring = self.keyring
        if isinstance(keyring, CookieVerifier):  # the node's: a native call compiled
            if keyring.verify(value, seen.now) is None:
                return Verdict.NO_MATCH
        elif keyring is not None and keyring.verify(value, seen.now) is None:
            return Verdict.NO_MATCH
        identifiers = self.identifiers
        identifier = identifiers.get(value)
        if identifier is None:
            if len(identifiers) >= MAX_REMEMBERED_COOKIES:
                identifiers.clear()
            identifier = identifiers[value] = Identifier("home-cookie", value, "home-cookie")
        return identifier


@dataclass(frozen=True, slots=True)
class UriPathExtractor:
    """The first ``segments`` non-empty path segments, as sent (no percent-decoding)."""

    segments: int = 1
    prefix: str | None = None
    name: str = "uri-path"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        if seen.http is None:
            return Verdict.NO_MATCH
        path = seen.http.path
        if self.prefix is not None and not path.startswith(self.prefix):
            return Verdict.NO_MATCH
        parts: list[str] = []
        for part in path.split("/"):
            if part:
                parts.append(part)
                if len(parts) == self.segments:
                    break
        if not parts:
            return Verdict.NO_MATCH
        return Identifier("uri", "/" + "/".join(parts), "hash")


@dataclass(frozen=True, slots=True)
class QueryParamExtractor:
    """``<param>=<value>`` of the first occurrence of a query parameter, as sent."""

    param: str
    name: str = "query-param"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        if seen.http is None:
            return Verdict.NO_MATCH
        for pair in seen.http.query.split("&"):
            key, _, value = pair.partition("=")
            if key == self.param:
                if not value:
                    return Verdict.NO_MATCH
                return Identifier("query", f"{key}={value}", "hash")
        return Verdict.NO_MATCH


@dataclass(frozen=True, slots=True)
class ClientIpExtractor:
    """The client's IP address (HTTP and plain TCP listeners alike)."""

    name: str = "client-ip"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        return Identifier("client-ip", seen.client[0], "hash")


def make_home_cookie(options: Mapping[str, Any], ctx: ExtractorContext) -> HomeCookieExtractor:
    """Kind ``home-cookie``: no options; reads the cookie ``ctx.home_cookie_name`` and
    verifies it with ``ctx.home_cookie_keyring`` when the context has one."""
    _Options(options, ()).check()
    return HomeCookieExtractor(ctx.home_cookie_name, ctx.home_cookie_keyring)


def make_uri_path(options: Mapping[str, Any], ctx: ExtractorContext) -> UriPathExtractor:
    """Kind ``uri-path``: ``segments`` (int 1..16, default 1), ``prefix`` (str, starts with '/')."""
    opts = _Options(options, ("segments", "prefix"))
    segments = opts.options.get("segments", 1)
    if (
        isinstance(segments, bool)
        or not isinstance(segments, int)
        or not 1 <= segments <= MAX_SEGMENTS
    ):
        opts.problem("segments", f"must be an integer from 1 to {MAX_SEGMENTS}")
    prefix = opts.options.get("prefix")
    if "prefix" in opts.options and not (isinstance(prefix, str) and prefix.startswith("/")):
        opts.problem("prefix", "must be a string starting with '/'")
    opts.check()
    return UriPathExtractor(segments, prefix)


def make_query_param(options: Mapping[str, Any], ctx: ExtractorContext) -> QueryParamExtractor:
    """Kind ``query-param``: ``name`` (required, non-empty, without '&' or '=')."""
    opts = _Options(options, ("name",))
    param = opts.options.get("name")
    if param is None:
        opts.problem("name", "is required (the query parameter to read)")
    elif not isinstance(param, str) or not param:
        opts.problem("name", "must be a non-empty string")
    elif "&" in param or "=" in param:
        opts.problem("name", "must not contain '&' or '='")
    opts.check()
    assert isinstance(param, str)
    return QueryParamExtractor(param)


def make_client_ip(options: Mapping[str, Any], ctx: ExtractorContext) -> ClientIpExtractor:
    """Kind ``client-ip``: no options."""
    _Options(options, ()).check()
    return ClientIpExtractor()


# -- learned and header identifiers ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class AppCookieExtractor:
    """An application's session cookie (``JSESSIONID``, ...): placement by the directory.

    The value is ``<name>=<value>`` as the client sent it, the spelling the home
    learned from the application's ``Set-Cookie``.
    """

    cookie_name: str
    name: str = "cookie"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        if seen.http is None:
            return Verdict.NO_MATCH
        value = seen.http.cookie(self.cookie_name)
        if not value:
            return Verdict.NO_MATCH
        return Identifier("cookie", f"{self.cookie_name}={value}", "directory")


@dataclass(frozen=True, slots=True)
class UriRegexExtractor:
    """A capture of a regular expression over path + query: placement by hash.

    ``re.search`` runs over at most MAX_REGEX_SUBJECT characters, which bounds
    the work of any pattern by the input length; a pattern that backtracks
    badly is still the operator's to avoid.
    """

    pattern: re.Pattern[str]
    group: int | str
    name: str = "uri-regex"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        http = seen.http
        if http is None:
            return Verdict.NO_MATCH
        subject = http.path
        if "?" in http.target:
            subject = f"{subject}?{http.query}"
        match = self.pattern.search(subject[:MAX_REGEX_SUBJECT])
        if match is None:
            return Verdict.NO_MATCH
        value = match.group(self.group)
        if not value:
            return Verdict.NO_MATCH
        return Identifier("uri", value, "hash")


@dataclass(frozen=True, slots=True)
class HeaderExtractor:
    """The first value of a request header: placement by hash.

    With ``hash_value`` (the default) the identifier holds the BLAKE2b-128 hex
    digest of the value, never the value: API tokens and other secrets in
    headers must not reach logs or metrics.
    """

    header: str
    hash_value: bool = True
    name: str = "header"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        if seen.http is None:
            return Verdict.NO_MATCH
        value = seen.http.header(self.header)
        if not value:
            return Verdict.NO_MATCH
        if self.hash_value:
            raw = value.encode("utf-8", "surrogatepass")
            value = hashlib.blake2b(raw, digest_size=16).hexdigest()
        return Identifier("header", value, "hash")


def _token_option(opts: _Options, key: str, what: str) -> str | None:
    value = opts.options.get(key)
    if value is None:
        opts.problem(key, f"is required ({what})")
        return None
    if not isinstance(value, str) or _TOKEN.fullmatch(value) is None:
        opts.problem(key, "must be a token (letters, digits and !#$%&'*+-.^_`|~)")
        return None
    return value


def make_app_cookie(options: Mapping[str, Any], ctx: ExtractorContext) -> AppCookieExtractor:
    """Kind ``cookie``: ``name`` (required, a cookie name token, case-sensitive)."""
    opts = _Options(options, ("name",))
    cookie = _token_option(opts, "name", "the cookie name, e.g. JSESSIONID")
    opts.check()
    assert cookie is not None
    return AppCookieExtractor(cookie)


def make_uri_regex(options: Mapping[str, Any], ctx: ExtractorContext) -> UriRegexExtractor:
    """Kind ``uri-regex``: ``pattern`` (required, a Python regex of at most 512 characters
    with a group named ``id`` or exactly one capturing group)."""
    opts = _Options(options, ("pattern",))
    raw = opts.options.get("pattern")
    compiled: re.Pattern[str] | None = None
    group: int | str = 1
    if raw is None:
        opts.problem("pattern", "is required (a regular expression with one capturing group)")
    elif not isinstance(raw, str) or not raw:
        opts.problem("pattern", "must be a non-empty string")
    elif len(raw) > MAX_PATTERN_LENGTH:
        opts.problem("pattern", f"is longer than {MAX_PATTERN_LENGTH} characters")
    else:
        try:
            compiled = re.compile(raw)
        except (re.error, RecursionError, OverflowError) as exc:
            opts.problem("pattern", f"is not a valid regular expression: {exc}")
        else:
            if "id" in compiled.groupindex:
                group = "id"
            elif compiled.groups != 1:
                opts.problem(
                    "pattern",
                    f"must have exactly one capturing group or a group named 'id', "
                    f"has {compiled.groups}",
                )
    opts.check()
    assert compiled is not None
    return UriRegexExtractor(compiled, group)


def make_header(options: Mapping[str, Any], ctx: ExtractorContext) -> HeaderExtractor:
    """Kind ``header``: ``name`` (required, a header name), ``hash_value`` (bool, default
    true: the identifier is a digest of the value, not the value)."""
    opts = _Options(options, ("name", "hash_value"))
    header = _token_option(opts, "name", "the request header to read")
    hash_value = opts.options.get("hash_value", True)
    if not isinstance(hash_value, bool):
        opts.problem("hash_value", "must be true or false")
    opts.check()
    assert header is not None
    return HeaderExtractor(header, hash_value)
