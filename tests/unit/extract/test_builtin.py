"""Tests for lb.extract.builtin: the four built-in extractors and their option checks."""

from __future__ import annotations

from typing import Any

import pytest

from lb.errors import ExtractorError
from lb.extract import ExtractorContext, Identifier, Seen, Verdict
from lb.extract.builtin import make_client_ip, make_home_cookie, make_query_param, make_uri_path
from lb.wire.http import parse_request_head

CTX = ExtractorContext()
CLIENT = ("198.51.100.9", 51234)


def http_seen(target: str = "/", *headers: str) -> Seen:
    raw = f"GET {target} HTTP/1.1\r\nHost: x\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    data = raw.encode("latin-1")
    head = parse_request_head(data, 65536)
    assert head is not None
    return Seen(data=data, eof=False, client=CLIENT, http=head, now=1.0)


TCP_SEEN = Seen(data=b"\x16\x03\x01", eof=False, client=CLIENT, http=None, now=1.0)


def option_errors(factory: Any, options: dict[str, Any]) -> list[str]:
    with pytest.raises(ExtractorError) as info:
        factory(options, CTX)
    return str(info.value).splitlines()


# -- home-cookie ----------------------------------------------------------------------


def test_home_cookie_reads_the_farm_cookie_raw() -> None:
    extractor = make_home_cookie({}, CTX)
    assert extractor.name == "home-cookie"
    seen = http_seen("/", "Cookie: a=1; lbhome=node-b.1700.c2ln==; z=2")
    assert extractor.extract(seen) == Identifier("home-cookie", "node-b.1700.c2ln==", "home-cookie")


def test_home_cookie_uses_the_context_cookie_name() -> None:
    extractor = make_home_cookie({}, ExtractorContext(home_cookie_name="farmhome"))
    seen = http_seen("/", "Cookie: lbhome=wrong; farmhome=right")
    assert extractor.extract(seen) == Identifier("home-cookie", "right", "home-cookie")


@pytest.mark.parametrize(
    "headers", [(), ("Cookie: other=1",), ("Cookie: lbhome=",), ("X-Cookie: lbhome=v",)]
)
def test_home_cookie_absent_or_empty_is_no_match(headers: tuple[str, ...]) -> None:
    assert make_home_cookie({}, CTX).extract(http_seen("/", *headers)) is Verdict.NO_MATCH


def test_home_cookie_on_a_non_http_stream_is_no_match() -> None:
    assert make_home_cookie({}, CTX).extract(TCP_SEEN) is Verdict.NO_MATCH


def test_home_cookie_takes_no_options() -> None:
    assert option_errors(make_home_cookie, {"name": "x"})[0].startswith("option 'name': ")


# -- uri-path -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "target", "value"),
    [
        ({}, "/cart/42/items", "/cart"),
        ({"segments": 2}, "/cart/42/items", "/cart/42"),
        ({"segments": 16}, "/cart/42/items", "/cart/42/items"),
        ({"segments": 3}, "/a", "/a"),
        ({"segments": 2}, "//a///b/c", "/a/b"),
        ({"segments": 2}, "/a/b?x=/c/d", "/a/b"),
        ({}, "/caf%C3%A9/x", "/caf%C3%A9"),
        ({"segments": 2}, "/a%2Fb/c", "/a%2Fb/c"),
        ({"segments": 2}, "http://example.com/v1/users/7", "/v1/users"),
        ({"prefix": "/api/", "segments": 2}, "/api/users/7", "/api/users"),
        ({"prefix": "/api"}, "/apis/x", "/apis"),
    ],
)
def test_uri_path(options: dict[str, Any], target: str, value: str) -> None:
    extractor = make_uri_path(options, CTX)
    assert extractor.name == "uri-path"
    assert extractor.extract(http_seen(target)) == Identifier("uri", value, "hash")


@pytest.mark.parametrize(
    ("options", "target"),
    [({}, "/"), ({}, "/?a=1"), ({}, "*"), ({"segments": 4}, "//"), ({"prefix": "/api/"}, "/web/x")],
)
def test_uri_path_no_match(options: dict[str, Any], target: str) -> None:
    assert make_uri_path(options, CTX).extract(http_seen(target)) is Verdict.NO_MATCH


def test_uri_path_on_a_non_http_stream_is_no_match() -> None:
    assert make_uri_path({}, CTX).extract(TCP_SEEN) is Verdict.NO_MATCH


@pytest.mark.parametrize("segments", [0, 17, -1, True, 1.0, "2", None])
def test_uri_path_bad_segments(segments: object) -> None:
    assert option_errors(make_uri_path, {"segments": segments}) == [
        "option 'segments': must be an integer from 1 to 16"
    ]


@pytest.mark.parametrize("prefix", ["api", "", 3, None])
def test_uri_path_bad_prefix(prefix: object) -> None:
    errors = option_errors(make_uri_path, {"prefix": prefix})
    assert errors == ["option 'prefix': must be a string starting with '/'"]


def test_uri_path_reports_every_bad_option_at_once() -> None:
    errors = option_errors(make_uri_path, {"segments": 0, "prefix": "x", "depth": 2})
    assert sorted(line.split(":")[0] for line in errors) == [
        "option 'depth'",
        "option 'prefix'",
        "option 'segments'",
    ]


# -- query-param ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "value"),
    [
        ("/p?sid=abc", "sid=abc"),
        ("/p?a=1&sid=abc&b=2", "sid=abc"),
        ("/p?sid=first&sid=second", "sid=first"),
        ("/p?sid=a%20b=c", "sid=a%20b=c"),
        ("http://example.com/p?sid=9", "sid=9"),
    ],
)
def test_query_param(target: str, value: str) -> None:
    extractor = make_query_param({"name": "sid"}, CTX)
    assert extractor.name == "query-param"
    assert extractor.extract(http_seen(target)) == Identifier("query", value, "hash")


@pytest.mark.parametrize(
    "target",
    ["/p", "/p?", "/p?sid=", "/p?sid", "/p?sid=&sid=later", "/p?sidx=1&xsid=2", "/sid=1"],
)
def test_query_param_absent_or_empty_is_no_match(target: str) -> None:
    assert make_query_param({"name": "sid"}, CTX).extract(http_seen(target)) is Verdict.NO_MATCH


def test_query_param_on_a_non_http_stream_is_no_match() -> None:
    assert make_query_param({"name": "sid"}, CTX).extract(TCP_SEEN) is Verdict.NO_MATCH


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "option 'name': is required (the query parameter to read)"),
        ({"name": ""}, "option 'name': must be a non-empty string"),
        ({"name": 5}, "option 'name': must be a non-empty string"),
        ({"name": "a=b"}, "option 'name': must not contain '&' or '='"),
        ({"name": "a&b"}, "option 'name': must not contain '&' or '='"),
    ],
)
def test_query_param_bad_name(options: dict[str, Any], message: str) -> None:
    assert option_errors(make_query_param, options) == [message]


def test_query_param_unknown_option() -> None:
    errors = option_errors(make_query_param, {"name": "sid", "param": "x"})
    assert len(errors) == 1
    assert errors[0].startswith("option 'param': unknown option")


# -- client-ip ------------------------------------------------------------------------


def test_client_ip_on_http_and_tcp() -> None:
    extractor = make_client_ip({}, CTX)
    assert extractor.name == "client-ip"
    expected = Identifier("client-ip", "198.51.100.9", "hash")
    assert extractor.extract(http_seen("/")) == expected
    assert extractor.extract(TCP_SEEN) == expected


def test_client_ip_v6() -> None:
    seen = Seen(data=b"", eof=True, client=("2001:db8::1", 443), http=None, now=0.0)
    assert make_client_ip({}, CTX).extract(seen) == Identifier("client-ip", "2001:db8::1", "hash")


def test_client_ip_takes_no_options() -> None:
    assert option_errors(make_client_ip, {"v6": True})[0].startswith("option 'v6': unknown option")


@pytest.mark.parametrize("factory", [make_home_cookie, make_uri_path, make_client_ip])
def test_options_must_be_a_table(factory: Any) -> None:
    assert option_errors(factory, ["segments", 2]) == ["options must be a table, not list"]  # type: ignore[arg-type]
