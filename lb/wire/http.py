"""HTTP/1.x head codec: request-head parsing, Set-Cookie insertion, canned error responses.

Pure and bounded: no sockets, no asyncio, no clock. A short buffer is "need more"
(``None``); a head that cannot be served is exactly one ``HttpError`` carrying the
status to answer. This module never parses bodies and never changes body bytes.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import NoReturn

from lb.errors import HttpError

__all__ = [
    "MAX_HEADER_LINES",
    "RequestHead",
    "RequestHeadScanner",
    "ResponseCookieInserter",
    "SetCookieWatcher",
    "error_response",
    "parse_request_head",
    "parse_set_cookie",
]

MAX_HEADER_LINES = 100
"""More header lines than this in one request head is a 400."""

_MAX_LEADING_EMPTY_LINES = 2
_VERSIONS = frozenset(("HTTP/1.0", "HTTP/1.1"))

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Every byte but the control bytes (HT excepted): translate(None, _NOT_CTL) keeps
# only control bytes, so CR/LF pairing and forbidden CTLs are checked in one pass.
_NOT_CTL = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100)) + b"\t"
_TARGET_BAD = re.compile(r"[\x00-\x20\x7f]")
_TOKEN_BYTES = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]*")

_Buffer = bytes | bytearray


@dataclass(slots=True)
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
    if len(raw.translate(None, _NOT_CTL)) != 2 * pairs:
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


_LEAD_BYTES = 2 * _MAX_LEADING_EMPTY_LINES + 2


def _skip_empty_lines(buf: _Buffer, n: int) -> int:
    """Where the request line starts in ``buf[:n]``: after up to two empty lines.
    Raises 400 if a third empty line follows within ``buf[:n]``."""
    pos = 0
    while pos < 2 * _MAX_LEADING_EMPTY_LINES and pos + 2 <= n and buf.startswith(b"\r\n", pos):
        pos += 2
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
            self._head = _parse_complete(buf[pos:end], end + 4)
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

    This is a one-shot scan: a caller that calls it again after every read of a
    growing buffer re-reads the buffer every time; ``RequestHeadScanner`` gives the
    same answers and reads each byte once. ValueError if ``max_bytes`` < 0.
    """
    if type(max_bytes) is int and max_bytes >= 0:  # the common case: a whole head
        n = min(len(data), max_bytes)
        pos = _skip_empty_lines(data, n) if data.startswith(b"\r\n") else 0
        end = data.find(b"\r\n\r\n", pos, n)
        if end >= 0:
            return _parse_complete(data[pos:end], end + 4)
    return RequestHeadScanner(max_bytes).scan(data)


# -- response side -------------------------------------------------------------------

_DIGITS = frozenset(b"0123456789")
# Allowed bytes at each position of the first 13 bytes of "HTTP/1.x NNN[ \r]".
_STATUS_PREFIX: tuple[frozenset[int], ...] = (
    *(frozenset((byte,)) for byte in b"HTTP/1."),
    _DIGITS,
    frozenset(b" "),
    frozenset(b"12345"),
    _DIGITS,
    _DIGITS,
    frozenset(b" \r"),
)
_STATUS_LINE = re.compile(rb"HTTP/1\.[0-9] ([1-5][0-9][0-9])(?: [^\x00-\x08\x0a-\x1f\x7f]*)?")


def _status_prefix_ok(buf: _Buffer, start: int) -> bool:
    head = buf[start : start + len(_STATUS_PREFIX)]
    return all(byte in allowed for byte, allowed in zip(head, _STATUS_PREFIX, strict=False))


def _has_bare_lf(buf: _Buffer, start: int, end: int) -> bool:
    """Whether an LF in ``buf[start:end]`` lacks the CR before it."""
    return buf.count(b"\n", start, end) != buf.count(b"\r\n", max(start - 1, 0), end)


class ResponseCookieInserter:
    """Insert one ``Set-Cookie`` header into the first final response head of a stream.

    The header goes right after the status line of the first response whose status
    is 200 or more; interim 1xx heads pass through unchanged (101 Switching
    Protocols ends the search: what follows is not HTTP). A stream that does not
    start like ``HTTP/1.x NNN``, uses bare LF line ends, or whose head does not end
    within ``max_head_bytes`` passes through unchanged. Either way the inserter is
    then ``done`` and ``feed`` returns its argument itself. Body bytes are never
    looked at.
    """

    __slots__ = ("_buf", "_done", "_eol", "_inserted", "_line", "_max", "_scanned", "_status")

    def __init__(self, set_cookie: str, max_head_bytes: int = 65536) -> None:
        """``set_cookie`` is the header value; ValueError if it holds CR, LF or other
        control bytes or non-Latin-1 characters, or if ``max_head_bytes`` < 16."""
        try:
            value = set_cookie.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("Set-Cookie value must be Latin-1") from None
        if value.translate(None, _NOT_CTL):
            raise ValueError("Set-Cookie value must not contain control characters")
        if max_head_bytes < 16:
            raise ValueError("max_head_bytes must be at least 16")
        self._line = b"Set-Cookie: " + value + b"\r\n"
        self._max = max_head_bytes
        self._buf = bytearray()  # the start of an incomplete head, between feeds
        self._scanned = 0  # bytes of _buf already checked for bare LF and the head end
        self._eol = -1  # end of the current status line in _buf, once seen
        self._status = 0
        self._done = False
        self._inserted = False

    @property
    def done(self) -> bool:
        """True once the cookie was inserted or the inserter gave up."""
        return self._done

    @property
    def inserted(self) -> bool:
        """True once the Set-Cookie header went out."""
        return self._inserted

    def feed(self, data: bytes) -> bytes:
        """Bytes to send on now: possibly ``b""`` while a head is incomplete."""
        if self._done:
            return data
        if not data:
            return b""
        if self._buf:
            self._buf += data
            return self._advance(self._buf)
        return self._advance(data)

    def flush(self) -> bytes:
        """At the end of the response stream: whatever is buffered, unchanged."""
        rest = bytes(self._buf)
        self._buf = bytearray()
        self._done = True
        return rest

    def _finish(self, out: list[_Buffer], inserted: bool) -> bytes:
        self._buf = bytearray()
        self._done = True
        self._inserted = inserted
        return b"".join(out)

    def _advance(self, buf: _Buffer) -> bytes:
        """Scan ``buf`` (the buffered head start plus new bytes) from the last position."""
        out: list[_Buffer] = []
        base = 0  # where the current response head starts in buf
        while True:
            limit = base + self._max
            scanned = max(base, self._scanned)
            if self._eol < 0:
                eol = buf.find(b"\r\n", max(base, scanned - 1), limit)
                if eol < 0:
                    if (
                        not _status_prefix_ok(buf, base)
                        or _has_bare_lf(buf, scanned, len(buf))
                        or len(buf) >= limit
                    ):
                        out.append(buf[base:])
                        return self._finish(out, inserted=False)
                    break
                match = _STATUS_LINE.fullmatch(buf, base, eol)
                if match is None or match.group(1) == b"101":
                    out.append(buf[base:])
                    return self._finish(out, inserted=False)
                self._status = int(match.group(1))
                self._eol = eol
            end = buf.find(b"\r\n\r\n", max(self._eol, scanned - 3), limit)
            head_end = len(buf) if end < 0 else end + 4
            if _has_bare_lf(buf, max(scanned, self._eol), head_end):
                out.append(buf[base:])
                return self._finish(out, inserted=False)
            if end < 0:
                if len(buf) >= limit:
                    out.append(buf[base:])
                    return self._finish(out, inserted=False)
                break
            if self._status >= 200:
                split = self._eol + 2
                out += (buf[base:split], self._line, buf[split:])
                return self._finish(out, inserted=True)
            out.append(buf[base:head_end])  # an interim 1xx head
            base = head_end
            self._eol = -1
            if base == len(buf):
                break
        # keep the incomplete head, with positions relative to its start
        if base or buf is not self._buf:
            self._buf = bytearray(buf[base:])
        self._scanned = len(buf) - base
        if self._eol >= 0:
            self._eol -= base
        return b"".join(out)


# -- learning app cookies from responses ---------------------------------------------

_MAX_AGE_DIGITS = 18


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


def _max_age(attributes: dict[str, str]) -> int | None:
    """Max-Age in seconds (a negative one is 0), or None if absent or not a number."""
    raw = attributes.get("max-age")
    if raw is None:
        return None
    digits = raw[1:] if raw.startswith("-") else raw
    if not digits or len(digits) > _MAX_AGE_DIGITS or not (digits.isascii() and digits.isdigit()):
        return None
    return 0 if raw.startswith("-") else int(digits)


_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class SetCookieWatcher:
    """Observe a server->client stream for the app cookies of the first final response.

    ``feed`` looks at the bytes the caller forwards unchanged; it never returns or
    changes them and keeps at most the one incomplete header line between calls.
    After the first response head with a status of 200 or more (interim 1xx heads
    are skipped), ``found`` lists (name, value, max-age) of every ``Set-Cookie``
    header of that head whose cookie name is in ``names`` (exact, case-sensitive),
    in order; ``max-age`` is the Max-Age attribute in seconds, or None without
    one (Expires is not read). A deleted cookie shows as an empty value or a
    max-age of 0: the caller decides what to learn.

    The watcher gives up, with ``found`` empty, on a stream that does not start
    like ``HTTP/1.x NNN``, a bare LF, a head longer than ``max_head_bytes`` or
    a 101 response. Either way it is then ``done`` and ``feed`` returns at once.
    It never raises on bad input.
    """

    __slots__ = ("_done", "_found", "_head", "_line", "_max", "_names", "_pending", "_status")

    def __init__(self, names: Collection[str], max_head_bytes: int = 65536) -> None:
        """ValueError if ``max_head_bytes`` < 16."""
        if max_head_bytes < 16:
            raise ValueError("max_head_bytes must be at least 16")
        self._names = frozenset(names)
        self._max = max_head_bytes
        self._line = bytearray()  # an incomplete line carried over between feeds
        self._head = 0  # bytes of the current head before the current line
        self._status = 0  # 0 until the status line of the current head is read
        self._pending: list[tuple[str, str, int | None]] = []
        self._found: list[tuple[str, str, int | None]] = []
        self._done = not self._names

    @property
    def done(self) -> bool:
        """True once the first final head was read, or the watcher gave up."""
        return self._done

    @property
    def found(self) -> list[tuple[str, str, int | None]]:
        """(cookie name, value, max-age seconds or None) from the first final head."""
        return list(self._found)

    def feed(self, data: bytes) -> None:
        """Look at the next bytes of the stream (the caller forwards them unchanged)."""
        if self._done or not data:
            return
        pos = 0
        size = len(data)
        while not self._done:
            nl = data.find(b"\n", pos)
            if nl < 0:
                self._carry(data, pos, size)
                return
            if self._line:
                self._line += data[pos:nl]
                line = bytes(self._line)
                self._line.clear()
            else:
                line = data[pos:nl]
            pos = nl + 1
            self._head += len(line) + 1
            if self._head > self._max or not line.endswith(b"\r"):
                self._give_up()
                return
            self._on_line(line[:-1])
            if pos == size:
                return

    def _carry(self, data: bytes, pos: int, size: int) -> None:
        """Keep the incomplete line ``data[pos:]`` unless it already fails."""
        if self._head + len(self._line) + size - pos >= self._max:
            self._give_up()
            return
        self._line += data[pos:]
        if self._status == 0 and not _status_prefix_ok(self._line, 0):
            self._give_up()

    def _give_up(self) -> None:
        self._done = True
        self._line = bytearray()
        self._pending = []

    def _on_line(self, line: bytes) -> None:
        if self._status == 0:
            match = _STATUS_LINE.fullmatch(line)
            if match is None or match.group(1) == b"101":
                self._give_up()
                return
            self._status = int(match.group(1))
            return
        if not line:  # the end of a head
            if self._status >= 200:
                self._found = self._pending
                self._pending = []
                self._done = True
                self._line = bytearray()
            else:
                self._status = 0
                self._head = 0
            return
        if self._status < 200 or len(line) < 11 or line[:11].lower() != b"set-cookie:":
            return
        parsed = parse_set_cookie(line[11:].decode("latin-1"))
        if parsed is not None and parsed[0] in self._names:
            name, value, attributes = parsed
            self._pending.append((name, value, _max_age(attributes)))


# -- canned responses ----------------------------------------------------------------

_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _build_error_response(status: int, reason: str) -> bytes:
    body = f"{status} {reason}\n".encode("ascii")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


_ERROR_RESPONSES = {status: _build_error_response(status, r) for status, r in _REASONS.items()}


def error_response(status: int) -> bytes:
    """The complete response lb sends itself for ``status`` (400, 408, 413, 431,
    500, 502, 503, 504); ValueError for any other status."""
    try:
        return _ERROR_RESPONSES[status]
    except KeyError:
        raise ValueError(f"no canned response for status {status}") from None
