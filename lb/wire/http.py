"""HTTP/1.x head codec: request-head parsing, Set-Cookie values, canned error responses.

Pure and bounded: no sockets, no asyncio, no clock. A short buffer is "need more"
(``None``); a head that cannot be served is exactly one ``HttpError`` carrying the
status to answer. This module never parses bodies and never changes body bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, NoReturn, TypeVar, cast

from mypy_extensions import mypyc_attr

from lb.errors import HttpError

__all__ = [
    "FIELD_VCHAR",
    "MAX_HEADER_LINES",
    "NOT_CONTROL_BYTES",
    "RETRY_AFTER",
    "TCHAR",
    "RequestHead",
    "RequestHeadScanner",
    "c_pass_or",
    "empty_lines_before",
    "error_response",
    "list_tokens",
    "parse_request_head",
    "parse_set_cookie",
]

MAX_HEADER_LINES: Final = 100
"""More header lines than this in one request head is a 400."""

_MAX_LEADING_EMPTY_LINES: Final = 2
_VERSIONS: Final = frozenset(("HTTP/1.0", "HTTP/1.1"))

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN_NAMES: Final[set[str]] = set()  # cookie names RequestHead.cookie found to be tokens
_MAX_TOKEN_NAMES: Final = 64
# Every byte but the control bytes (HT excepted): translate(None, NOT_CONTROL_BYTES)
# keeps only control bytes, so CR/LF pairing and forbidden CTLs are checked in one pass.
NOT_CONTROL_BYTES = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t"
# regex classes over bytes (RFC 9110 5.6.2, 5.5): a token's characters; a field
# value's (no control byte but HT)
TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
FIELD_VCHAR = rb"[\t\x20-\x7e\x80-\xff]"
_TARGET_BAD = re.compile(r"[\x00-\x20\x7f]")
_TOKEN_BYTES = re.compile(TCHAR + rb"*")

_Buffer = bytes | bytearray


REWRITTEN_HEADERS = ("x-forwarded-for", "x-forwarded-proto", "forwarded")
"""The request headers lb writes itself, for every request (lower case)."""

VOUCHED_HEADERS = (
    "x-real-ip",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-url-scheme",
    "front-end-https",
)
"""Request headers an application may trust to name the client or the request as the
client sent it (its address, host, port, path prefix, scheme), when a proxy in front
of it vouches for them: lb does not write them; it passes them on from a trusted
proxy only (lower case)."""

FORWARDING_HEADERS = REWRITTEN_HEADERS + VOUCHED_HEADERS
"""Every request header that speaks of the client or the request as the client sent
it, which a client that is not a trusted proxy could forge (lower case)."""

# Header names that later steps act on, lower-cased, by what a head holding one needs:
# a Connection to take the client's options off (lb.wire.http1.upstream_hop_by_hop);
# a field naming a client or protocol, in any '-'/'_' spelling, to rewrite
# (lb.wire.forwarded); Content-Length / Transfer-Encoding spelled with '_', to drop;
# Keep-Alive / Proxy-Connection (hop-by-hop without a Connection line), to drop;
# Content-Length, whose values are counted (more than one is made one).
_CONNECTION_FIELD: Final = 1
_FORWARDED_FIELD: Final = 2
_UNDERSCORE_FRAMING_FIELD: Final = 3
_HOP_FIELD: Final = 4
_LENGTH_FIELD: Final = 5


_F = TypeVar("_F", bound=Callable[..., object])


def c_pass_or(name: str, twin: _F) -> _F:
    """The compiled build's C function ``name`` of lb.wire._headscan, which answers what
    ``twin`` answers (held to it by tests/unit/wire/test_headscan.py), or ``twin`` in
    the pure build, which has no C pass."""
    try:
        from lb.wire import _headscan
    except ImportError:
        return twin
    return cast(_F, getattr(_headscan, name))


def _spellings(name: str) -> list[str]:
    """``name`` with each '-' spelled '-' or '_' (every combination)."""
    found = [""]
    for part in name.split("-"):
        found = [f"{done}{sep}{part}" for done in found for sep in (("-", "_") if done else ("",))]
    return found


_NOTABLE_FIELDS: Final[dict[str, int]] = {
    "connection": _CONNECTION_FIELD,
    "content-length": _LENGTH_FIELD,
    "content_length": _UNDERSCORE_FRAMING_FIELD,
    "transfer_encoding": _UNDERSCORE_FRAMING_FIELD,
    "keep-alive": _HOP_FIELD,
    "proxy-connection": _HOP_FIELD,
}
for _name in FORWARDING_HEADERS:
    _NOTABLE_FIELDS.update(dict.fromkeys(_spellings(_name), _FORWARDED_FIELD))
# their lengths, for a quick test of each name: 9 to 18 but 13
assert {len(name) for name in _NOTABLE_FIELDS} == set(range(9, 19)) - {13}


def list_tokens(value: str) -> list[str]:
    """The members of a comma-separated header value (Connection, Transfer-Encoding),
    lower-cased, SP/HT stripped, empty members left out (RFC 9110 5.6.1)."""
    return [part.strip(" \t").lower() for part in value.split(",") if part.strip(" \t")]


@mypyc_attr(acyclic=True, free_list_len=1)  # one per request: reused
@dataclass(slots=True, init=False)  # __init__ written out: compiled, it stays native code
class RequestHead:
    """A parsed, validated HTTP/1.x request head."""

    method: str
    target: str
    version: str
    """``"HTTP/1.1"`` or ``"HTTP/1.0"``."""
    headers: list[tuple[str, str]]
    """In order; names as received, values stripped of surrounding SP/HT."""
    length: int
    """Bytes of the head, leading empty lines and the final CRLFCRLF included."""
    has_connection: bool
    """A Connection field is among ``headers``."""
    has_forwarded_fields: bool
    """A field of FORWARDING_HEADERS (X-Forwarded-For, Forwarded, X-Real-IP, ...;
    any case, any '-' spelled '_') is among ``headers``."""
    has_underscore_framing: bool
    """A ``Content_Length`` or ``Transfer_Encoding`` field (any case) is among ``headers``."""
    has_hop_fields: bool
    """A ``Keep-Alive`` or ``Proxy-Connection`` field (any case) is among ``headers``."""
    host_lines: int
    """How many ``Host`` fields (any case) are among ``headers``: RFC 9112 3.2 wants
    exactly one in an HTTP/1.1 request, at most one in any."""
    connection_options: list[str] | None
    """The options of every Connection line (one list, lower case), once
    lb.wire.http1.request_framing read them; None before."""
    length_values: int
    """How many Content-Length values are among ``headers``: its fields (any case), a
    comma list counting each member. The parse let more than one through only when all
    are equal; lb.wire.http1.upstream_hop_by_hop makes them one (RFC 9110 8.6)."""
    h2c: bool
    """An Upgrade field names ``h2c`` (lb.wire.http1.request_framing sets it): the
    upgrade is not passed on."""
    length_padded: bool
    """A Content-Length value starts with a 0 and is not ``0`` (``010``, ``0, 0``):
    lb.wire.http1.upstream_hop_by_hop writes it as one decimal value."""
    chunked: bool
    """The body is chunked (lb.wire.http1.request_framing sets it): upstream_hop_by_hop
    writes the Transfer-Encoding line as ``Transfer-Encoding: chunked`` unless it came
    so."""

    def __init__(
        self, method: str, target: str, version: str, headers: list[tuple[str, str]], length: int
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.length = length
        # one look at each name here saves a search of the head's bytes per step later
        connection = forwarded = underscore_framing = hop = padded = False
        hosts = lengths = 0
        for name, value in headers:
            size = len(name)
            if size == 4:
                if name == "Host" or name.lower() == "host":
                    hosts += 1
            elif 9 <= size <= 18 and size != 13:
                kind = _NOTABLE_FIELDS.get(name.lower(), 0)
                if kind == _CONNECTION_FIELD:
                    connection = True
                elif kind == _FORWARDED_FIELD:
                    forwarded = True
                elif kind == _UNDERSCORE_FRAMING_FIELD:
                    underscore_framing = True
                elif kind == _HOP_FIELD:
                    hop = True
                elif kind == _LENGTH_FIELD:
                    lengths += 1 + value.count(",")
                    if len(value) > 1 and value[0] == "0":
                        padded = True
        self.has_connection = connection
        self.has_forwarded_fields = forwarded
        self.has_underscore_framing = underscore_framing
        self.has_hop_fields = hop
        self.host_lines = hosts
        self.length_values = lengths
        self.length_padded = padded
        self.connection_options = None
        self.h2c = False
        self.chunked = False

    def header(self, name: str) -> str | None:
        """The value of the first header called ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if len(key) == len(wanted) and key.lower() == wanted:
                return value
        return None

    def cookies(self) -> dict[str, str]:
        """Cookies of every Cookie header; the first occurrence of a name wins.

        Pairs without ``=`` or whose name is not a token are skipped; values are
        kept as sent (no unquoting, no decoding).
        """
        found: dict[str, str] = {}
        for key, value in self.headers:
            if len(key) != 6 or key.lower() != "cookie":
                continue
            for pair in value.split(";"):
                name, eq, val = pair.partition("=")
                name = name.strip(" \t")
                if not eq or name in found:
                    continue
                if not (name.isalnum() and name.isascii()) and _TOKEN.fullmatch(name) is None:
                    continue
                found[name] = val.strip(" \t")
        return found

    def cookie(self, name: str) -> str | None:
        """``cookies().get(name)`` without building the dict: the value of the first
        pair called ``name`` (a token) in the Cookie headers, as sent; None if none."""
        if name not in _TOKEN_NAMES:
            if not name or (
                not (name.isalnum() and name.isascii()) and _TOKEN.fullmatch(name) is None
            ):
                return None  # cookies() keeps token names only
            if len(_TOKEN_NAMES) >= _MAX_TOKEN_NAMES:
                _TOKEN_NAMES.clear()
            _TOKEN_NAMES.add(name)  # an extractor asks for one name per request: checked once
        for key, value in self.headers:
            if len(key) != 6 or (key != "Cookie" and key.lower() != "cookie"):
                continue
            found = _cookie_in(value, name)
            if found is not None:
                return found
        return None

    @property
    def path(self) -> str:
        """The path of the target: origin-form before ``?``, the path part of an
        absolute-form target (``"/"`` if it has none), ``""`` for ``*`` and authority-form."""
        target = self.target
        if not target.startswith("/"):
            scheme_end = target.find("://")
            if scheme_end <= 0:
                return ""
            slash = target.find("/", scheme_end + 3)
            question = target.find("?", scheme_end + 3)
            if slash < 0 or 0 <= question < slash:
                return "/"
            target = target[slash:]
        return target.partition("?")[0]

    @property
    def query(self) -> str:
        """The part of the target after the first ``?``; ``""`` if none."""
        return self.target.partition("?")[2]


def _bad(reason: str) -> HttpError:
    return HttpError(400, reason)


_REQUEST_LINE = re.compile(r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) (HTTP/1\.[01])")


def _check_request_line(line: str) -> tuple[str, str, str]:
    match = _REQUEST_LINE.fullmatch(line)  # the usual case, in one pass
    if match is not None:
        return match.group(1), match.group(2), match.group(3)
    # which rule it breaks (each one raises)
    parts = line.split(" ")
    if len(parts) != 3:
        raise _bad("malformed request line")
    method, target, version = parts
    if _TOKEN.fullmatch(method) is None:
        raise _bad("method is not a token")
    if not target or _TARGET_BAD.search(target) is not None:
        raise _bad("empty request target or control/space byte in it")
    if version not in _VERSIONS:
        raise _bad("unsupported HTTP version")
    return method, target, version


def _raise_bad_bytes(raw: _Buffer) -> NoReturn:
    if b"\x00" in raw:
        raise _bad("NUL byte in request head")
    pairs = raw.count(b"\r\n")
    if raw.count(b"\n") != pairs or raw.count(b"\r") != pairs:
        raise _bad("bare CR or LF in request head")
    raise _bad("control byte in request head")


def _raise_bad_header_line(line: str) -> NoReturn:
    if not line or line[0] in " \t":
        raise _bad("obsolete line folding in header")
    name, colon, _ = line.partition(":")
    if not colon:
        raise _bad("header line without ':'")
    if name and name[-1] in " \t":
        raise _bad("whitespace between header name and ':'")
    raise _bad("header name is not a token")


def _parse_complete(raw: _Buffer, length: int) -> RequestHead:
    """Validate a complete head: ``raw`` runs from the request line to just before the
    final CRLFCRLF; ``length`` is the head's length with leading empty lines and CRLFCRLF."""
    pairs = raw.count(b"\r\n")
    # Only CR, LF and forbidden control bytes survive the translate; all CR/LF paired.
    if len(raw.translate(None, NOT_CONTROL_BYTES)) != 2 * pairs:
        _raise_bad_bytes(raw)
    if pairs > MAX_HEADER_LINES:
        raise _bad(f"more than {MAX_HEADER_LINES} header lines")

    lines = raw.decode("latin-1").split("\r\n")
    method, target, version = _check_request_line(lines[0])
    headers: list[tuple[str, str]] = []
    lengths: set[str] = set()
    chunked = False
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not (
            (name.isascii() and name.replace("-", "").isalnum())
            or _TOKEN.fullmatch(name) is not None
        ):
            _raise_bad_header_line(line)
        value = value.strip(" \t")
        headers.append((name, value))
        if len(name) == 14 and name.lower() == "content-length":
            lengths.update(part.strip(" \t") for part in value.split(","))
        elif len(name) == 17 and name.lower() == "transfer-encoding":
            chunked = True

    if lengths:
        if chunked:
            raise _bad("both Content-Length and Transfer-Encoding")
        numbers: set[int] = set()
        for part in lengths:
            if not (part.isascii() and part.isdigit() and len(part) <= 18):
                raise _bad("invalid Content-Length")
            numbers.add(int(part))
        if len(numbers) != 1:
            raise _bad("differing Content-Length values")
    return RequestHead(method, target, version, headers, length)


# The usual head in one match of the buffer's bytes, up to its final CRLFCRLF: a
# request line, then up to MAX_HEADER_LINES lines of a token name, ':' and a value of
# no control byte (HT allowed) that does not end in SP/HT (possessive: linear, never
# backtracks). A head it matches passes every check of _parse_complete but the
# Content-Length ones; a head it does not match is left to _parse_complete.
_FAST_HEAD = re.compile(
    TCHAR
    + rb"++ ([^\x00-\x20\x7f]++) HTTP/1\.[01]"
    + rb"(?:\r\n"
    + TCHAR
    + rb"++:"
    + FIELD_VCHAR
    + rb"*+(?<![ \t]))"
    + b"{0,%d}+" % MAX_HEADER_LINES
    + rb"\r\n\r\n"
)
# one header line of a head _FAST_HEAD matched: (name, value without leading SP/HT)
_FAST_FIELD = re.compile(r"\r\n([^:]++):[ \t]*+([^\r]*+)")


#: (length, method, target, minor version, header (name, value) pairs) of a head the
#: quick pass takes: what `_regex_scan_request` and the C pass answer
_Scanned = tuple[int, str, str, int, list[tuple[str, str]]]


def _regex_scan_request(buf: _Buffer, pos: int, stop: int) -> _Scanned | None:
    """The quick pass's scan of ``buf[pos:stop]`` by two regexes (the pure build's; the
    compiled build's C pass, lb.wire._headscan.scan_request, answers the same): None
    unless _FAST_HEAD matches there; the length is the index after the head's CRLFCRLF.
    A negative ``pos`` is 0, as re's match takes it (the method is sliced from ``pos``)."""
    match = _FAST_HEAD.match(buf, pos, stop)
    if match is None:
        return None
    if pos < 0:
        pos = 0
    length = match.end()
    text = (buf if length == len(buf) else buf[:length]).decode("latin-1")
    target_at, target_end = match.span(1)
    headers: list[tuple[str, str]] = _FAST_FIELD.findall(text, target_end + 9, length - 4)
    minor = 1 if buf[target_end + 8] == 0x31 else 0
    return length, text[pos : target_at - 1], text[target_at:target_end], minor, headers


def _py_cookie_in(value: str, name: str) -> str | None:
    """The value of the first pair called ``name`` in one Cookie field's ``value``, as
    sent (SP/HT around it stripped); None if none. The pure build's search (the compiled
    build's C one, lb.wire._headscan.cookie_in, answers the same).

    Each place ``name`` is found is the pair's name if only SP/HT stand between it and
    the pair's start (the value's start or a ';'), and between it and an '=' before
    the pair's end; found in order, so the first such pair wins. A place that is not
    the pair's name leaves no later one in that pair that could be (something else
    stands before it): the search goes on after the pair, so each character is looked
    at a bounded number of times.
    """
    size = len(name)
    if not size:
        return None  # no pair is called "" (RequestHead.cookie asks for tokens only)
    at = value.find(name)
    while at >= 0:
        after = at + size
        end = value.find(";", after)
        if end < 0:
            end = len(value)
        eq = value.find("=", after, end)
        if eq >= 0 and (eq == after or not value[after:eq].strip(" \t")):
            start = value.rfind(";", 0, at) + 1 if at else 0
            if start == at or not value[start:at].strip(" \t"):
                return value[eq + 1 : end].strip(" \t")
        at = value.find(name, end + 1)
    return None


_cookie_in: Final = c_pass_or("cookie_in", _py_cookie_in)


# Final: compiled, a C static, not a look-up in the module's dict per head
_scan_request: Final = c_pass_or("scan_request", _regex_scan_request)


def _parse_fast(buf: _Buffer, pos: int, stop: int) -> RequestHead | None:
    """The head at ``buf[pos:stop]`` (``pos`` after the empty lines) as _parse_complete
    parses it, or None where this quick pass does not decide: no head _FAST_HEAD
    matches there, or Content-Length / Transfer-Encoding lines other than equal
    plain lengths or codings without a length (the reference decides those)."""
    scanned = _scan_request(buf, pos, stop)
    if scanned is None:
        return None
    length, method, target, minor, headers = scanned
    content_length = -1
    coded = False
    for name, value in headers:
        size = len(name)
        if size == 14 and name.lower() == "content-length":
            if not (value.isascii() and value.isdigit() and len(value) <= 18):
                return None
            number = int(value)
            if content_length >= 0 and number != content_length:
                return None
            content_length = number
        elif size == 17 and name.lower() == "transfer-encoding":
            coded = True
    if coded and content_length >= 0:
        return None
    return RequestHead(method, target, "HTTP/1.1" if minor else "HTTP/1.0", headers, length)


_LEAD_BYTES: Final = 2 * _MAX_LEADING_EMPTY_LINES + 2


def empty_lines_before(buf: _Buffer, n: int) -> int:
    """Bytes of the empty lines (CRLF) at the start of ``buf[:n]``, up to the two a
    request line may follow (RFC 9112 2.2: a server ignores them)."""
    pos = 0
    while pos < 2 * _MAX_LEADING_EMPTY_LINES and pos + 2 <= n and buf.startswith(b"\r\n", pos):
        pos += 2
    return pos


def _skip_empty_lines(buf: _Buffer, n: int) -> int:
    """Where the request line starts in ``buf[:n]``: after up to two empty lines.
    Raises 400 if a third empty line follows within ``buf[:n]``."""
    pos = empty_lines_before(buf, n)
    if pos + 2 <= n and buf.startswith(b"\r\n", pos):
        raise _bad("too many empty lines before the request line")
    return pos


class RequestHeadScanner:
    """Scan one growing buffer for a request head, looking at each byte a bounded
    number of times.

    Call ``scan(buf)`` after every read with the whole buffer received so far
    (``bytes`` or ``bytearray``; later calls only append to it). The answer is the
    one ``parse_request_head(buf, max_bytes)`` gives: None while more bytes are
    needed, the RequestHead, or HttpError(400 / 431). The scanner remembers where
    it stopped (``scanned``): bytes before ``scanned - 3`` are never read again
    until the head is complete, when the head is parsed once. So the work over a
    whole head is linear in the bytes received, whatever ``max_bytes`` is and
    however the bytes were split into reads. Once decided, the scanner keeps its
    answer (returns the same head, raises the same status) whatever the buffer
    holds next.
    """

    __slots__ = (
        "_eol",
        "_error",
        "_head",
        "_max",
        "_method_at",
        "_method_done",
        "_pos",
        "_pos_final",
        "examined",
        "scanned",
    )

    def __init__(self, max_bytes: int) -> None:
        """ValueError unless ``max_bytes`` is an int >= 0."""
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
            raise ValueError(f"max_bytes must be an int >= 0, got {max_bytes!r}")
        self._max = max_bytes
        self.scanned = 0
        """Bytes at the start of the buffer (within ``max_bytes``) already scanned."""
        self.examined = 0
        """Total length of the buffer regions looked at so far (for tests and metrics)."""
        self._pos = 0  # where the request line starts, after up to two empty lines
        self._pos_final = False
        self._eol = -1  # the end of the request line once seen (and checked)
        self._method_at = 0  # the method is checked up to here
        self._method_done = False
        self._head: RequestHead | None = None
        self._error: HttpError | None = None

    def scan(self, buf: _Buffer) -> RequestHead | None:
        """None while more bytes are needed; the head; or HttpError(400 or 431).

        ValueError if ``buf`` is shorter than what was scanned already (the caller
        must pass the same buffer, only ever appended to).
        """
        if self._head is not None:
            return self._head
        if self._error is not None:
            raise HttpError(self._error.status, self._error.reason)
        if len(buf) < self.scanned:
            raise ValueError("the buffer shrank: scan() takes one growing buffer")
        try:
            return self._scan(buf)
        except HttpError as exc:
            self._error = exc
            raise

    def _scan(self, buf: _Buffer) -> RequestHead | None:
        size = len(buf)
        limit = self._max
        n = min(size, limit)  # the window: nothing beyond max_bytes is ever looked at
        start = self.scanned
        if n == start:
            if size >= limit:
                raise HttpError(431, f"request head larger than {limit} bytes")
            return None
        pos = self._pos
        if not self._pos_final:
            pos = _skip_empty_lines(buf, n)
            self.examined += min(n, _LEAD_BYTES)
            self._pos = pos
            self._pos_final = n >= pos + 2  # the two bytes after the empty lines are in

        back = max(start - 3, 0)  # a CRLFCRLF may straddle the previous end
        self.examined += n - back
        end = buf.find(b"\r\n\r\n", max(pos, back), n)
        if end >= 0:
            self.examined += end - pos
            head = _parse_fast(buf, pos, end + 4)
            self._head = head if head is not None else _parse_complete(buf[pos:end], end + 4)
            return self._head

        # fail early on an incomplete head that can never become valid
        if buf.find(b"\x00", start, n) >= 0:
            raise _bad("NUL byte in request head")
        before = max(start - 1, 0)  # a CRLF may straddle the previous end
        pairs = buf.count(b"\r\n", before, n)
        if buf.count(b"\n", start, n) != pairs:
            raise _bad("bare LF in request head")
        # every CR but a last one must be followed by LF (the last may still get one)
        if buf.count(b"\r", before, n - 1) != pairs:
            raise _bad("bare CR in request head")
        if self._eol < 0:
            eol = buf.find(b"\r\n", max(pos, before), n)
            if eol >= 0:
                self.examined += eol - pos
                _check_request_line(bytes(buf[pos:eol]).decode("latin-1"))
                self._eol = eol
                self._method_done = True
            elif not self._method_done:
                self._check_method(buf, pos, n)
        if size >= limit:
            raise HttpError(431, f"request head larger than {limit} bytes")
        self.scanned = n
        return None

    def _check_method(self, buf: _Buffer, pos: int, n: int) -> None:
        """The method read so far, up to its space, must be a token."""
        begin = max(pos, self._method_at)
        space = buf.find(b" ", begin, n)
        stop = n if space < 0 else space
        if space < 0 and buf[n - 1] == 0x0D:
            stop -= 1  # a last CR may be the end of an empty line or of a bad request line
        if _TOKEN_BYTES.fullmatch(buf, begin, stop) is None or space == pos:
            raise _bad("method is not a token")
        self._method_at = stop
        self._method_done = space >= 0


def parse_request_head(data: _Buffer, max_bytes: int) -> RequestHead | None:
    """Parse the request head at the start of ``data``.

    Returns None when more bytes are needed. Raises ``HttpError(431)`` when no
    complete head fits in ``max_bytes`` (a buffer of ``max_bytes`` or more without
    a head end in its first ``max_bytes`` bytes) and ``HttpError(400)`` for a
    malformed head. Up to two empty lines before the request line are skipped and
    counted in ``length``. Nothing beyond the first ``max_bytes`` bytes and nothing
    after the head is looked at, so once a buffer is decided (a head, 400 or 431)
    every longer buffer that starts with it is decided the same way.

    A usual head is parsed by one quick pass over the buffer's bytes (its end,
    control bytes, request line and header lines: one possessive regex match and
    one findall of its fields, or the compiled build's C scan, which answers the
    same); any other head (a bad one, unusual Content-Length or
    Transfer-Encoding lines) by the full check, which gives the reason.

    This is a one-shot scan: a caller that calls it again after every read of a
    growing buffer re-reads the buffer every time; ``RequestHeadScanner`` gives the
    same answers and reads each byte once. ValueError if ``max_bytes`` < 0.
    """
    if type(max_bytes) is int and max_bytes >= 0:  # the common case: a whole head
        n = min(len(data), max_bytes)
        # a CR first is rare: the skip only then (bytearray.startswith parses its
        # arguments as a tuple, which costs more than the head's C scan)
        pos = _skip_empty_lines(data, n) if n and data[0] == 13 else 0
        head = _parse_fast(data, pos, n)
        if head is not None:
            return head
        end = data.find(b"\r\n\r\n", pos, n)
        if end >= 0:
            return _parse_complete(data[pos:end], end + 4)
    return RequestHeadScanner(max_bytes).scan(data)


# -- learning app cookies from responses ---------------------------------------------


def parse_set_cookie(value: str) -> tuple[str, str, dict[str, str]] | None:
    """A ``Set-Cookie`` header value -> (name, value, attributes), or None if unusable.

    The name must be a token; the value is kept as sent (surrounding SP/HT
    stripped, quotes kept: the same spelling a client sends back in ``Cookie``).
    Attribute names are lower-cased, flags (``HttpOnly``, ``Secure``) map to
    ``""``, and the last occurrence of an attribute wins. Returns None for a
    pair without ``=``, a bad name, or control characters in the pair. Never
    raises; linear in the length of ``value``.
    """
    if not isinstance(value, str):
        return None
    pair, _, rest = value.partition(";")
    name, eq, cookie = pair.partition("=")
    name = name.strip(" \t")
    cookie = cookie.strip(" \t")
    if not eq or _TOKEN.fullmatch(name) is None or _CTL.search(cookie) is not None:
        return None
    attributes: dict[str, str] = {}
    if rest:
        for part in rest.split(";"):
            key, _, val = part.partition("=")
            key = key.strip(" \t").lower()
            if key:
                attributes[key] = val.strip(" \t")
    return name, cookie, attributes


_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


# -- canned responses ----------------------------------------------------------------

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


RETRY_AFTER: Final = 1
"""Seconds a 503 tells its client to wait (``Retry-After``, RFC 9110 10.2.3). Every 503
lb answers is a condition that passes: a full node or flow table, a home whose link is
not up (links are tried again at least every second, lb.node.peers.RECONNECT_MAX), the
sessions a node that hears no peer holds for them (the hold ends when a link is up)."""


def _build_error_response(status: int, reason: str) -> bytes:
    body = f"{status} {reason}\n".encode("ascii")
    retry = f"Retry-After: {RETRY_AFTER}\r\n" if status == 503 else ""
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"{retry}"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


_ERROR_RESPONSES = {status: _build_error_response(status, r) for status, r in _REASONS.items()}


def error_response(status: int) -> bytes:
    """The complete response lb sends itself for ``status`` (400, 408, 413, 431,
    500, 501, 502, 503, 504; a 503 with ``Retry-After``); ValueError for any other
    status."""
    try:
        return _ERROR_RESPONSES[status]
    except KeyError:
        raise ValueError(f"no canned response for status {status}") from None
