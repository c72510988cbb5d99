"""Tests for lb.extract.chain.run_chain: chain order, need-more, and failure containment."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import ExtractorAnswerError, ExtractorError
from lb.extract import Identifier, Seen, Verdict, run_chain

SEEN = Seen(
    data=b"GET / HTTP/1.1\r\n\r\n", eof=False, client=("192.0.2.7", 40000), http=None, now=0.0
)
SEEN_EOF = Seen(data=SEEN.data, eof=True, client=SEEN.client, http=None, now=0.0)


@dataclass
class Fixed:
    """An extractor with a scripted answer: a result, or an exception to raise."""

    answer: object
    name: str = "fixed"
    calls: list[Seen] = field(default_factory=list)

    def extract(self, seen: Seen) -> Identifier | Verdict:
        self.calls.append(seen)
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer  # type: ignore[return-value]


class Errors:
    def __init__(self) -> None:
        self.seen: list[tuple[object, BaseException]] = []

    def __call__(self, extractor: object, exc: BaseException) -> None:
        self.seen.append((extractor, exc))


def ident(n: int) -> Identifier:
    return Identifier("uri", f"/{n}", "hash")


def test_empty_chain_is_no_match() -> None:
    assert run_chain([], SEEN, Errors()) is Verdict.NO_MATCH


def test_first_identifier_in_chain_order_wins() -> None:
    second = Fixed(ident(2))
    chain = [Fixed(Verdict.NO_MATCH), Fixed(ident(1)), second]
    assert run_chain(chain, SEEN, Errors()) == ident(1)
    assert second.calls == []


def test_need_more_before_a_match_makes_the_chain_need_more() -> None:
    later = Fixed(ident(2))
    assert run_chain([Fixed(Verdict.NEED_MORE), later], SEEN, Errors()) is Verdict.NEED_MORE
    assert later.calls == []


def test_a_match_before_need_more_wins() -> None:
    chain = [Fixed(ident(1)), Fixed(Verdict.NEED_MORE)]
    assert run_chain(chain, SEEN, Errors()) == ident(1)


def test_need_more_at_eof_counts_as_no_match() -> None:
    chain = [Fixed(Verdict.NEED_MORE), Fixed(ident(2))]
    assert run_chain(chain, SEEN_EOF, Errors()) == ident(2)
    assert run_chain([Fixed(Verdict.NEED_MORE)], SEEN_EOF, Errors()) is Verdict.NO_MATCH


def test_every_extractor_gets_the_same_seen() -> None:
    first, second = Fixed(Verdict.NO_MATCH), Fixed(Verdict.NO_MATCH)
    run_chain([first, second], SEEN, Errors())
    assert first.calls == [SEEN]
    assert second.calls == [SEEN]


def test_a_raising_extractor_is_reported_and_counts_as_no_match() -> None:
    boom = RuntimeError("plugin bug")
    failing = Fixed(boom, name="broken")
    errors = Errors()
    assert run_chain([failing, Fixed(ident(3))], SEEN, errors) == ident(3)
    assert errors.seen == [(failing, boom)]


def test_a_wrong_result_type_is_reported_as_extractor_error() -> None:
    wrong = Fixed("uri:/x", name="sloppy")
    errors = Errors()
    assert run_chain([wrong], SEEN, errors) is Verdict.NO_MATCH
    assert len(errors.seen) == 1
    reported, exc = errors.seen[0]
    assert reported is wrong
    assert isinstance(exc, ExtractorError)
    assert "sloppy" in str(exc)


@pytest.mark.parametrize("placement", ["hsah", "", "Hash", "consistent"])
def test_an_unknown_placement_is_reported_and_counts_as_no_match(placement: str) -> None:
    # the router placed such an identifier as a new session, silently, on every connection
    typo = Fixed(Identifier("tenant", "acme", placement), name="tenant")
    errors = Errors()
    assert run_chain([typo, Fixed(ident(4))], SEEN, errors) == ident(4)
    [(reported, exc)] = errors.seen
    assert reported is typo
    assert isinstance(exc, ExtractorAnswerError)
    assert str(exc) == (
        "extractor 'tenant' returned an Identifier whose placement is not one of: "
        "hash, home-cookie, directory"
    )


def test_every_placement_the_router_knows_passes() -> None:
    for placement in ("hash", "home-cookie", "directory"):
        found = Identifier("k", "v", placement)
        errors = Errors()
        assert run_chain([Fixed(found)], SEEN, errors) == found
        assert errors.seen == []


def test_base_exceptions_are_not_swallowed() -> None:
    with pytest.raises(KeyboardInterrupt):
        run_chain([Fixed(KeyboardInterrupt())], SEEN, Errors())


OUTCOMES = ["match", "no", "need", "raise", "wrong"]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(OUTCOMES), max_size=6), st.booleans())
def test_chain_follows_the_rules(outcomes: list[str], eof: bool) -> None:
    answers: dict[str, object] = {
        "no": Verdict.NO_MATCH,
        "need": Verdict.NEED_MORE,
        "raise": ValueError("x"),
        "wrong": 42,
    }
    chain = [
        Fixed(ident(i) if kind == "match" else answers[kind]) for i, kind in enumerate(outcomes)
    ]
    seen = SEEN_EOF if eof else SEEN
    errors = Errors()
    result = run_chain(chain, seen, errors)

    expected: Identifier | Verdict = Verdict.NO_MATCH
    stopped = len(outcomes)
    for i, kind in enumerate(outcomes):
        if kind == "match":
            expected, stopped = ident(i), i + 1
            break
        if kind == "need" and not eof:
            expected, stopped = Verdict.NEED_MORE, i + 1
            break
    assert result == expected
    assert [ex for ex, _ in errors.seen] == [
        chain[i] for i, kind in enumerate(outcomes[:stopped]) if kind in ("raise", "wrong")
    ]
    assert all(len(ex.calls) == (1 if i < stopped else 0) for i, ex in enumerate(chain))
