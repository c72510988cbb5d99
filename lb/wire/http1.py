"""HTTP/1.1 message framing for a proxy that routes every request.

Where does one message end, in either direction, so that the next request of a
keep-alive connection can be routed on its own and a pooled upstream
connection can be reused? This module answers that over raw bytes, without
copying or decoding bodies: a request's body kind from its head
(``request_framing``), a response's body kind from its head and its request
(``response_body``, RFC 9112 6.3; the head itself is parsed by
lb.wire.response_head), and an incremental ``BodyFramer`` that finds the end
of a Content-Length or chunked body (trailers included) in the bytes as they
arrive. It also rewrites the Connection lines of heads as they pass from one
hop to the next (``upstream_hop_by_hop``, ``without_connection_headers``,
``with_header``).

Pure and bounded: no sockets, no asyncio, no clock. "Need more data" is a
return value (``BodyFramer.done`` still False); anything that cannot be framed
is one ``HttpError`` carrying the status to answer (400 for a client's request,
502 for an application's response). Chunk-size lines and trailers are bounded
in bytes.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple, NoReturn

from lb.errors import HttpError
from lb.wire.http import FIELD_VCHAR, TCHAR, RequestHead, c_pass_or, list_tokens
from lb.wire.response_head import ResponseHead

__all__ = [
    "CHUNKED",
    "LENGTH",
    "MAX_CHUNK_LINE",
    "NO_BODY",
    "TUNNEL",
    "UNTIL_CLOSE",
    "BodyFramer",
    "RequestFraming",
    "check_host",
    "request_body",
    "request_framing",
    "request_keeps_alive",
    "request_upgrade",
    "response_body",
    "response_keeps_alive",
    "span_joined",
    "upstream_hop_by_hop",
    "with_header",
    "without_connection_headers",
]

# body kinds
NO_BODY: Final = 0
LENGTH: Final = 1  # Content-Length bytes
CHUNKED: Final = 2  # chunked transfer coding, trailers included
UNTIL_CLOSE: Final = 3  # a response delimited by the close of the connection
TUNNEL: Final = 4  # after 101 / a 2xx answer to CONNECT: bytes both ways, no more HTTP

MAX_CHUNK_LINE: Final = 4096
"""Longest chunk-size line (size, extensions, CRLF) a body may carry."""

_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_IDEMPOTENT: Final = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))


class RequestFraming(NamedTuple):
    """What a proxy needs of a request head, found in one pass over its headers."""

    kind: int  # NO_BODY, LENGTH or CHUNKED
    length: int  # the Content-Length of a LENGTH body
    keep_alive: bool  # the client wants its connection kept after this exchange
    upgrade: bool  # a CONNECT, or a request asking to switch protocols


def request_framing(head: RequestHead) -> RequestFraming:
    """The body kind, keep-alive and upgrade of a request, in one pass over its headers.

    Body (RFC 9112 6.3): the head scanner already refused CL together with TE
    and differing lengths. The one Transfer-Encoding passed on is one line whose
    value is ``chunked`` (any case): a server that reads one line, or compares
    the value with ``chunked``, reads every other spelling as no body and the
    chunks as the next request. So a last coding that is not ``chunked`` is a 400
    (RFC 9112 6.3 point 4), as are ``chunked`` twice, a second line or an empty
    member (``, chunked``); another coding before it (``gzip, chunked``) is a 501
    (RFC 9112 6.1, nginx's answer).
    Transfer-Encoding in an HTTP/1.0 request is faulty framing (RFC 9112 6.1):
    400. Keep-alive and upgrade read the options of every Connection line, as
    ``upstream_hop_by_hop`` does.
    """
    length = -1
    chunked = False
    connection: str | None = None
    upgrade_header = h2c = False
    for name, value in head.headers:
        size = len(name)
        if size == 10:
            if name.lower() == "connection":  # every line: one list (RFC 9110 5.3)
                connection = value if connection is None else connection + "," + value
        elif size == 14:
            if name.lower() == "content-length":
                length = int(value.split(",")[0].strip(" \t"))
        elif size == 17:
            if name.lower() == "transfer-encoding":
                if head.version == "HTTP/1.0":
                    # RFC 9112 6.1: faulty framing; an HTTP/1.0 application may ignore
                    # the coding and read the chunks as the next request
                    raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
                if chunked:
                    # a server that takes one line only, or compares the value with
                    # "chunked", reads no body and the chunks as the next request
                    # (nginx refuses a second line too)
                    raise HttpError(400, "more than one Transfer-Encoding field")
                if value != "chunked" and value.lower() != "chunked":
                    _refuse_coding(value)
                # a server that compares the value with "chunked" as written (its case,
                # the spaces or a tab around it) reads no body and the chunks as the next
                # request: upstream_hop_by_hop writes the line lb's way
                head.chunked = chunked = True
        elif size == 7 and name.lower() == "upgrade":
            upgrade_header = True
            if "h2c" in value.lower() and "h2c" in list_tokens(value):
                h2c = True
    tokens = list_tokens(connection) if connection is not None else []
    head.connection_options = tokens  # upstream_hop_by_hop reads them again
    # HTTP/1.1 keeps unless told to close; HTTP/1.0 closes unless asked to keep
    keep_alive = "close" not in tokens if head.version == "HTTP/1.1" else "keep-alive" in tokens
    # h2c: HTTP/2 on the connection would carry requests lb never reads (no routing, no
    # forwarding headers): not passed on, as Envoy drops it (upstream_hop_by_hop)
    head.h2c = h2c
    upgrade = head.method == "CONNECT" or (upgrade_header and not h2c and "upgrade" in tokens)
    if chunked:
        return RequestFraming(CHUNKED, 0, keep_alive, upgrade)
    if length > 0:
        return RequestFraming(LENGTH, length, keep_alive, upgrade)
    # no body, the usual request: one of four shared answers (a NamedTuple is built
    # by a Python-level __new__, even compiled)
    if keep_alive:
        return _NO_BODY_UPGRADE_KEEP if upgrade else _NO_BODY_KEEP
    return _NO_BODY_UPGRADE_CLOSE if upgrade else _NO_BODY_CLOSE


_NO_BODY_KEEP: Final = RequestFraming(NO_BODY, 0, True, False)
_NO_BODY_CLOSE: Final = RequestFraming(NO_BODY, 0, False, False)
_NO_BODY_UPGRADE_KEEP: Final = RequestFraming(NO_BODY, 0, True, True)
_NO_BODY_UPGRADE_CLOSE: Final = RequestFraming(NO_BODY, 0, False, True)


def _refuse_coding(value: str) -> NoReturn:
    """The error for a request's Transfer-Encoding value other than ``chunked`` (any
    case): whatever it says, a server that compares the value with ``chunked`` (as
    naive ones do) reads no body and takes the chunks for the next request."""
    codings = list_tokens(value)
    if not codings or codings[-1] != "chunked":
        # RFC 9112 6.3 point 4: no final chunked, no way to frame the body
        raise HttpError(400, "Transfer-Encoding without a final chunked coding")
    if codings.count("chunked") > 1:
        # RFC 9112 6.1: chunked is applied once (HAProxy refuses it twice)
        raise HttpError(400, "chunked applied more than once")
    if len(codings) > 1:
        # RFC 9112 6.1: a coding the server does not understand is a 501 (nginx's answer
        # to any coding but chunked; h11 and Go's net/http answer the same)
        raise HttpError(501, "a transfer coding other than chunked")
    raise HttpError(400, "Transfer-Encoding spelled otherwise than chunked")  # ", chunked"


def check_host(head: RequestHead) -> None:
    """RFC 9112 3.2: HttpError(400) for an HTTP/1.1 request without a Host field, and for
    any request with more than one (hops that pick different ones route, cache or
    authorise it differently). nginx refuses both too. A target not in origin-form is
    checked too (`_check_target_form`)."""
    hosts = head.host_lines
    if hosts != 1:
        if hosts > 1:
            raise HttpError(400, "more than one Host field")
        if head.version == "HTTP/1.1":
            raise HttpError(400, "an HTTP/1.1 request without a Host field")
    if head.target[0] != "/":
        _check_target_form(head)


_DEFAULT_PORTS: Final = {"http": ":80", "https": ":443"}


def _check_target_form(head: RequestHead) -> None:
    """A target that is not origin-form (RFC 9112 3.2): ``*`` for OPTIONS only, an
    authority alone for CONNECT only (HAProxy refuses both otherwise); an absolute-form
    target's authority must be the Host field's value (RFC 9112 3.2: a client sends
    them identical; HAProxy refuses them differing since 2.1): an application that
    reads the target's authority and one that reads Host must not see two hosts."""
    target = head.target
    if target == "*":
        if head.method != "OPTIONS":
            raise HttpError(400, "an asterisk-form target for a method other than OPTIONS")
        return
    scheme_end = target.find("://")
    if scheme_end <= 0:
        if head.method != "CONNECT":
            raise HttpError(400, "an authority-form target for a method other than CONNECT")
        return
    rest = target[scheme_end + 3 :]
    end = len(rest)
    for mark in "/?#":
        found = rest.find(mark)
        if 0 <= found < end:
            end = found
    authority = rest[:end].rpartition("@")[2].lower()  # userinfo is no part of Host
    host = head.header("host")
    if host is None:
        return  # HTTP/1.0 without Host: the target's authority is the only host
    host = host.lower()
    if host != authority:
        port = _DEFAULT_PORTS.get(target[:scheme_end].lower())
        if port is None or host.removesuffix(port) != authority.removesuffix(port):
            raise HttpError(400, "the Host field differs from the target's authority")


def request_body(head: RequestHead) -> tuple[int, int]:
    """(kind, length) of a request's body: NO_BODY, LENGTH or CHUNKED (``request_framing``)."""
    framing = request_framing(head)
    return framing.kind, framing.length


def request_keeps_alive(head: RequestHead) -> bool:
    """Whether the client wants its connection kept after this exchange."""
    return request_framing(head).keep_alive


def request_upgrade(head: RequestHead) -> bool:
    """A CONNECT, or a request asking to switch protocols (``Connection: upgrade``)."""
    return request_framing(head).upgrade


def idempotent(method: str) -> bool:
    """RFC 9110 9.2.2: a request that may be sent again after a lost connection."""
    return method == "GET" or method in _IDEMPOTENT  # GET first: most requests


def response_body(head: ResponseHead, method: str) -> tuple[int, int]:
    """(kind, length) of a response's body, by RFC 9112 6.3, given its request's method.
    A Transfer-Encoding whose last coding is not chunked is UNTIL_CLOSE here, as the RFC
    says; the entry refuses such a body (502: lb.node.http_response)."""
    status = head.status
    if method == "CONNECT" and 200 <= status < 300:
        return TUNNEL, 0
    if status == 101:
        return TUNNEL, 0
    if method == "HEAD" or status < 200 or status == 204 or status == 304:
        return NO_BODY, 0
    if head.chunked:
        return CHUNKED, 0
    if head.other_coding:
        return UNTIL_CLOSE, 0
    if head.content_length >= 0:
        return (LENGTH, head.content_length) if head.content_length else (NO_BODY, 0)
    return UNTIL_CLOSE, 0


def response_keeps_alive(head: ResponseHead) -> bool:
    """Whether the application keeps its connection after this response."""
    if head.minor >= 1:
        return not head.close
    return head.keep_alive and not head.close


# what may follow a chunk size (RFC 9112 7.1.1): BWS, then extensions, each
# `;` name [`=` value], name a token, value a token or a quoted-string (possessive:
# linear, never backtracks)
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*+"'
_CHUNK_EXTENSIONS: Final = re.compile(
    rb"[ \t]*+(?:;[ \t]*+"
    + TCHAR
    + rb"++(?:[ \t]*+=[ \t]*+(?:"
    + TCHAR
    + rb"++|"
    + _QUOTED
    + rb"))?+[ \t]*+)*+"
)
# a trailer line without its CRLF: a field name (a token), ':', a value of no control
# byte but HT
_TRAILER_FIELD: Final = re.compile(TCHAR + rb"++:" + FIELD_VCHAR + rb"*+")

# BodyFramer states
_DATA: Final = 0  # inside a Content-Length body or a chunk's data
_SIZE: Final = 1  # reading a chunk-size line
_DATA_END: Final = 2  # the CRLF after a chunk's data
_TRAILER: Final = 3  # reading trailer lines up to the empty one
_DONE: Final = 4


class BodyFramer:
    """Finds where one message body ends in a byte stream, incrementally.

    ``feed(buf, start)`` consumes body bytes from ``buf[start:]`` and returns
    the index just past the last byte it consumed: ``len(buf)`` while the body
    goes on, the body's end once ``done``. Data bytes are skipped by count,
    never copied; only a chunk-size line or a trailer line split between two
    reads is kept (at most ``MAX_CHUNK_LINE`` / ``max_trailer`` bytes). A
    stream that is not a valid body raises HttpError(``status``).
    """

    __slots__ = (
        "_chunked",
        "_line",
        "_state",
        "_status",
        "_trailer_bytes",
        "max_trailer",
        "remaining",
    )

    def __init__(self, kind: int, length: int = 0, *, status: int = 400, max_trailer: int = 16384):
        self._status = status
        self.max_trailer = max_trailer
        self._line = bytearray()  # an incomplete size or trailer line
        self._trailer_bytes = 0
        if kind == LENGTH:
            self._state = _DATA if length > 0 else _DONE
            self.remaining = length
        elif kind == CHUNKED:
            self._state = _SIZE
            self.remaining = 0
        elif kind == NO_BODY:
            self._state = _DONE
            self.remaining = 0
        else:
            raise ValueError(f"BodyFramer frames LENGTH, CHUNKED or NO_BODY, not kind {kind}")
        self._chunked = kind == CHUNKED

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, buf: bytes | bytearray, start: int = 0) -> int:
        pos = start
        size = len(buf)
        while pos < size:
            state = self._state
            if state == _DATA:
                take = min(self.remaining, size - pos)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self._state = _DATA_END if self._chunked else _DONE
                    if not self._chunked:
                        return pos
            elif state == _DATA_END:
                pos = self._data_end(buf, pos)
            elif state in (_SIZE, _TRAILER):
                pos = self._line_end(buf, pos, size)
                if self._state == _DONE:
                    return pos
            else:  # _DONE
                return pos
        return pos

    def _error(self, reason: str) -> HttpError:
        return HttpError(self._status, f"bad chunked body: {reason}")

    def _data_end(self, buf: bytes | bytearray, pos: int) -> int:
        # the CRLF after chunk data; its two bytes may come in two reads
        line = self._line
        need = 2 - len(line)
        piece = buf[pos : pos + need]
        line += piece
        pos += len(piece)
        if len(line) == 2:
            if line != b"\r\n":
                raise self._error("chunk data not followed by CRLF")
            line.clear()
            self._state = _SIZE
        return pos

    def _line_end(self, buf: bytes | bytearray, pos: int, size: int) -> int:
        line = self._line
        limit = MAX_CHUNK_LINE if self._state == _SIZE else self.max_trailer - self._trailer_bytes
        window = min(size, pos + limit - len(line))
        eol = buf.find(b"\n", pos, window)
        if eol < 0:
            line += buf[pos:window]
            if len(line) >= limit:
                raise self._error("chunk-size or trailer line too long")
            return window
        line += buf[pos : eol + 1]
        pos = eol + 1
        if len(line) < 2 or line[-2] != 0x0D:
            raise self._error("line not ended by CRLF")
        if self._state == _SIZE:
            self._chunk_size(bytes(line[:-2]))
        else:
            self._trailer_bytes += len(line)
            if len(line) == 2:
                self._state = _DONE
            elif _TRAILER_FIELD.fullmatch(line, 0, len(line) - 2) is None:
                # a field line as in a head: a token, ':', a value without control bytes
                raise self._error("malformed trailer line")
        line.clear()
        return pos

    def _chunk_size(self, line: bytes) -> None:
        digits = line.split(b";", 1)[0].rstrip(b" \t")
        if not digits or len(digits) > 15 or not _HEX.issuperset(digits):
            raise self._error("invalid chunk size")
        if b"\r" in line or b"\n" in line:
            raise self._error("bare CR or LF in chunk-size line")
        if len(digits) != len(line) and _CHUNK_EXTENSIONS.fullmatch(line, len(digits)) is None:
            # RFC 9112 7.1.1: token names, token or quoted-string values; anything else
            # (an unclosed quote, a control byte, a space inside) is where servers that
            # skip or parse extensions differently disagree on where the line ends
            raise self._error("malformed chunk extension")
        size = int(digits, 16)
        if size == 0:
            self._state = _TRAILER
        else:
            self.remaining = size
            self._state = _DATA


# a Connection, Keep-Alive or Proxy-Connection line with the CRLF before it (a status or
# request line is never preceded by one)
_HOP_BY_HOP_LINE = re.compile(rb"\r\n(?:connection|keep-alive|proxy-connection):[^\r\n]*", re.I)


def _regex_without_connection_headers(raw: bytes) -> bytes:
    """The pure build's removal (the compiled build's C one, lb.wire._headscan
    .drop_hop_lines, answers the same in about a tenth of the instructions)."""
    return _HOP_BY_HOP_LINE.sub(b"", raw)


_drop_hop_lines: Final = c_pass_or("drop_hop_lines", _regex_without_connection_headers)


def without_connection_headers(raw: bytes) -> bytes:
    """A complete head without its Connection, Keep-Alive and Proxy-Connection lines.

    A proxy keeps or closes each side of a connection on its own (RFC 9110 7.6.1):
    a client's ``Connection: close`` must not close a pooled upstream, an
    application's must not close a client's keep-alive connection.
    """
    return _drop_hop_lines(raw)


def _py_with_header(raw: bytes, line: bytes) -> bytes:
    """The pure build's insertion (the compiled build's C one, lb.wire._headscan
    .insert_line, answers the same without a Python method call per step)."""
    start = 0
    while raw.startswith(b"\r\n", start):
        start += 2
    eol = raw.index(b"\r\n", start) + 2
    return raw[:eol] + line + raw[eol:]


_insert_line: Final = c_pass_or("insert_line", _py_with_header)


def _py_span_joined(buf: bytes | bytearray, start: int, end: int, tail: bytes) -> bytes:
    """The pure build's join (the compiled build's C one, lb.wire._headscan.span_joined,
    answers the same with one copy of each part and no slice made)."""
    if not 0 <= start <= end <= len(buf):
        raise ValueError("span_joined(): not 0 <= start <= end <= len(buf)")
    return b"".join((buf[start:end], tail))


span_joined: Final = c_pass_or("span_joined", _py_span_joined)
"""``buf[start:end] + tail`` as one new bytes object (``buf`` a bytes or bytearray);
ValueError unless ``0 <= start <= end <= len(buf)``."""


def with_header(raw: bytes, line: bytes) -> bytes:
    """A complete head with one header ``line`` (ending in CRLF) after its first line
    (a request's empty lines before its request line skipped)."""
    return _insert_line(raw, line)


# header names a server that maps "_" to "-" (CGI, older gunicorn) reads as framing
_UNDERSCORE_LINE = re.compile(rb"(?:transfer_encoding|content_length)[ \t]*:", re.IGNORECASE)
_LENGTH_LINE = re.compile(rb"content-length:", re.IGNORECASE)
_UPGRADE_LINE = re.compile(rb"(?:upgrade|http2-settings):", re.IGNORECASE)
_TE_LINE = re.compile(rb"transfer-encoding:", re.IGNORECASE)


def with_own_version(raw: bytes) -> bytes:
    """A response head (final or interim) with lb's own HTTP-version, ``HTTP/1.1``, in
    place of the application's 8 bytes (RFC 9110 6.2: an intermediary sends its own)."""
    return b"HTTP/1.1" + raw[8:]


def with_one_content_length(raw: bytes, length: int) -> bytes:
    """A complete request or response head whose Content-Length values (more than one,
    all equal to ``length``: the parsers refuse differing ones; or one with leading
    zeros) are made one line with that value in decimal, after the first line (RFC 9110
    8.6: a recipient that accepts a list of equal values replaces it with one before it
    forwards the message, as HAProxy does)."""
    return with_header(_without_lines(raw, _LENGTH_LINE), b"Content-Length: %d\r\n" % length)


def _without_lines(raw: bytes, name: re.Pattern[bytes]) -> bytes:
    """A complete head without the header lines `name` matches at their start (the first
    line, a request or status line, always stays)."""
    lines = raw.split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if name.match(line) is None]
    return b"\r\n".join(kept)


def _request_length(head: RequestHead) -> int:
    """The Content-Length of a head the parse took (its values are equal digits)."""
    value = head.header("content-length")
    assert value is not None
    return int(value.split(",", 1)[0].strip(" \t"))


def upstream_hop_by_hop(raw: bytes, head: RequestHead, upgrade: bool) -> bytes:
    """A request head (already rewritten) as it goes to an application connection lb keeps.

    The client's Connection options are the client's (RFC 9110 7.6.1): a
    ``close`` must not close a pooled upstream, and options naming other fields
    (``Connection: keep-alive, X-Forwarded-For``) must not make a hop behind lb
    drop what lb added. So the Connection lines go unless they say no more than
    ``keep-alive`` (the usual browser head, sent as is), all Connection lines
    together (one list, RFC 9110 5.3: a second line names options as well as the
    first); an upgrade request keeps exactly ``Connection: upgrade``. Keep-Alive and
    Proxy-Connection lines always go (hop-by-hop: RFC 9110 7.6.1, RFC 9112 C.2.2;
    nginx drops them too). Fields spelled ``Transfer_Encoding`` / ``Content_Length``
    are dropped (nginx drops every underscore name by default):
    a server that maps ``_`` to ``-`` would frame the body otherwise than lb did.
    An ``Upgrade`` naming ``h2c`` goes with its ``HTTP2-Settings`` (request_framing
    took it for no upgrade): HTTP/2 on the connection would carry requests lb never
    reads ("h2c smuggling"; Envoy drops it too).
    Equal Content-Length values (``5, 5`` or two lines) become one line: an application
    that reads only the first, or refuses a list, frames the body as lb did; so does a
    value with leading zeros (``010``), which a C server reading it with
    ``strtol(value, NULL, 0)`` takes for octal (nginx sends its own decimal value too).
    A Transfer-Encoding line other than ``Transfer-Encoding: chunked`` as written
    (``Chunked``, ``CHUNKED``, a tab before the value, a space after it) goes as that:
    a server that compares the value as written, or skips only one space after the
    colon, would read no body (HAProxy and nginx write their own ``chunked`` too).
    """
    if head.length_values > 1 or head.length_padded:
        raw = with_one_content_length(raw, _request_length(head))
    if head.has_underscore_framing:
        raw = _without_lines(raw, _UNDERSCORE_LINE)
    if head.h2c:
        raw = _without_lines(raw, _UPGRADE_LINE)  # its Connection lines go below
    if head.chunked and b"\r\nTransfer-Encoding: chunked\r\n" not in raw:
        raw = with_header(_without_lines(raw, _TE_LINE), b"Transfer-Encoding: chunked\r\n")
    if not head.has_connection and not head.has_hop_fields:
        return raw
    # every Connection line: RFC 9110 5.3, the lines of one field are one list
    options = head.connection_options
    if options is None:  # a head request_framing has not read
        options = []
        for name, value in head.headers:
            if len(name) == 10 and name.lower() == "connection":
                options += list_tokens(value)
    tokens = set(options)
    as_sent = not head.has_hop_fields  # Keep-Alive / Proxy-Connection lines go in any case
    if upgrade and head.method != "CONNECT":
        if tokens == {"upgrade"} and as_sent:
            return raw
        return with_header(without_connection_headers(raw), b"Connection: upgrade\r\n")
    if tokens <= {"keep-alive"} and as_sent:
        return raw
    stripped = without_connection_headers(raw)
    if head.version != "HTTP/1.1" and "keep-alive" in tokens and "close" not in tokens:
        return with_header(stripped, b"Connection: keep-alive\r\n")  # HTTP/1.0 asks for it
    return stripped
