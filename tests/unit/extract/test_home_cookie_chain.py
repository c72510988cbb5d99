"""A bad home cookie is no identifier: the extractors after ``home-cookie`` still run.

The chain is built through the registry with the farm's real keyring in the
ExtractorContext, run with run_chain, and routed with a real Router, as the node does.
"""

from __future__ import annotations

import pytest

from lb.extract import ExtractorContext, Identifier, Seen, Verdict, build_chain, run_chain
from lb.extract.builtin import make_home_cookie
from lb.routing.cookie import CookieKeyring
from lb.routing.route import Router
from lb.routing.view import FarmView, NodeInfo
from lb.wire.http import parse_request_head

FARM = "prod"
SECRET = b"a farm secret of some length"
NOW = 1_700_000_000.0
CLIENT = ("198.51.100.9", 51234)
NODES = ("node-a", "node-b", "node-c")

KEYRING = CookieKeyring(FARM, SECRET)
CTX = ExtractorContext(home_cookie_keyring=KEYRING)
SPECS = [("home-cookie", {}), ("uri-path", {"segments": 2})]


def seen_with(cookie: str | None, target: str = "/cart/1/2", now: float = NOW) -> Seen:
    header = "" if cookie is None else f"Cookie: lbhome={cookie}\r\n"
    data = f"GET {target} HTTP/1.1\r\nHost: shop\r\n{header}\r\n".encode("latin-1")
    head = parse_request_head(data, 65536)
    assert head is not None
    return Seen(data=data, eof=False, client=CLIENT, http=head, now=now)


def view() -> FarmView:
    infos = {name: NodeInfo(name, "127.0.0.1", 1) for name in NODES}
    return FarmView("node-a", infos, frozenset(NODES), dict.fromkeys(NODES, 0.0))


def no_errors(extractor: object, exc: BaseException) -> None:
    raise AssertionError(f"{extractor!r} failed: {exc!r}")


def tampered(value: str) -> str:
    """The signed value with one MAC character changed."""
    last = value[-1]
    return value[:-1] + ("A" if last != "A" else "B")


VALID = KEYRING.sign("node-c", int(NOW) + 3600)
BAD_COOKIES = {
    "junk": "junk",
    "forged": f"1.{KEYRING.key_id}.node-c.{int(NOW) + 3600}.AAAAAAAAAAAAAAAAAAAAAA",
    "expired": KEYRING.sign("node-c", int(NOW) - 1),
    "tampered": tampered(VALID),
    "other-node": VALID.replace("node-c", "node-b"),
    "other-farm": CookieKeyring("staging", SECRET).sign("node-c", int(NOW) + 3600),
    "other-secret": CookieKeyring(FARM, b"another secret").sign("node-c", int(NOW) + 3600),
}


@pytest.mark.parametrize("kind", sorted(BAD_COOKIES))
def test_a_bad_home_cookie_lets_the_next_extractor_answer(kind: str) -> None:
    chain = build_chain(SPECS, CTX)
    result = run_chain(chain, seen_with(BAD_COOKIES[kind]), no_errors)
    assert result == Identifier("uri", "/cart/1", "hash")


@pytest.mark.parametrize("kind", sorted(BAD_COOKIES))
def test_a_bad_home_cookie_is_routed_by_the_uri_rule_not_by_load(kind: str) -> None:
    router = Router(KEYRING)
    chain = build_chain(SPECS, CTX)
    result = run_chain(chain, seen_with(BAD_COOKIES[kind]), no_errors)
    assert isinstance(result, Identifier)
    farm = view()
    decision = router.route(result, farm, NOW, salt=7)
    assert decision.reason == "hash"
    assert not decision.new_session
    assert decision.home == router.table_for(farm).lookup("uri:/cart/1")


def test_a_valid_home_cookie_still_wins_over_the_uri_rule() -> None:
    chain = build_chain(SPECS, CTX)
    result = run_chain(chain, seen_with(VALID), no_errors)
    assert result == Identifier("home-cookie", VALID, "home-cookie")
    decision = Router(KEYRING).route(result, view(), NOW, salt=7)
    assert (decision.home, decision.reason) == ("node-c", "home-cookie")


def test_a_cookie_signed_with_a_previous_secret_still_matches() -> None:
    rotated = CookieKeyring(FARM, b"the new secret", previous=[SECRET])
    extractor = make_home_cookie({}, ExtractorContext(home_cookie_keyring=rotated))
    assert extractor.extract(seen_with(VALID)) == Identifier("home-cookie", VALID, "home-cookie")


def test_the_cookie_expires_at_the_time_of_the_seen() -> None:
    extractor = make_home_cookie({}, CTX)
    value = KEYRING.sign("node-c", int(NOW) + 10)
    assert isinstance(extractor.extract(seen_with(value, now=NOW + 9)), Identifier)
    assert extractor.extract(seen_with(value, now=NOW + 10)) is Verdict.NO_MATCH


def test_a_bad_cookie_alone_is_no_match() -> None:
    chain = build_chain([("home-cookie", {})], CTX)
    assert run_chain(chain, seen_with("junk"), no_errors) is Verdict.NO_MATCH


def test_without_a_keyring_the_extractor_leaves_verification_to_routing() -> None:
    """Config validation builds chains without the farm's keys: no verification there."""
    extractor = make_home_cookie({}, ExtractorContext())
    assert extractor.extract(seen_with("junk")) == Identifier("home-cookie", "junk", "home-cookie")


class CountingKeyring(CookieKeyring):
    """A real keyring that counts the HMACs it computes."""

    macs = 0

    def _mac(self, *args: object) -> str:
        self.macs += 1
        return super()._mac(*args)  # type: ignore[arg-type]


def test_the_hot_path_computes_one_hmac_per_cookie_value() -> None:
    """The extractor verifies with HMAC once; the router's check and later requests of
    the session are answered by the keyring's verified-cookie cache."""
    keyring = CountingKeyring(FARM, SECRET)
    value = keyring.sign("node-b", int(NOW) + 3600)
    keyring.macs = 0
    extractor = make_home_cookie({}, ExtractorContext(home_cookie_keyring=keyring))
    router = Router(keyring)
    farm = view()
    for request in range(3):
        result = extractor.extract(seen_with(value, now=NOW + request))
        assert result == Identifier("home-cookie", value, "home-cookie")
        assert router.route(result, farm, NOW + request, salt=1).home == "node-b"
    assert keyring.macs == 1


def test_a_remembered_cookie_is_still_verified_on_every_request() -> None:
    extractor = make_home_cookie({}, CTX)
    value = KEYRING.sign("node-c", int(NOW) + 10)
    first = extractor.extract(seen_with(value))
    assert first == Identifier("home-cookie", value, "home-cookie")
    assert extractor.extract(seen_with(value, now=NOW + 9)) is first  # one object per value
    assert extractor.extract(seen_with(value, now=NOW + 10)) is Verdict.NO_MATCH  # expired
    assert extractor.extract(seen_with(tampered(value))) is Verdict.NO_MATCH


def test_remembered_identifiers_are_bounded() -> None:
    from lb.extract.builtin import MAX_REMEMBERED_COOKIES

    extractor = make_home_cookie({}, ExtractorContext())  # no keyring: every value answers
    for i in range(MAX_REMEMBERED_COOKIES + 10):
        value = f"v{i}"
        assert extractor.extract(seen_with(value)) == Identifier(
            "home-cookie", value, "home-cookie"
        )
    assert len(extractor.identifiers) <= MAX_REMEMBERED_COOKIES
