"""Tests of the jwt-subject extractor: real JWTs in real request heads, options, entry point."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lb.errors import ConfigError, ExtractorError
from lb.extract import registry
from lb.extract.api import ExtractorContext, Identifier, Seen, Verdict
from lb.wire.http import parse_request_head

from lb_jwt_subject import (
    MAX_CLAIM_CHARS,
    MAX_DEPTH,
    MAX_TOKEN_CHARS,
    JwtSubjectExtractor,
    make_jwt_subject,
)

CTX = ExtractorContext()
KEY = b"test-signing-key-of-the-application"
LB = Path(sys.executable).with_name("lb")


# ---------------------------------------------------------------- helpers


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def jwt(payload: Any, header: Any = None, *, raw_payload: bytes | None = None) -> str:
    """An HS256 JWT (header.payload.signature), signed with KEY."""
    head = b64url(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(raw_payload if raw_payload is not None else json.dumps(payload).encode())
    signing_input = f"{head}.{body}".encode("ascii")
    return f"{head}.{body}.{b64url(hmac.new(KEY, signing_input, hashlib.sha256).digest())}"


def seen_of(headers: Mapping[str, str], target: str = "/account") -> Seen:
    lines = [f"GET {target} HTTP/1.1", "Host: app.test"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    head = parse_request_head(data, 65536)
    assert head is not None
    return Seen(data, False, ("192.0.2.7", 40000), head, 1_700_000_000.0)


def bearer(token: str) -> Seen:
    return seen_of({"Authorization": f"Bearer {token}"})


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def build(**options: Any) -> JwtSubjectExtractor:
    return make_jwt_subject(options, CTX)


def option_errors(options: Any) -> list[str]:
    with pytest.raises(ExtractorError) as info:
        make_jwt_subject(options, CTX)
    return str(info.value).splitlines()


# ---------------------------------------------------------------- sources


def test_bearer_header_gives_hashed_subject_by_default() -> None:
    token = jwt({"sub": "alice@example.test", "exp": 1})
    result = build().extract(bearer(token))
    assert result == Identifier("jwt-subject", digest("alice@example.test"), "hash")


def test_hash_value_false_gives_the_claim_itself() -> None:
    token = jwt({"sub": "alice"})
    assert build(hash_value=False).extract(bearer(token)) == Identifier(
        "jwt-subject", "alice", "hash"
    )


def test_same_subject_same_identifier_whatever_the_rest_of_the_token() -> None:
    ex = build()
    one = ex.extract(bearer(jwt({"sub": "bob", "iat": 1, "scope": "read"})))
    two = ex.extract(bearer(jwt({"sub": "bob", "iat": 2}, {"alg": "HS512", "kid": "k2"})))
    other = ex.extract(bearer(jwt({"sub": "carol", "iat": 1})))
    assert isinstance(one, Identifier) and one == two
    assert isinstance(other, Identifier) and other.value != one.value


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(scheme: str) -> None:
    seen = seen_of({"Authorization": f"{scheme} {jwt({'sub': 'u1'})}"})
    assert build(hash_value=False).extract(seen) == Identifier("jwt-subject", "u1", "hash")


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token {t}", "{t}", "Bearer"])
def test_authorization_without_bearer_scheme_is_no_match(value: str) -> None:
    seen = seen_of({"Authorization": value.format(t=jwt({"sub": "u1"}))})
    assert build().extract(seen) is Verdict.NO_MATCH


def test_integer_claim_is_used_as_its_decimal_text() -> None:
    token = jwt({"sub": 4711})
    assert build(hash_value=False).extract(bearer(token)) == Identifier(
        "jwt-subject", "4711", "hash"
    )
    assert build().extract(bearer(token)) == Identifier("jwt-subject", digest("4711"), "hash")


def test_claim_option_reads_another_claim() -> None:
    token = jwt({"sub": "alice", "tenant": "acme"})
    assert build(claim="tenant", hash_value=False).extract(bearer(token)) == Identifier(
        "jwt-subject", "acme", "hash"
    )


def test_cookie_option_reads_the_cookie_and_ignores_authorization() -> None:
    ex = build(cookie="id_token", hash_value=False)
    seen = seen_of(
        {
            "Authorization": f"Bearer {jwt({'sub': 'from-header'})}",
            "Cookie": f"theme=dark; id_token={jwt({'sub': 'from-cookie'})}; lang=en",
        }
    )
    assert ex.extract(seen) == Identifier("jwt-subject", "from-cookie", "hash")
    only_header = seen_of({"Authorization": f"Bearer {jwt({'sub': 'from-header'})}"})
    assert ex.extract(only_header) is Verdict.NO_MATCH


def test_cookie_value_in_quotes_is_unquoted() -> None:
    seen = seen_of({"Cookie": f'tok="{jwt({"sub": "q"})}"'})
    assert build(cookie="tok", hash_value=False).extract(seen) == Identifier(
        "jwt-subject", "q", "hash"
    )


def test_header_option_reads_raw_or_bearer_token_from_that_header() -> None:
    ex = build(header="X-Token", hash_value=False)
    raw = seen_of({"x-token": jwt({"sub": "raw"})})
    with_scheme = seen_of({"X-Token": f"Bearer {jwt({'sub': 'schemed'})}"})
    assert ex.extract(raw) == Identifier("jwt-subject", "raw", "hash")
    assert ex.extract(with_scheme) == Identifier("jwt-subject", "schemed", "hash")
    authorization_only = seen_of({"Authorization": f"Bearer {jwt({'sub': 'a'})}"})
    assert ex.extract(authorization_only) is Verdict.NO_MATCH


def test_no_http_head_is_no_match() -> None:
    token = jwt({"sub": "alice"}).encode()
    seen = Seen(b"Authorization: Bearer " + token + b"\r\n", False, ("192.0.2.7", 1), None, 0.0)
    assert build().extract(seen) is Verdict.NO_MATCH


def test_request_without_token_is_no_match() -> None:
    assert build().extract(seen_of({"Accept": "*/*"})) is Verdict.NO_MATCH
    assert build(cookie="tok").extract(seen_of({"Cookie": "other=1"})) is Verdict.NO_MATCH


def test_raw_token_appears_nowhere_in_the_result() -> None:
    token = jwt({"sub": "alice"})
    for ex in (build(), build(hash_value=False)):
        result = ex.extract(bearer(token))
        assert isinstance(result, Identifier)
        for part in token.split("."):
            assert part not in repr(result)
            assert part not in repr(ex)


# ---------------------------------------------------------------- malformed tokens

SIG = b64url(b"\x01" * 32)
HEAD = b64url(b'{"alg":"HS256"}')


GOOD = b64url(b'{"sub": "a"}')


def dots(*segments: str) -> str:
    return ".".join(segments)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(dots(HEAD, GOOD[:-1] + "*", SIG), id="bad-base64-char"),
        pytest.param(dots(HEAD, b64url(b"{}") + "==", SIG), id="padding"),
        pytest.param(dots(HEAD, "AAAAA", SIG), id="impossible-length"),
        pytest.param(dots(HEAD, b64url(b"not json"), SIG), id="non-json"),
        pytest.param(dots(HEAD, b64url(b'{"sub": "a"'), SIG), id="truncated-json"),
        pytest.param(dots(HEAD, b64url(b'["sub", "a"]'), SIG), id="array-payload"),
        pytest.param(dots(HEAD, b64url(b'"a"'), SIG), id="string-payload"),
        pytest.param(dots(HEAD, b64url(b'{"sub": "\xff"}'), SIG), id="not-utf8"),
        pytest.param(dots(b64url(b"[1]"), GOOD, SIG), id="array-header"),
        pytest.param(dots(b64url(b"x"), GOOD, SIG), id="non-json-header"),
        pytest.param(dots(HEAD, GOOD), id="two-segments"),
        pytest.param(dots(HEAD, GOOD, SIG, SIG), id="four-segments"),
        pytest.param(dots(HEAD, GOOD, "si*g"), id="bad-signature-chars"),
        pytest.param(dots("", GOOD, SIG), id="empty-header"),
        pytest.param(dots(HEAD, "", SIG), id="empty-payload"),
        pytest.param("....", id="dots"),
        pytest.param(dots(HEAD, b64url(b'{"sub": 1' + b"1" * 5000 + b"}"), SIG), id="huge-int"),
    ],
)
def test_malformed_token_is_no_match(token: str) -> None:
    assert build().extract(bearer(token)) is Verdict.NO_MATCH
    assert build(header="X-Token").extract(seen_of({"X-Token": token})) is Verdict.NO_MATCH


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "alice"},
        {"sub": None},
        {"sub": ""},
        {"sub": True},
        {"sub": 1.5},
        {"sub": ["alice"]},
        {"sub": {"id": "alice"}},
        {"sub": "line\r\nbreak"},
        {"sub": "x" * (MAX_CLAIM_CHARS + 1)},
        {"sub": int("9" * (MAX_CLAIM_CHARS + 1))},
    ],
    ids=[
        "missing",
        "null",
        "empty",
        "bool",
        "float",
        "list",
        "object",
        "control",
        "too-long",
        "too-long-int",
    ],
)
def test_missing_or_unusable_claim_is_no_match(payload: dict[str, Any]) -> None:
    assert build().extract(bearer(jwt(payload))) is Verdict.NO_MATCH


def test_longest_accepted_claims() -> None:
    sub = "x" * MAX_CLAIM_CHARS
    assert build(hash_value=False).extract(bearer(jwt({"sub": sub}))) == Identifier(
        "jwt-subject", sub, "hash"
    )
    number = "9" * MAX_CLAIM_CHARS
    assert build(hash_value=False).extract(bearer(jwt({"sub": int(number)}))) == Identifier(
        "jwt-subject", number, "hash"
    )


def test_lone_surrogate_in_claim_is_no_match() -> None:
    token = jwt({}, raw_payload=b'{"sub": "a\\ud800b"}')
    assert build().extract(bearer(token)) is Verdict.NO_MATCH


def _token_of_size(size: int) -> str:
    """A token for sub="padded" of exactly ``size`` characters (the signature fills up)."""
    start = f"{HEAD}.{b64url(json.dumps({'sub': 'padded'}).encode())}."
    assert len(start) < size
    return start + "s" * (size - len(start))


def test_token_size_bound_is_exact() -> None:
    ex = build(hash_value=False)
    at_bound = _token_of_size(MAX_TOKEN_CHARS)
    assert ex.extract(bearer(at_bound)) == Identifier("jwt-subject", "padded", "hash")
    over = _token_of_size(MAX_TOKEN_CHARS + 1)
    assert ex.extract(bearer(over)) is Verdict.NO_MATCH


def test_huge_token_is_no_match() -> None:
    token = jwt({"sub": "alice", "blob": "z" * 20000})
    assert len(token) > MAX_TOKEN_CHARS
    assert build().extract(bearer(token)) is Verdict.NO_MATCH
    assert build(cookie="t").extract(seen_of({"Cookie": f"t={token}"})) is Verdict.NO_MATCH


def _nested(depth: int) -> bytes:
    return b'{"sub": "deep", "n": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_nesting_up_to_the_bound_is_decoded_deeper_is_no_match() -> None:
    ex = build(hash_value=False)
    ok = jwt({}, raw_payload=_nested(MAX_DEPTH))
    assert ex.extract(bearer(ok)) == Identifier("jwt-subject", "deep", "hash")
    too_deep = jwt({}, raw_payload=_nested(MAX_DEPTH + 1))
    assert ex.extract(bearer(too_deep)) is Verdict.NO_MATCH
    # far deeper than the interpreter's recursion limit, still inside the size bound
    very_deep = jwt({}, raw_payload=b"[" * 5000 + b"]" * 5000)
    assert len(very_deep) > 4 * 1000
    assert ex.extract(bearer(very_deep)) is Verdict.NO_MATCH


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    payload = {"sub": "brackets", "note": "[{" * 100, "q": 'say "[[["'}
    ex = build(hash_value=False)
    assert ex.extract(bearer(jwt(payload))) == Identifier("jwt-subject", "brackets", "hash")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=200))
def test_any_bearer_text_never_raises(text: str) -> None:
    result = build().extract(bearer(text))
    assert result is Verdict.NO_MATCH or isinstance(result, Identifier)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=100))
def test_any_decoded_segments_never_raise(payload: bytes, header: bytes) -> None:
    token = f"{b64url(header)}.{b64url(payload)}.{SIG}"
    result = build().extract(bearer(token))
    assert result is Verdict.NO_MATCH or isinstance(result, Identifier)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(min_size=1, max_size=60).filter(str.isprintable),
        st.integers(min_value=-(10**30), max_value=10**30),
    )
)
def test_any_usable_subject_round_trips(sub: str | int) -> None:
    token = jwt({"sub": sub, "iat": 1700000000})
    assert build(hash_value=False).extract(bearer(token)) == Identifier(
        "jwt-subject", str(sub), "hash"
    )
    assert build().extract(bearer(token)) == Identifier("jwt-subject", digest(str(sub)), "hash")


# ---------------------------------------------------------------- options


def test_defaults() -> None:
    ex = make_jwt_subject({}, CTX)
    assert (ex.name, ex.claim, ex.cookie, ex.header, ex.hash_value) == (
        "jwt-subject",
        "sub",
        None,
        "Authorization",
        True,
    )


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"claims": "sub"}, "claims"),
        ({"claim": ""}, "claim"),
        ({"claim": 3}, "claim"),
        ({"claim": "c" * 257}, "claim"),
        ({"cookie": ""}, "cookie"),
        ({"cookie": "a b"}, "cookie"),
        ({"cookie": "a;b"}, "cookie"),
        ({"cookie": ["tok"]}, "cookie"),
        ({"header": "X Token"}, "header"),
        ({"header": "X-Token:"}, "header"),
        ({"header": 1}, "header"),
        ({"header": "Cookie"}, "header"),
        ({"cookie": "tok", "header": "X-Token"}, "header"),
        ({"hash_value": "yes"}, "hash_value"),
        ({"hash_value": 1}, "hash_value"),
    ],
)
def test_bad_option_is_reported_by_key(options: dict[str, Any], key: str) -> None:
    lines = option_errors(options)
    assert len(lines) == 1
    assert lines[0].startswith(f"option '{key}': ")


def test_every_problem_is_reported_at_once() -> None:
    lines = option_errors({"claim": "", "hash_value": "no", "colour": "red", "cookie": 5})
    keys = sorted(line.split("'")[1] for line in lines)
    assert keys == ["claim", "colour", "cookie", "hash_value"]


def test_options_that_are_not_a_table_are_an_error() -> None:
    with pytest.raises(ExtractorError):
        make_jwt_subject(["claim"], CTX)  # type: ignore[arg-type]


def test_build_chain_maps_option_problems_to_config_keys() -> None:
    factories = {"jwt-subject": registry.FactoryInfo("jwt-subject", make_jwt_subject, None)}
    with pytest.raises(ConfigError) as info:
        registry.build_chain(
            [("jwt-subject", {"cookie": "tok", "header": "X-T", "hash_value": 0})],
            CTX,
            key_prefix="services[0].extractors",
            factories=factories,
        )
    assert sorted(key for key, _ in info.value.errors) == [
        "services[0].extractors[0].hash_value",
        "services[0].extractors[0].header",
    ]


# ---------------------------------------------------------------- installed as a plugin


@pytest.fixture
def fresh_registry() -> Any:
    registry.refresh()
    yield registry
    registry.refresh()


def test_entry_point_lists_the_kind_with_its_distribution(fresh_registry: Any) -> None:
    info = registry.available().get("jwt-subject")
    assert info is not None, (
        "jwt-subject is not installed: pip install -e plugins/lb-jwt-subject; "
        f"load errors: {registry.load_errors()}"
    )
    assert info.distribution == "lb-jwt-subject"
    assert info.factory is make_jwt_subject
    assert "jwt-subject" not in registry.load_errors()


def test_build_chain_builds_it_from_the_installed_entry_point(fresh_registry: Any) -> None:
    chain = registry.build_chain(
        [("home-cookie", {}), ("jwt-subject", {"cookie": "id_token", "hash_value": False})], CTX
    )
    assert [ex.name for ex in chain] == ["home-cookie", "jwt-subject"]
    seen = seen_of({"Cookie": f"id_token={jwt({'sub': 'dana'})}"})
    assert chain[1].extract(seen) == Identifier("jwt-subject", "dana", "hash")
    with pytest.raises(ConfigError) as info:
        registry.build_chain([("jwt-subject", {"claim": ""})], CTX)
    assert [key for key, _ in info.value.errors] == ["extractors[0].claim"]


def test_lb_extractors_cli_lists_it() -> None:
    out = subprocess.run(
        [str(LB), "extractors"], capture_output=True, text=True, timeout=60, check=True
    )
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["jwt-subject", "lb-jwt-subject"] in rows, out.stdout


FARM = """\
[farm]
name = "jwt"
secret = "test-only-secret-0123456789-0123456789-0123456789"
link_security = "plaintext"

[[services]]
name = "web"
protocol = "http"
extractors = [ {{ kind = "home-cookie" }}, {{ kind = "jwt-subject", {options} }} ]

[[nodes]]
name = "a"
forward = "127.0.0.1:7101"
listen = {{ web = "127.0.0.1:8101" }}
apps = {{ web = "127.0.0.1:9101" }}
"""


def test_farm_file_enables_it_and_check_config_validates_its_options(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(FARM.format(options='cookie = "id_token", claim = "uid"'))
    ok = subprocess.run(
        [str(LB), "check-config", str(good)], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(FARM.format(options='cookie = "id token", hash = true'))
    failed = subprocess.run(
        [str(LB), "check-config", str(bad)], capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 1
    assert "services[0].extractors[1].cookie:" in failed.stderr
    assert "services[0].extractors[1].hash:" in failed.stderr
