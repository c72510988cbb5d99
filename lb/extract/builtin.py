"""Built-in extractors and their factories (registered in the ``lb.extractors`` group).

A factory has the signature ``(options, ctx) -> Extractor`` and raises
ExtractorError for bad options, one line ``option 'x': message`` per problem;
every unknown option key is a problem too. Extractors are pure, keep no state
between calls and do work bounded by the size of the request head.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lb.errors import ExtractorError
from lb.extract.api import ExtractorContext, Identifier, Seen, Verdict

__all__ = [
    "ClientIpExtractor",
    "HomeCookieExtractor",
    "QueryParamExtractor",
    "UriPathExtractor",
    "make_client_ip",
    "make_home_cookie",
    "make_query_param",
    "make_uri_path",
]

MAX_SEGMENTS = 16


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
    """The farm's home cookie from the request head: placement by the node it names."""

    cookie_name: str
    name: str = "home-cookie"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        if seen.http is None:
            return Verdict.NO_MATCH
        value = seen.http.cookies().get(self.cookie_name)
        if not value:
            return Verdict.NO_MATCH
        return Identifier("home-cookie", value, "home-cookie")


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
    """Kind ``home-cookie``: no options; reads the cookie ``ctx.home_cookie_name``."""
    _Options(options, ()).check()
    return HomeCookieExtractor(ctx.home_cookie_name)


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
