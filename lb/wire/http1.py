"""HTTP/1.1 message framing for a proxy that routes every request.

Where does one message end, in either direction, so that the next request of a
keep-alive connection can be routed on its own and a pooled upstream
connection can be reused? This module answers that over raw bytes, without
copying or decoding bodies: a request's body kind from its head
(``request_body``), a response head (``parse_response_head``), a response's
body kind from its head and its request (``response_body``, RFC 9112 6.3), and
an incremental ``BodyFramer`` that finds the end of a Content-Length or
chunked body (trailers included) in the bytes as they arrive.

A response head is decided first by one possessive regex match of the buffer's
bytes (`_fast_response_head`: the head's end, control bytes, status line and
header lines in one pass, then the framing lines by one findall), without
copying the head; it accepts exactly what the reference accepts and answers
as the full check does (a property test holds the two together). What it
does not decide (a bad or incomplete head, unusual framing) goes to the full
check: llhttp (httptools), then this module's own scanner
(`own_response_head`), the reference, for every head llhttp refuses; where
llhttp answers, its answer is the reference's (a differential property test).

Pure and bounded: no sockets, no asyncio, no clock. "Need more data" is a
return value (``None`` from the head parser; ``BodyFramer.done`` still False);
anything that cannot be framed is one ``HttpError`` carrying the status to
answer (400 for a client's request, 502 for an application's response).
Chunk-size lines and trailers are bounded in bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

import httptools

from lb.errors import HttpError
from lb.wire.http import RequestHead

__all__ = [
    "CHUNKED",
    "LENGTH",
    "MAX_CHUNK_LINE",
    "NO_BODY",
    "TUNNEL",
    "UNTIL_CLOSE",
    "BodyFramer",
    "RequestFraming",
    "ResponseHead",
    "parse_response_head",
    "request_body",
    "request_framing",
    "request_keeps_alive",
    "request_upgrade",
    "response_body",
    "response_keeps_alive",
    "upstream_hop_by_hop",
    "with_header",
    "without_connection_headers",
]

# body kinds
NO_BODY = 0
LENGTH = 1  # Content-Length bytes
CHUNKED = 2  # chunked transfer coding, trailers included
UNTIL_CLOSE = 3  # a response delimited by the close of the connection
TUNNEL = 4  # after 101 / a 2xx answer to CONNECT: bytes both ways, no more HTTP

MAX_CHUNK_LINE = 4096
"""Longest chunk-size line (size, extensions, CRLF) a body may carry."""

_MAX_HEADER_LINES = 200
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
_HEX = frozenset(b"0123456789abcdefABCDEF")
# every byte but the control bytes (HT excepted): translate(None, _NOT_CTL) keeps only
# the control bytes of a head, so CR/LF pairing and forbidden bytes are one check
_NOT_CTL = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t"
# a whole response head: the status line, then header lines (a token, ':', a value);
# control bytes are refused before it runs, so [^\r\n] is any allowed byte
_RESPONSE_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: [^\r\n]*)?"
    rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*)*"
)
# the header lines framing depends on, in a lowered head
_FRAMING_LINE = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|set-cookie|keep-alive|proxy-connection)"
    rb":([^\r\n]*)"
)
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"))


def _tokens(value: str) -> list[str]:
    return [part.strip(" \t").lower() for part in value.split(",") if part.strip(" \t")]


class RequestFraming(NamedTuple):
    """What a proxy needs of a request head, found in one pass over its headers."""

    kind: int  # NO_BODY, LENGTH or CHUNKED
    length: int  # the Content-Length of a LENGTH body
    keep_alive: bool  # the client wants its connection kept after this exchange
    upgrade: bool  # a CONNECT, or a request asking to switch protocols


def request_framing(head: RequestHead) -> RequestFraming:
    """The body kind, keep-alive and upgrade of a request, in one pass over its headers.

    Body (RFC 9112 6.3): the head scanner already refused CL together with TE
    and differing lengths. A Transfer-Encoding whose last coding is not
    ``chunked`` cannot be framed: 400 (RFC 9112 6.3 point 4); any coding
    besides ``chunked`` (say ``gzip, chunked``) is passed on as is.
    Transfer-Encoding in an HTTP/1.0 request is faulty framing (RFC 9112 6.1):
    400. Keep-alive and upgrade read the first Connection header.
    """
    length = -1
    chunked = False
    connection: str | None = None
    upgrade_header = False
    for name, value in head.headers:
        size = len(name)
        if size == 10:
            if connection is None and name.lower() == "connection":
                connection = value
        elif size == 14:
            if name.lower() == "content-length":
                length = int(value.split(",")[0].strip(" \t"))
        elif size == 17:
            if name.lower() == "transfer-encoding":
                if head.version == "HTTP/1.0":
                    # RFC 9112 6.1: faulty framing; an HTTP/1.0 application may ignore
                    # the coding and read the chunks as the next request
                    raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
                codings = _tokens(value)
                chunked = bool(codings) and codings[-1] == "chunked"
                if not chunked:
                    raise HttpError(400, "Transfer-Encoding without a final chunked coding")
        elif size == 7 and not upgrade_header:
            upgrade_header = name.lower() == "upgrade"
    tokens = _tokens(connection) if connection is not None else ()
    # HTTP/1.1 keeps unless told to close; HTTP/1.0 closes unless asked to keep
    keep_alive = "close" not in tokens if head.version == "HTTP/1.1" else "keep-alive" in tokens
    upgrade = head.method == "CONNECT" or (upgrade_header and "upgrade" in tokens)
    if chunked:
        return RequestFraming(CHUNKED, 0, keep_alive, upgrade)
    if length > 0:
        return RequestFraming(LENGTH, length, keep_alive, upgrade)
    # no body, the usual request: one of four shared answers (a NamedTuple is built
    # by a Python-level __new__, even compiled)
    if keep_alive:
        return _NO_BODY_UPGRADE_KEEP if upgrade else _NO_BODY_KEEP
    return _NO_BODY_UPGRADE_CLOSE if upgrade else _NO_BODY_CLOSE


_NO_BODY_KEEP = RequestFraming(NO_BODY, 0, True, False)
_NO_BODY_CLOSE = RequestFraming(NO_BODY, 0, False, False)
_NO_BODY_UPGRADE_KEEP = RequestFraming(NO_BODY, 0, True, True)
_NO_BODY_UPGRADE_CLOSE = RequestFraming(NO_BODY, 0, False, True)


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
    return method in _IDEMPOTENT


@dataclass(slots=True, init=False)  # __init__ written out: compiled, it stays native code
class ResponseHead:
    """What a proxy needs of one response head."""

    status: int
    minor: int  # HTTP/1.<minor>
    length: int  # bytes of the head, final CRLFCRLF included
    set_cookies: list[str]  # the Set-Cookie values, in order
    content_length: int
    chunked: bool
    other_coding: bool  # a Transfer-Encoding whose last coding is not chunked
    close: bool  # Connection: close
    keep_alive: bool  # Connection: keep-alive (HTTP/1.0)
    connection_header: bool  # any Connection / Keep-Alive header is present

    def __init__(
        self,
        status: int,
        minor: int,
        length: int,
        set_cookies: list[str],
        content_length: int = -1,
        chunked: bool = False,
        other_coding: bool = False,
        close: bool = False,
        keep_alive: bool = False,
        connection_header: bool = False,
    ) -> None:
        self.status = status
        self.minor = minor
        self.length = length
        self.set_cookies = set_cookies
        self.content_length = content_length
        self.chunked = chunked
        self.other_coding = other_coding
        self.close = close
        self.keep_alive = keep_alive
        self.connection_header = connection_header


def _bad_response(reason: str) -> HttpError:
    return HttpError(502, f"bad response from the application: {reason}")


_Framing = list[tuple[bytes, bytes]]  # (lowered name, value stripped of SP/HT), in order
_FRAMING_NAMES = frozenset(
    (
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"set-cookie",
        b"keep-alive",
        b"proxy-connection",
    )
)
_FRAMING_SIZES = frozenset(len(name) for name in _FRAMING_NAMES)


class _FramingCollector:
    """llhttp's header callback: keeps the lines framing depends on."""

    __slots__ = ("framing",)

    def __init__(self) -> None:
        self.framing: _Framing = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) in _FRAMING_SIZES:
            lowered = name.lower()
            if lowered in _FRAMING_NAMES:
                self.framing.append((lowered, value.strip(b" \t")))


def llhttp_response_head(head: bytes) -> tuple[int, int, _Framing] | None:
    """(status, minor version, framing lines) of a complete response head (its final
    CRLFCRLF included, control bytes already refused) by llhttp; None when llhttp
    refuses it or it is outside what `own_response_head` accepts (then that decides)."""
    if not head.startswith(b"HTTP/1."):
        return None  # llhttp skips empty lines before a status line; the reference does not
    collector = _FramingCollector()
    parser = httptools.HttpResponseParser(collector)
    try:
        parser.feed_data(head)
    except httptools.HttpParserUpgrade:
        pass  # a 101: what follows the head is not HTTP
    except httptools.HttpParserError:
        return None
    version = parser.get_http_version()
    status = parser.get_status_code()
    if (version != "1.1" and version != "1.0") or not 100 <= status <= 599:
        return None
    return status, 1 if version == "1.1" else 0, collector.framing


def own_response_head(raw: bytes) -> tuple[int, int, _Framing]:
    """The reference: (status, minor version, framing lines) of the response head
    ``raw`` (up to its final CRLFCRLF, control bytes already refused); 502 if bad."""
    # the status line and every header line in one pass (no control bytes are left)
    match = _RESPONSE_HEAD.fullmatch(raw)
    if match is None:
        if _STATUS_LINE.match(raw) is None:
            raise _bad_response("malformed status line")
        raise _bad_response("malformed header line")
    framing = [
        (found.group(1), raw[found.start(2) : found.end(2)].strip(b" \t"))
        for found in _FRAMING_LINE.finditer(raw.lower())
    ]
    return int(match.group(2)), int(match.group(1)), framing


# The usual response head in one match of the buffer's bytes, up to its final CRLFCRLF:
# what own_response_head accepts once control bytes are refused (HT allowed) and the
# head has fewer than _MAX_HEADER_LINES header lines (possessive: linear, never
# backtracks, and nothing after the first CRLFCRLF is read).
_FAST_RESPONSE = re.compile(
    rb"HTTP/1\.[01] [1-5][0-9][0-9](?: [\t\x20-\x7e\x80-\xff]*+)?"
    rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]++:[\t\x20-\x7e\x80-\xff]*+)"
    + b"{0,%d}+" % (_MAX_HEADER_LINES - 1)
    + rb"\r\n\r\n"
)
# the framing lines of a head _FAST_RESPONSE matched: (name as sent, value without
# leading SP/HT; trailing SP/HT is stripped after)
_FAST_FRAMING = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|set-cookie|keep-alive|proxy-connection)"
    rb":[ \t]*+([^\r]*+)",
    re.IGNORECASE,
)


def _read_connection(head: ResponseHead, value: bytes) -> None:
    """One Connection header's value (SP/HT stripped) into `head`."""
    head.connection_header = True
    lowered = value.lower()
    if lowered == b"keep-alive":
        head.keep_alive = True
    elif lowered == b"close":
        head.close = True
    else:
        tokens = _tokens(value.decode("latin-1"))
        head.close = head.close or "close" in tokens
        head.keep_alive = head.keep_alive or "keep-alive" in tokens


def _fast_response_head(buf: bytes | bytearray, start: int, stop: int) -> ResponseHead | None:
    """The response head at ``buf[start:stop]`` as the reference answers it, or None where
    this quick pass does not decide: no head _FAST_RESPONSE matches there, or a
    Content-Length that is not plain digits, differs, or comes with a Transfer-Encoding,
    or an empty Transfer-Encoding (the full check decides those)."""
    match = _FAST_RESPONSE.match(buf, start, stop)
    if match is None:
        return None
    end = match.end()
    status = buf[start + 9] * 100 + buf[start + 10] * 10 + buf[start + 11] - 5328  # 48 * 111
    head = ResponseHead(status, buf[start + 7] - 48, end - start, [])
    fields: list[tuple[bytes, bytes]] = _FAST_FRAMING.findall(buf, start, end - 2)
    if not fields:
        return head
    content_length = -1
    first_length = b""
    codings: list[bytes] = []  # every Transfer-Encoding value, in order
    for name, value in fields:
        if value and (value[-1] == 0x20 or value[-1] == 0x09):
            value = value.rstrip(b" \t")
        size = len(name)
        if size == 14:  # content-length
            if not (value.isdigit() and len(value) <= 18):
                return None
            if content_length >= 0:
                if value != first_length:  # the reference compares them as sent: 7 != 007
                    return None
            else:
                first_length = value
                content_length = int(value)
        elif size == 17:  # transfer-encoding
            if not value:
                return None
            codings.append(value)
        elif size == 10 and name[0] | 0x20 == 0x73:  # set-cookie
            head.set_cookies.append(value.decode("latin-1"))
        elif size == 10 and name[0] | 0x20 == 0x63:  # connection
            _read_connection(head, value)
        else:  # keep-alive, proxy-connection
            head.connection_header = True
    if codings:
        if content_length >= 0:
            return None
        tokens = _tokens(b",".join(codings).decode("latin-1"))
        head.chunked = bool(tokens) and tokens[-1] == "chunked"
        head.other_coding = not head.chunked
    head.content_length = content_length
    return head


def parse_response_head(buf: bytes | bytearray, start: int, max_bytes: int) -> ResponseHead | None:
    """The response head at ``buf[start:]``: None while incomplete; HttpError(502) if bad.

    Bounded: a head not ended within ``max_bytes`` bytes is refused, and
    nothing after the head is looked at. Checked: the status line, CRLF line
    ends, no control bytes, every header line a token name and ':', at most
    200 lines, and unambiguous framing (Content-Length, Transfer-Encoding).
    One regex pass decides the usual head; the rest goes to the full check
    (llhttp, then `own_response_head` for what llhttp refuses).
    """
    fast = _fast_response_head(buf, start, min(len(buf), start + max_bytes))
    if fast is not None:
        return fast
    return _checked_response_head(buf, start, max_bytes)


def _checked_response_head(
    buf: bytes | bytearray, start: int, max_bytes: int
) -> ResponseHead | None:
    """parse_response_head's full check: every head _fast_response_head leaves, with the
    reason of a refusal (llhttp first, `own_response_head` for what llhttp refuses)."""
    stop = min(len(buf), start + max_bytes)
    end = buf.find(b"\r\n\r\n", start, stop)
    if end < 0:
        if len(buf) - start >= max_bytes:
            raise _bad_response(f"head larger than {max_bytes} bytes")
        if not buf.startswith(b"HTTP/1."[: len(buf) - start], start):
            raise _bad_response("not an HTTP/1.x status line")
        return None
    whole = bytes(buf[start : end + 4])
    raw = whole[:-4]
    pairs = raw.count(b"\r\n")
    # only CR, LF and forbidden control bytes survive: all of them must be CRLF pairs
    if len(raw.translate(None, _NOT_CTL)) != 2 * pairs:
        raise _bad_response("control byte, bare CR or bare LF in head")
    if pairs >= _MAX_HEADER_LINES:
        raise _bad_response("too many header lines")
    found = llhttp_response_head(whole)
    status, minor, framing = found if found is not None else own_response_head(raw)
    head = ResponseHead(status, minor, end + 4 - start, [])
    lengths: set[bytes] = set()
    codings: list[bytes] = []  # every Transfer-Encoding value, in order
    for name, value in framing:
        if name == b"content-length":
            if b"," in value:
                lengths.update(part.strip(b" \t") for part in value.split(b","))
            else:
                lengths.add(value)
        elif name == b"connection":
            _read_connection(head, value)
        elif name == b"set-cookie":
            head.set_cookies.append(value.decode("latin-1"))
        elif name == b"transfer-encoding":
            if not value:
                # a client may read the lines as one list and frame by a coding an
                # empty last line would hide (llhttp refuses it too)
                raise _bad_response("empty Transfer-Encoding")
            codings.append(value)  # one list, in order (RFC 9110 5.3, RFC 9112 6.1)
        else:  # keep-alive, proxy-connection
            head.connection_header = True
    if codings:
        tokens = _tokens(b",".join(codings).decode("latin-1"))
        head.chunked = bool(tokens) and tokens[-1] == "chunked"
        head.other_coding = not head.chunked
    if lengths:
        if head.chunked or head.other_coding:
            raise _bad_response("both Content-Length and Transfer-Encoding")
        if len(lengths) != 1:
            raise _bad_response("differing Content-Length values")
        (value,) = lengths
        if not (value.isdigit() and len(value) <= 18):
            raise _bad_response("invalid Content-Length")
        head.content_length = int(value)
    return head


def response_body(head: ResponseHead, method: str) -> tuple[int, int]:
    """(kind, length) of a response's body, by RFC 9112 6.3, given its request's method."""
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


# BodyFramer states
_DATA = 0  # inside a Content-Length body or a chunk's data
_SIZE = 1  # reading a chunk-size line
_DATA_END = 2  # the CRLF after a chunk's data
_TRAILER = 3  # reading trailer lines up to the empty one
_DONE = 4


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
            elif b"\r" in line[:-2] or line[0] in b" \t" or b":" not in line:
                raise self._error("malformed trailer line")
        line.clear()
        return pos

    def _chunk_size(self, line: bytes) -> None:
        digits = line.split(b";", 1)[0].rstrip(b" \t")
        if not digits or len(digits) > 15 or not _HEX.issuperset(digits):
            raise self._error("invalid chunk size")
        if b"\r" in line or b"\n" in line:
            raise self._error("bare CR or LF in chunk-size line")
        size = int(digits, 16)
        if size == 0:
            self._state = _TRAILER
        else:
            self.remaining = size
            self._state = _DATA


# a Connection, Keep-Alive or Proxy-Connection line with the CRLF before it (a status or
# request line is never preceded by one)
_HOP_BY_HOP_LINE = re.compile(rb"\r\n(?:connection|keep-alive|proxy-connection):[^\r\n]*", re.I)


def without_connection_headers(raw: bytes) -> bytes:
    """A complete head without its Connection, Keep-Alive and Proxy-Connection lines.

    A proxy keeps or closes each side of a connection on its own (RFC 9110 7.6.1):
    a client's ``Connection: close`` must not close a pooled upstream, an
    application's must not close a client's keep-alive connection.
    """
    return _HOP_BY_HOP_LINE.sub(b"", raw)


def with_header(raw: bytes, line: bytes) -> bytes:
    """A complete head with one header ``line`` (ending in CRLF) after its first line
    (a request's empty lines before its request line skipped)."""
    start = 0
    while raw.startswith(b"\r\n", start):
        start += 2
    eol = raw.index(b"\r\n", start) + 2
    return raw[:eol] + line + raw[eol:]


# header names a server that maps "_" to "-" (CGI, older gunicorn) reads as framing
_UNDERSCORE_FRAMING = re.compile(rb"\r\n(?:transfer_encoding|content_length)[ \t]*:", re.IGNORECASE)
_UNDERSCORE_LINE = re.compile(rb"(?:transfer_encoding|content_length)[ \t]*:", re.IGNORECASE)


def upstream_hop_by_hop(raw: bytes, head: RequestHead, upgrade: bool) -> bytes:
    """A request head (already rewritten) as it goes to an application connection lb keeps.

    The client's Connection options are the client's (RFC 9110 7.6.1): a
    ``close`` must not close a pooled upstream, and options naming other fields
    (``Connection: keep-alive, X-Forwarded-For``) must not make a hop behind lb
    drop what lb added. So the Connection / Keep-Alive / Proxy-Connection lines
    go unless they say no more than ``keep-alive`` (the usual browser head, sent
    as is); an upgrade request keeps exactly ``Connection: upgrade``. Fields
    spelled ``Transfer_Encoding`` / ``Content_Length`` are dropped (nginx drops
    every underscore name by default): a server that maps ``_`` to ``-`` would
    frame the body otherwise than lb did.
    """
    if _UNDERSCORE_FRAMING.search(raw) is not None:
        lines = raw.split(b"\r\n")
        kept = [lines[0]] + [line for line in lines[1:] if _UNDERSCORE_LINE.match(line) is None]
        raw = b"\r\n".join(kept)
    value = head.header("connection")
    if value is None:
        return raw
    tokens = set(_tokens(value))
    if upgrade and head.method != "CONNECT":
        if tokens == {"upgrade"}:
            return raw
        return with_header(without_connection_headers(raw), b"Connection: upgrade\r\n")
    if tokens <= {"keep-alive"}:
        return raw
    stripped = without_connection_headers(raw)
    if head.version != "HTTP/1.1" and "keep-alive" in tokens and "close" not in tokens:
        return with_header(stripped, b"Connection: keep-alive\r\n")  # HTTP/1.0 asks for it
    return stripped
