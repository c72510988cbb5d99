"""TLS extractors for passthrough listeners: session id, ticket, PSK identity, SNI.

Each reads the ClientHello at the start of the client's bytes with
``lb.wire.tls.parse_client_hello`` (registered in the ``lb.extractors`` group as
``tls-session-id``, ``tls-ticket``, ``tls-psk`` and ``sni``). They are pure, keep
no state between calls and do work bounded by the bytes seen. They take no
options. What each identifier means, and why a TLS 1.3 session id cannot home a
session: docs/tls.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lb.errors import ExtractorError, TlsError
from lb.extract.api import ExtractorContext, Identifier, Seen, Verdict
from lb.wire.tls import DEFAULT_MAX_BYTES, ClientHello, parse_client_hello

__all__ = [
    "PLACEMENT_DIRECTORY",
    "PskExtractor",
    "SessionIdExtractor",
    "SniExtractor",
    "TicketExtractor",
    "digest",
    "make_sni",
    "make_tls_psk",
    "make_tls_session_id",
    "make_tls_ticket",
]

PLACEMENT_DIRECTORY = "directory"
"""Placement by a learned identifier -> home entry (TLS 1.2 session ids and tickets)."""


def digest(value: bytes) -> str:
    """The identifier value of opaque TLS bytes: BLAKE2b-128, lower-case hex."""
    return hashlib.blake2b(value, digest_size=16).hexdigest()


def _client_hello(seen: Seen) -> ClientHello | Verdict:
    """The ClientHello of ``seen``, NEED_MORE while incomplete, NO_MATCH if it is not TLS."""
    try:
        hello = parse_client_hello(seen.data, DEFAULT_MAX_BYTES)
    except TlsError:
        return Verdict.NO_MATCH
    if hello is None:
        return Verdict.NO_MATCH if seen.eof else Verdict.NEED_MORE
    return hello


@dataclass(frozen=True, slots=True)
class SessionIdExtractor:
    """The ClientHello's session id (hex) for the directory; no match when empty.

    A client that offers TLS 1.3 sends a random 32-byte id on every connection
    unless it resumes a TLS 1.2 session; the two cannot be told apart, so the id
    is returned either way and a random one simply misses in the directory.
    """

    name: str = "tls-session-id"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        hello = _client_hello(seen)
        if isinstance(hello, Verdict):
            return hello
        if not hello.session_id:
            return Verdict.NO_MATCH
        return Identifier("tls-session-id", hello.session_id.hex(), PLACEMENT_DIRECTORY)


@dataclass(frozen=True, slots=True)
class TicketExtractor:
    """A TLS 1.2 session ticket (extension 35, non-empty), hashed, for the directory."""

    name: str = "tls-ticket"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        hello = _client_hello(seen)
        if isinstance(hello, Verdict):
            return hello
        if not hello.session_ticket:
            return Verdict.NO_MATCH
        return Identifier("tls-ticket", digest(hello.session_ticket), PLACEMENT_DIRECTORY)


@dataclass(frozen=True, slots=True)
class PskExtractor:
    """The first TLS 1.3 PSK identity (extension 41), hashed, placed by consistent hash."""

    name: str = "tls-psk"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        hello = _client_hello(seen)
        if isinstance(hello, Verdict):
            return hello
        if not hello.psk_identities:
            return Verdict.NO_MATCH
        return Identifier("tls-psk", digest(hello.psk_identities[0]), "hash")


@dataclass(frozen=True, slots=True)
class SniExtractor:
    """The server name (lower-cased host_name), placed by consistent hash."""

    name: str = "sni"

    def extract(self, seen: Seen) -> Identifier | Verdict:
        hello = _client_hello(seen)
        if isinstance(hello, Verdict):
            return hello
        if hello.sni is None:
            return Verdict.NO_MATCH
        return Identifier("sni", hello.sni, "hash")


def _no_options(options: Mapping[str, Any]) -> None:
    if not isinstance(options, Mapping):
        raise ExtractorError(f"options must be a table, not {type(options).__name__}")
    problems = [f"option '{key}': unknown option (known options: none)" for key in options]
    if problems:
        raise ExtractorError("\n".join(problems))


def make_tls_session_id(options: Mapping[str, Any], ctx: ExtractorContext) -> SessionIdExtractor:
    """Kind ``tls-session-id``: no options."""
    _no_options(options)
    return SessionIdExtractor()


def make_tls_ticket(options: Mapping[str, Any], ctx: ExtractorContext) -> TicketExtractor:
    """Kind ``tls-ticket``: no options."""
    _no_options(options)
    return TicketExtractor()


def make_tls_psk(options: Mapping[str, Any], ctx: ExtractorContext) -> PskExtractor:
    """Kind ``tls-psk``: no options."""
    _no_options(options)
    return PskExtractor()


def make_sni(options: Mapping[str, Any], ctx: ExtractorContext) -> SniExtractor:
    """Kind ``sni``: no options."""
    _no_options(options)
    return SniExtractor()
