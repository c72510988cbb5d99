"""Response heads: what a proxy needs of an application's response head.

``parse_response_head`` reads one response head from the bytes an upstream
sent (bounded by ``max_bytes``; nothing after the head is looked at) and gives
a ``ResponseHead``: status, version, the head's length, its Set-Cookie values
and the lines framing depends on (Content-Length, Transfer-Encoding,
Connection). lb.wire.http1 decides the body from it.

The usual head is decided by one possessive regex match of the buffer's bytes
(`_fast_response_head`: the head's end, control bytes, status line and header
lines in one pass, then the framing lines by one findall), without copying the
head; it accepts exactly what the reference accepts and answers as the full
check does (a property test holds the two together). In the compiled build the
scan is the C one of lb.wire._headscan, which answers what the two regexes
answer (tests/unit/wire/test_headscan.py), one pass over the head's bytes. What it does not decide
(a bad or incomplete head, unusual framing) goes to the full check
(`_checked_response_head`): llhttp (httptools), then this module's own scanner
(`own_response_head`), the reference, for every head llhttp refuses; where
llhttp answers, its answer is the reference's (a differential property test).

Pure and bounded: no sockets, no asyncio, no clock. "Need more data" is None;
a head that cannot be framed is HttpError(502).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import httptools
from mypy_extensions import mypyc_attr

from lb.errors import HttpError
from lb.wire.http import FIELD_VCHAR, NOT_CONTROL_BYTES, TCHAR, c_pass_or, list_tokens

__all__ = [
    "ResponseHead",
    "llhttp_response_head",
    "own_response_head",
    "parse_response_head",
]

_MAX_HEADER_LINES: Final = 200
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")
# a whole response head: the status line, then header lines (a token, ':', a value);
# control bytes are refused before it runs, so [^\r\n] is any allowed byte
_RESPONSE_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([1-5][0-9][0-9])(?: [^\r\n]*)?" + rb"(?:\r\n" + TCHAR + rb"+:[^\r\n]*)*"
)
# the header lines framing depends on, in a lowered head
_FRAMING_LINE = re.compile(
    rb"\r\n(content-length|transfer-encoding|connection|set-cookie|keep-alive|proxy-connection)"
    rb":([^\r\n]*)"
)


@mypyc_attr(acyclic=True, free_list_len=1)  # one per response: reused
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
    # Content-Length came otherwise than as one value of plain decimal digits: more than
    # one (equal) value, in a list or on several lines, or with leading zeros ("010"),
    # which a client reading it as C's strtol(value, NULL, 0) takes for octal; made one
    # decimal line (lb.wire.http1.with_one_content_length)
    length_respelled: bool

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
        self.length_respelled = False


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
    rb"HTTP/1\.[01] [1-5][0-9][0-9](?: "
    + FIELD_VCHAR
    + rb"*+)?(?:\r\n"
    + TCHAR
    + rb"++:"
    + FIELD_VCHAR
    + rb"*+)"
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
    # the usual spellings as they are; bytes.lower() is a method call through Python
    lowered = value if value == b"keep-alive" or value == b"close" else value.lower()
    if lowered == b"keep-alive":
        head.keep_alive = True
    elif lowered == b"close":
        head.close = True
    else:
        tokens = list_tokens(value.decode("latin-1"))
        head.close = head.close or "close" in tokens
        head.keep_alive = head.keep_alive or "keep-alive" in tokens


# The kinds of the framing lines the quick pass gives (one byte each, the C pass's too):
# a kind, not the name as sent, so no name is made an object per line
_LENGTH: Final = 0x4C  # "L": Content-Length
_CODING: Final = 0x54  # "T": Transfer-Encoding
_CONNECTION: Final = 0x43  # "C": Connection
_COOKIE: Final = 0x53  # "S": Set-Cookie
_FRAMING_KINDS: Final = {
    b"content-length": _LENGTH,
    b"transfer-encoding": _CODING,
    b"connection": _CONNECTION,
    b"set-cookie": _COOKIE,
    b"keep-alive": 0x4B,  # "K"
    b"proxy-connection": 0x50,  # "P"
}

#: (end of the head, the kinds of its framing lines, their values) of a head the quick
#: pass takes: what `_regex_scan_response` and the C pass answer
_Scanned = tuple[int, bytes, list[bytes]]


def _regex_scan_response(buf: bytes | bytearray, start: int, stop: int) -> _Scanned | None:
    """The quick pass's scan of ``buf[start:stop]`` by two regexes (the pure build's; the
    compiled build's C pass, lb.wire._headscan.scan_response, answers the same): None
    unless _FAST_RESPONSE matches there; the end is the index after the head's CRLFCRLF;
    then one byte per framing line, its kind (_FRAMING_KINDS), and the lines' values
    (without leading SP/HT), in order."""
    match = _FAST_RESPONSE.match(buf, start, stop)
    if match is None:
        return None
    end = match.end()
    kinds = bytearray()
    values: list[bytes] = []
    for name, value in _FAST_FRAMING.findall(buf, start, end - 2):
        kinds.append(_FRAMING_KINDS[name.lower()])
        values.append(value)
    return end, bytes(kinds), values


# Final: compiled, a C static, not a look-up in the module's dict per head
_scan_response: Final = c_pass_or("scan_response", _regex_scan_response)


def _plain_length(value: bytes) -> int:
    """The number a Content-Length value of 1 to 18 ASCII digits spells (what
    ``int(value)`` gives once ``value.isdigit() and len(value) <= 18``); -1 for any
    other value. A loop over the bytes: both calls go through Python compiled."""
    size = len(value)
    if not 0 < size <= 18:
        return -1
    number = 0
    for i in range(size):
        digit = value[i] - 48
        if not 0 <= digit <= 9:
            return -1
        number = number * 10 + digit
    return number


def _fast_response_head(buf: bytes | bytearray, start: int, stop: int) -> ResponseHead | None:
    """The response head at ``buf[start:stop]`` as the reference answers it, or None where
    this quick pass does not decide: no head _FAST_RESPONSE matches there, or a
    Content-Length that is not plain digits, differs, or comes with a Transfer-Encoding,
    or an empty Transfer-Encoding (the full check decides those)."""
    scanned = _scan_response(buf, start, stop)
    if scanned is None:
        return None
    end, kinds, values = scanned
    if isinstance(buf, bytes):  # the usual case (a head in one read): indexed natively
        status = buf[start + 9] * 100 + buf[start + 10] * 10 + buf[start + 11] - 5328  # 48 * 111
        minor = buf[start + 7] - 48
    else:
        status = buf[start + 9] * 100 + buf[start + 10] * 10 + buf[start + 11] - 5328
        minor = buf[start + 7] - 48
    head = ResponseHead(status, minor, end - start, [])
    if not values:
        return head
    content_length = -1
    first_length = b""
    codings: list[bytes] | None = None  # every Transfer-Encoding value, in order
    for i in range(len(values)):
        value = values[i]
        kind = kinds[i]
        last = len(value) - 1  # compiled, native (`if value` is a call through Python)
        if last >= 0 and (value[last] == 0x20 or value[last] == 0x09):
            value = value.rstrip(b" \t")
        if kind == _LENGTH:
            number = _plain_length(value)
            if number < 0:
                return None
            if content_length >= 0:
                if value != first_length:  # the reference compares them as sent: 7 != 007
                    return None
                head.length_respelled = True  # a second equal line
            else:
                first_length = value
                content_length = number
                if value[0] == 0x30 and len(value) > 1:  # "010", "00": leading zeros
                    head.length_respelled = True
        elif kind == _CODING:
            if not value:
                return None
            if codings is None:
                codings = []
            codings.append(value)
        elif kind == _COOKIE:
            head.set_cookies.append(value.decode("latin-1"))
        elif kind == _CONNECTION:
            _read_connection(head, value)
        else:  # keep-alive, proxy-connection
            head.connection_header = True
    if codings:
        if content_length >= 0:
            return None
        tokens = list_tokens(b",".join(codings).decode("latin-1"))
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
    if len(raw.translate(None, NOT_CONTROL_BYTES)) != 2 * pairs:
        raise _bad_response("control byte, bare CR or bare LF in head")
    if pairs >= _MAX_HEADER_LINES:
        raise _bad_response("too many header lines")
    found = llhttp_response_head(whole)
    status, minor, framing = found if found is not None else own_response_head(raw)
    head = ResponseHead(status, minor, end + 4 - start, [])
    lengths: set[bytes] = set()
    values = 0  # Content-Length values: lines, and the members of a list
    codings: list[bytes] = []  # every Transfer-Encoding value, in order
    for name, value in framing:
        if name == b"content-length":
            if b"," in value:
                parts = value.split(b",")
                values += len(parts)
                lengths.update(part.strip(b" \t") for part in parts)
            else:
                values += 1
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
        tokens = list_tokens(b",".join(codings).decode("latin-1"))
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
        head.length_respelled = values > 1 or (len(value) > 1 and value.startswith(b"0"))
    return head
