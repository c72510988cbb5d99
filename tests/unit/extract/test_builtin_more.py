"""Tests for the cookie, uri-regex and header extractors of lb.extract.builtin."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import ExtractorError
from lb.extract import ExtractorContext, Identifier, Seen, Verdict, available
from lb.extract.builtin import (
    MAX_PATTERN_LENGTH,
    MAX_REGEX_SUBJECT,
    make_app_cookie,
    make_header,
    make_uri_regex,
)
from lb.wire.http import parse_request_head

CTX = ExtractorContext()
CLIENT = ("198.51.100.9", 51234)


def http_seen(target: str = "/", *headers: str) -> Seen:
    raw = f"GET {target} HTTP/1.1\r\nHost: x\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    data = raw.encode("latin-1")
    head = parse_request_head(data, 1 << 20)
    assert head is not None
    return Seen(data=data, eof=False, client=CLIENT, http=head, now=1.0)


TCP_SEEN = Seen(data=b"\x16\x03\x01", eof=False, client=CLIENT, http=None, now=1.0)


def option_errors(factory: Any, options: dict[str, Any]) -> list[str]:
    with pytest.raises(ExtractorError) as info:
        factory(options, CTX)
    return str(info.value).splitlines()


def test_registered_as_entry_points() -> None:
    kinds = available()
    assert kinds["cookie"].factory is make_app_cookie
    assert kinds["uri-regex"].factory is make_uri_regex
    assert kinds["header"].factory is make_header


# -- cookie ----------------------------------------------------------------------------


def test_app_cookie_is_a_directory_identifier() -> None:
    extractor = make_app_cookie({"name": "JSESSIONID"}, CTX)
    assert extractor.name == "cookie"
    seen = http_seen("/", "Cookie: lbhome=zz; JSESSIONID=abc123; other=1")
    assert extractor.extract(seen) == Identifier("cookie", "JSESSIONID=abc123", "directory")


def test_app_cookie_name_is_case_sensitive() -> None:
    extractor = make_app_cookie({"name": "JSESSIONID"}, CTX)
    assert extractor.extract(http_seen("/", "Cookie: jsessionid=abc")) is Verdict.NO_MATCH


def test_app_cookie_value_is_kept_as_sent() -> None:
    extractor = make_app_cookie({"name": "S"}, CTX)
    result = extractor.extract(http_seen("/", 'Cookie: S="q=1"'))
    assert result == Identifier("cookie", 'S="q=1"', "directory")


@pytest.mark.parametrize("headers", [(), ("Cookie: other=1",), ("Cookie: S=",), ("X-Cookie: S=v",)])
def test_app_cookie_absent_or_empty_is_no_match(headers: tuple[str, ...]) -> None:
    assert make_app_cookie({"name": "S"}, CTX).extract(http_seen("/", *headers)) is Verdict.NO_MATCH


def test_app_cookie_on_a_non_http_stream_is_no_match() -> None:
    assert make_app_cookie({"name": "S"}, CTX).extract(TCP_SEEN) is Verdict.NO_MATCH


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "a b"}, "name"),
        ({"name": "a;b"}, "name"),
        ({"name": 5}, "name"),
        ({"name": "S", "path": "/"}, "path"),
    ],
)
def test_app_cookie_bad_options(options: dict[str, Any], key: str) -> None:
    errors = option_errors(make_app_cookie, options)
    assert len(errors) == 1
    assert errors[0].startswith(f"option '{key}': ")


# -- uri-regex -------------------------------------------------------------------------


def test_uri_regex_one_group() -> None:
    extractor = make_uri_regex({"pattern": r"^/cart/(\d+)"}, CTX)
    assert extractor.name == "uri-regex"
    assert extractor.extract(http_seen("/cart/42/items")) == Identifier("uri", "42", "hash")
    assert extractor.extract(http_seen("/cart/x")) is Verdict.NO_MATCH


def test_uri_regex_named_id_group_wins_over_others() -> None:
    extractor = make_uri_regex({"pattern": r"/(a|b)/(?P<id>[^/?]+)/(c)"}, CTX)
    assert extractor.extract(http_seen("/b/tenant-7/c")) == Identifier("uri", "tenant-7", "hash")


def test_uri_regex_sees_the_query() -> None:
    extractor = make_uri_regex({"pattern": r"[?&]sid=([^&]+)"}, CTX)
    assert extractor.extract(http_seen("/p?x=1&sid=s-9&y")) == Identifier("uri", "s-9", "hash")
    assert extractor.extract(http_seen("/p/sid=s-9")) is Verdict.NO_MATCH


def test_uri_regex_absolute_form_target_matches_path_and_query() -> None:
    extractor = make_uri_regex({"pattern": r"^/u/(\w+)\?"}, CTX)
    seen = http_seen("http://shop.example/u/bob?x=1")
    assert extractor.extract(seen) == Identifier("uri", "bob", "hash")


@pytest.mark.parametrize("pattern", [r"/x(\d*)", r"/x(\d+)?"])
def test_uri_regex_empty_or_missing_group_is_no_match(pattern: str) -> None:
    assert make_uri_regex({"pattern": pattern}, CTX).extract(http_seen("/x")) is Verdict.NO_MATCH


def test_uri_regex_looks_at_a_bounded_prefix_only() -> None:
    extractor = make_uri_regex({"pattern": r"(END)"}, CTX)
    near = "/" + "a" * (MAX_REGEX_SUBJECT - 4) + "END"
    far = "/" + "a" * MAX_REGEX_SUBJECT + "END"
    assert extractor.extract(http_seen(near)) == Identifier("uri", "END", "hash")
    assert extractor.extract(http_seen(far)) is Verdict.NO_MATCH


def test_uri_regex_work_is_bounded_for_a_long_target() -> None:
    # re.search of this pattern is quadratic in the subject: on the whole 60,000-character
    # target it would take many seconds; on the bounded prefix it takes milliseconds.
    extractor = make_uri_regex({"pattern": r"(a+)x"}, CTX)
    seen = http_seen("/" + "a" * 60_000)
    start = time.perf_counter()
    assert extractor.extract(seen) is Verdict.NO_MATCH
    assert time.perf_counter() - start < 1.0


def test_uri_regex_on_a_non_http_stream_is_no_match() -> None:
    assert make_uri_regex({"pattern": "(x)"}, CTX).extract(TCP_SEEN) is Verdict.NO_MATCH


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({}, "is required"),
        ({"pattern": ""}, "non-empty"),
        ({"pattern": 3}, "non-empty"),
        ({"pattern": "(" * 3}, "not a valid regular expression"),
        ({"pattern": "/cart/\\d+"}, "has 0"),
        ({"pattern": "/(a)/(b)"}, "has 2"),
        ({"pattern": "(" + "a" * MAX_PATTERN_LENGTH + ")"}, f"longer than {MAX_PATTERN_LENGTH}"),
        ({"pattern": "(a)", "flags": "i"}, "unknown option"),
    ],
)
def test_uri_regex_bad_options(options: dict[str, Any], fragment: str) -> None:
    errors = option_errors(make_uri_regex, options)
    assert len(errors) == 1
    assert fragment in errors[0]


def test_uri_regex_pattern_at_the_length_limit_is_accepted() -> None:
    pattern = "(" + "a" * (MAX_PATTERN_LENGTH - 2) + ")"
    make_uri_regex({"pattern": pattern}, CTX)


@given(st.text(max_size=60))
@settings(max_examples=300)
def test_uri_regex_answers_identifier_or_no_match(path: str) -> None:
    extractor = make_uri_regex({"pattern": r"/([^/]+)/"}, CTX)
    safe = "/" + "".join(c for c in path if 0x20 < ord(c) < 0x7F)
    result = extractor.extract(http_seen(safe))
    if isinstance(result, Identifier):
        assert result.kind == "uri" and result.value and "/" not in result.value
        assert f"/{result.value}/" in safe
    else:
        assert result is Verdict.NO_MATCH


# -- header ----------------------------------------------------------------------------


def test_header_is_hashed_by_default() -> None:
    extractor = make_header({"name": "Authorization"}, CTX)
    assert extractor.name == "header"
    result = extractor.extract(http_seen("/", "authorization: Bearer tok-123"))
    digest = hashlib.blake2b(b"Bearer tok-123", digest_size=16).hexdigest()
    assert result == Identifier("header", digest, "hash")
    assert "tok-123" not in repr(result) and "tok-123" not in repr(extractor)


def test_header_raw_value_when_asked() -> None:
    extractor = make_header({"name": "X-Tenant", "hash_value": False}, CTX)
    result = extractor.extract(http_seen("/", "X-Tenant: acme", "X-Tenant: other"))
    assert result == Identifier("header", "acme", "hash")


def test_header_hash_depends_on_the_value() -> None:
    extractor = make_header({"name": "X-Key"}, CTX)
    a = extractor.extract(http_seen("/", "X-Key: a"))
    b = extractor.extract(http_seen("/", "X-Key: b"))
    assert isinstance(a, Identifier) and isinstance(b, Identifier)
    assert a.value != b.value and len(a.value) == 32


@pytest.mark.parametrize("headers", [(), ("X-Key:",), ("X-Other: v",)])
def test_header_absent_or_empty_is_no_match(headers: tuple[str, ...]) -> None:
    assert make_header({"name": "X-Key"}, CTX).extract(http_seen("/", *headers)) is Verdict.NO_MATCH


def test_header_on_a_non_http_stream_is_no_match() -> None:
    assert make_header({"name": "X-Key"}, CTX).extract(TCP_SEEN) is Verdict.NO_MATCH


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({}, "name"),
        ({"name": "X Key"}, "name"),
        ({"name": "X-Key:"}, "name"),
        ({"name": "X-Key", "hash_value": "yes"}, "hash_value"),
        ({"name": "X-Key", "hash_value": 1}, "hash_value"),
        ({"name": "X-Key", "salt": "s"}, "salt"),
    ],
)
def test_header_bad_options(options: dict[str, Any], key: str) -> None:
    errors = option_errors(make_header, options)
    assert len(errors) == 1
    assert errors[0].startswith(f"option '{key}': ")


def test_every_problem_is_reported_at_once() -> None:
    errors = option_errors(make_header, {"hash_value": "no", "extra": 1})
    assert len(errors) == 3
