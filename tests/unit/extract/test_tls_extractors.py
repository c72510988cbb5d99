"""Tests for lb.extract.tls: tls-session-id, tls-ticket, tls-psk and sni on real ClientHellos."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from lb.errors import ConfigError, ExtractorError
from lb.extract import ExtractorContext, Identifier, Seen, Verdict, build_chain, run_chain
from lb.extract.registry import available
from lb.extract.tls import make_sni, make_tls_psk, make_tls_session_id, make_tls_ticket
from tests.fixtures.tls.sessions import load, session_id, ticket

CTX = ExtractorContext()
CLIENT = ("198.51.100.7", 40000)
FACTORIES = {
    "tls-session-id": make_tls_session_id,
    "tls-ticket": make_tls_ticket,
    "tls-psk": make_tls_psk,
    "sni": make_sni,
}


def seen(data: bytes, eof: bool = False) -> Seen:
    return Seen(data=data, eof=eof, client=CLIENT, http=None, now=5.0)


def blake2b_128(value: bytes) -> str:
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def extract(kind: str, name: str) -> Identifier | Verdict:
    return FACTORIES[kind]({}, CTX).extract(seen(load(name)))


# -- identifiers from real ClientHellos ---------------------------------------------------


def test_sni_is_hashed_by_name() -> None:
    assert extract("sni", "ch-chromium") == Identifier("sni", "chromium.example.test", "hash")
    assert extract("sni", "ch-curl-name") == Identifier("sni", "curl.example.test", "hash")


def test_sni_absent_is_no_match() -> None:
    assert extract("sni", "ch-curl-ip") is Verdict.NO_MATCH  # curl sends no SNI for an IP


def test_tls12_session_id_goes_to_the_directory() -> None:
    expected = session_id("tls12-sid").hex()
    assert extract("tls-session-id", "tls12-sid-resume-c2s") == Identifier(
        "tls-session-id", expected, "directory"
    )
    assert expected == expected.lower() and len(expected) == 64


def test_empty_session_id_is_no_match() -> None:
    assert extract("tls-session-id", "tls12-sid-full-c2s") is Verdict.NO_MATCH
    assert extract("tls-session-id", "ch-openssl-tls12") is Verdict.NO_MATCH


def test_session_id_of_a_tls13_client_is_still_returned() -> None:
    # A random compatibility value: returned anyway, it misses in the directory.
    result = extract("tls-session-id", "ch-chromium")
    assert isinstance(result, Identifier)
    assert result.placement == "directory" and len(result.value) == 64


def test_tls12_ticket_is_hashed_for_the_directory() -> None:
    assert extract("tls-ticket", "tls12-ticket-resume-c2s") == Identifier(
        "tls-ticket", blake2b_128(ticket("tls12-ticket")), "directory"
    )


@pytest.mark.parametrize("name", ["tls12-ticket-full-c2s", "ch-openssl-tls13", "ch-curl-ip"])
def test_empty_or_absent_ticket_is_no_match(name: str) -> None:
    assert extract("tls-ticket", name) is Verdict.NO_MATCH


def test_tls13_psk_identity_is_hashed() -> None:
    assert extract("tls-psk", "tls13-resume-c2s") == Identifier(
        "tls-psk", blake2b_128(ticket("tls13")), "hash"
    )


@pytest.mark.parametrize("name", ["tls13-full-c2s", "ch-chromium", "tls12-ticket-resume-c2s"])
def test_no_psk_is_no_match(name: str) -> None:
    assert extract("tls-psk", name) is Verdict.NO_MATCH


# -- need more, eof, not TLS ----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_partial_hello_needs_more_until_eof(kind: str) -> None:
    extractor = FACTORIES[kind]({}, CTX)
    data = load("tls13-resume-c2s")
    for cut in (0, 3, 5, 200, 535):
        assert extractor.extract(seen(data[:cut])) is Verdict.NEED_MORE
        assert extractor.extract(seen(data[:cut], eof=True)) is Verdict.NO_MATCH


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_not_tls_is_no_match(kind: str) -> None:
    extractor = FACTORIES[kind]({}, CTX)
    assert extractor.extract(seen(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) is Verdict.NO_MATCH
    assert extractor.extract(seen(b"\x16\x03\x01\x00\x00")) is Verdict.NO_MATCH


def test_a_multi_record_hello_is_read() -> None:
    assert extract("sni", "ch-openssl-split") == Identifier("sni", "split.example.test", "hash")


# -- options, registry, chains -----------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_unknown_option_is_refused(kind: str) -> None:
    with pytest.raises(ExtractorError) as info:
        FACTORIES[kind]({"x": 1, "y": 2}, CTX)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("option 'x': unknown option")
    assert lines[1].startswith("option 'y': unknown option")


def test_options_must_be_a_table() -> None:
    bad: Any = ["x"]
    with pytest.raises(ExtractorError, match="table"):
        make_sni(bad, CTX)


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_registered_as_entry_points(kind: str) -> None:
    info = available()[kind]
    assert info.factory is FACTORIES[kind]
    assert info.factory({}, CTX).name == kind


def test_chain_built_from_config_prefers_the_ticket() -> None:
    chain = build_chain([("tls-ticket", {}), ("tls-session-id", {}), ("sni", {})], CTX)
    errors: list[BaseException] = []

    def on_error(_extractor: object, exc: BaseException) -> None:
        errors.append(exc)

    resume = seen(load("tls12-ticket-resume-c2s"))
    assert run_chain(chain, resume, on_error) == Identifier(
        "tls-ticket", blake2b_128(ticket("tls12-ticket")), "directory"
    )
    by_id = seen(load("tls12-sid-resume-c2s"))
    assert run_chain(chain, by_id, on_error) == Identifier(
        "tls-session-id", session_id("tls12-sid").hex(), "directory"
    )
    first = seen(load("tls12-sid-full-c2s"))
    assert run_chain(chain, first, on_error) == Identifier("sni", "sid.example.test", "hash")
    assert run_chain(chain, seen(load("tls12-sid-full-c2s")[:100]), on_error) is Verdict.NEED_MORE
    assert errors == []


def test_bad_option_in_config_is_keyed() -> None:
    with pytest.raises(ConfigError) as info:
        build_chain([("sni", {}), ("tls-psk", {"salt": "x"})], CTX)
    assert info.value.errors == [("extractors[1].salt", "unknown option (known options: none)")]
