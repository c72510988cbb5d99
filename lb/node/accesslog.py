"""The access log: one line per HTTP request (and per tcp connection), through structlog.

The per-request HTTP proxy calls `AccessLog.record` once a request's response
is done (or failed). The line is the event "access" with a fixed set of
fields (see `access_fields`; a tcp or tls-passthrough connection's, written by the
entry when it closes, `connection_fields`); in json mode it is one JSON object per line on
the node's log stream, in console mode one console line.

Costs: turned off, or not drawn by the sample, `record` returns before
building anything; turned on, a line costs one dict and one structlog call
(bench/micro_accesslog.py measures it).

What it must not do: write an identifier's value (only its kind: which
extractor matched) or a query string (a query may carry tokens: the path is
logged up to its "?"), let a client-sent path grow a line without bound (cut
at PATH_LIMIT characters, control characters escaped so a console line stays
one line), read sockets, parse HTTP, or read the clock (timings are passed in).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from lb.config import FarmConfig
from lb.logs import access_logger
from lb.wire.frames import ResetReason

__all__ = [
    "PATH_LIMIT",
    "AccessLog",
    "access_fields",
    "clean_path",
    "connection_fields",
    "no_answer_text",
    "tls_fields",
]

PATH_LIMIT = 256  # characters of the path kept (the query is never kept)
METHOD_LIMIT = 32


def _text(value: str | bytes, limit: int) -> str:
    if not isinstance(value, str):
        value = bytes(value).decode("latin-1")  # every byte maps to one character
    return value[:limit]


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    # a control character (a console line must stay one line): escape it
    return text.encode("unicode_escape").decode("ascii")


def clean_path(target: str | bytes) -> str:
    """The request target as logged: up to its "?" (the query is dropped), at most
    PATH_LIMIT characters, control characters escaped."""
    if not isinstance(target, str):
        target = bytes(target).decode("latin-1")
    q = target.find("?")
    if q >= 0:
        target = target[:q]
    return _printable(target[:PATH_LIMIT])


def _secs(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def no_answer_text(what: str, reason: int) -> str:
    """The error text for a request or connection no upstream served: `what` and the
    RESET reason (lb.wire.frames.ResetReason, lower case), or the upstream's close (0)."""
    if reason == 0:
        return f"{what}: the upstream closed"
    try:
        return f"{what}: {ResetReason(reason).name.lower()}"
    except ValueError:
        return f"{what}: reset reason {reason}"


SNI_LIMIT = 255  # characters of a client-sent server name kept (a DNS name's most)


def tls_fields(version: str | None, cipher: str | None, sni: str | None) -> dict[str, str | None]:
    """The TLS fields of a tls-terminate connection's access lines (pure): the protocol
    version ("TLSv1.3"), the cipher suite as OpenSSL names it, and the server name the
    client sent (SNI: cut at SNI_LIMIT characters, control characters escaped), None
    for one it did not send (nginx's $ssl_protocol, $ssl_cipher, $ssl_server_name)."""
    return {
        "tls_version": version,
        "tls_cipher": cipher,
        "tls_sni": None if sni is None else _printable(sni[:SNI_LIMIT]),
    }


def connection_fields(
    service: str,
    entry: str,
    client: str,
    client_port: int,
    home: str | None,
    error: str | None,
    bytes_in: int,
    bytes_out: int,
    t_home: float | None,
    t_total: float,
    id_kind: str | None,
    new_session: bool,
) -> dict[str, Any]:
    """The fields of one access line of a tcp or tls-passthrough connection (pure): as
    a request's (access_fields) without method, path, status, t_head and t_first_byte;
    `t_home` is when its splice to the home started, `bytes_in` / `bytes_out` what the
    client sent and was sent over the whole connection."""
    return {
        "service": service,
        "entry": entry,
        "client": client,
        "client_port": client_port,
        "home": home,
        "error": error,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "t_home": _secs(t_home),
        "t_total": _secs(t_total),
        "id_kind": id_kind,
        "new_session": new_session,
    }


def access_fields(
    service: str,
    entry: str,
    home: str | None,
    method: str | bytes,
    path: str | bytes,
    status: int,
    bytes_in: int,
    bytes_out: int,
    t_head: float | None,
    t_home: float | None,
    t_first_byte: float | None,
    t_total: float,
    id_kind: str | None,
    new_session: bool,
    client: str,
    client_port: int,
    error: str | None = None,
    tls: Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """The fields of one access line (pure).

    `entry` is the node the client connected to, `home` the node that served
    the request (None when none was reached: an error answered by the entry).
    `bytes_in` / `bytes_out` count the client's request bytes and the bytes of
    the response sent to it. Timings are seconds since the first byte of the
    request: head read, home reached (its application connection or its flow
    verified), first response byte, total; None when the step never happened.
    `id_kind` is the kind of the identifier that routed the request
    ("home-cookie", "uri-path", ...) or None; `new_session` whether the home
    placed a new session for it. `client` and `client_port` are the client's
    address as lb took it: the connection's peer, or the source of a PROXY v2
    header from an `accept_proxy_from` balancer (an X-Forwarded-For that a trusted
    proxy sent is passed to the application, not logged here). `error` says why lb
    answered `status` itself (a bad request, a head timeout, no upstream, a bad
    response): fixed text, never bytes of the request; None for an answer that came
    from the application. `tls` (a tls-terminate connection's: `tls_version`,
    `tls_cipher`, `tls_sni`, read once per connection) is added as it is; a plain
    http line has no such fields.
    """
    fields = {
        "service": service,
        "entry": entry,
        "client": client,
        "client_port": client_port,
        "home": home,
        "method": _printable(_text(method, METHOD_LIMIT)),
        "path": clean_path(path),
        "status": status,
        "error": error,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "t_head": _secs(t_head),
        "t_home": _secs(t_home),
        "t_first_byte": _secs(t_first_byte),
        "t_total": _secs(t_total),
        "id_kind": id_kind,
        "new_session": new_session,
    }
    if tls is not None:
        fields.update(tls)
    return fields


class AccessLog:
    """A node's access log: `record(...)` writes one line, or nothing when off or not drawn.

    `sample` is the share of requests written (each request is drawn with
    `draw()`, uniform in [0, 1)). `enabled` is False when off or when the sample
    is 0, so a caller may skip gathering the fields at all; `wanted()` draws
    for one request and `write(...)` then writes without drawing again.
    """

    __slots__ = ("_draw", "_emit", "enabled", "sample")

    def __init__(
        self,
        enabled: bool,
        sample: float = 1.0,
        *,
        node: str = "",
        emit: Callable[..., Any] | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= sample <= 1.0:
            raise ValueError(f"sample must be in 0.0 .. 1.0, got {sample!r}")
        self.enabled = enabled and sample > 0.0
        self.sample = sample
        self._draw = draw
        # emit(event, **fields): the access logger's info (tests pass their own)
        self._emit = emit if emit is not None else access_logger(node=node).info

    @classmethod
    def from_config(cls, config: FarmConfig, node: str) -> AccessLog:
        """The access log of `node` as [log] access_log / access_log_sample say."""
        return cls(config.access_log, config.access_log_sample, node=node)

    def wanted(self) -> bool:
        """Draw for one request: should its line be written?"""
        if not self.enabled:
            return False
        return self.sample >= 1.0 or self._draw() < self.sample

    def record(
        self,
        service: str,
        entry: str,
        home: str | None,
        method: str | bytes,
        path: str | bytes,
        status: int,
        bytes_in: int,
        bytes_out: int,
        t_head: float | None,
        t_home: float | None,
        t_first_byte: float | None,
        t_total: float,
        id_kind: str | None,
        new_session: bool,
        client: str,
        client_port: int,
        error: str | None = None,
        tls: Mapping[str, str | None] | None = None,
    ) -> None:
        """Write the request's line if the log is on and the request is drawn."""
        if self.wanted():
            self.write(
                service,
                entry,
                home,
                method,
                path,
                status,
                bytes_in,
                bytes_out,
                t_head,
                t_home,
                t_first_byte,
                t_total,
                id_kind,
                new_session,
                client,
                client_port,
                error,
                tls,
            )

    def write(
        self,
        service: str,
        entry: str,
        home: str | None,
        method: str | bytes,
        path: str | bytes,
        status: int,
        bytes_in: int,
        bytes_out: int,
        t_head: float | None,
        t_home: float | None,
        t_first_byte: float | None,
        t_total: float,
        id_kind: str | None,
        new_session: bool,
        client: str,
        client_port: int,
        error: str | None = None,
        tls: Mapping[str, str | None] | None = None,
    ) -> None:
        """Write the line without drawing (after `wanted()` said yes)."""
        self._emit(
            "access",
            **access_fields(
                service,
                entry,
                home,
                method,
                path,
                status,
                bytes_in,
                bytes_out,
                t_head,
                t_home,
                t_first_byte,
                t_total,
                id_kind,
                new_session,
                client,
                client_port,
                error,
                tls,
            ),
        )

    def write_fields(self, fields: dict[str, Any]) -> None:
        """Write a line of `fields` (connection_fields: a tcp or tls-passthrough
        connection's) without drawing (after `wanted()` said yes)."""
        self._emit("access", **fields)
