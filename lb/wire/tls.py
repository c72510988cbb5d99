"""TLS handshake reading for passthrough listeners: the ClientHello and the ServerHello.

Pure and bounded: no sockets, no asyncio, no clock, no cryptography. lb never
terminates TLS here; it only reads the cleartext start of a handshake.

``parse_client_hello(data, max_bytes)`` reads the first client bytes (TLS records,
however they were split into records and TCP segments) and returns a
``ClientHello``, or ``None`` for "need more data", or raises exactly one
``TlsError`` for bytes that cannot start a TLS handshake.

``ServerHelloWatcher`` is fed the server->client stream and learns what a TLS 1.2
server says in cleartext (session id, NewSessionTicket). It never raises, never
copies the stream and stops by itself. Spec: docs/tls.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from lb.errors import TlsError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "MAX_RECORD_LENGTH",
    "TLS13",
    "ClientHello",
    "ServerHelloInfo",
    "ServerHelloWatcher",
    "parse_client_hello",
]

DEFAULT_MAX_BYTES = 65536
"""Default bound on the bytes a ClientHello (or a ServerHello watch) may take."""

MAX_RECORD_LENGTH = 2**14 + 2048
"""The largest record body accepted (the TLS 1.2 limit for protected records)."""

TLS13 = 0x0304
"""The TLS 1.3 version number, as in supported_versions."""

_RECORD_HEADER = 5
_HANDSHAKE_HEADER = 4

_CT_CHANGE_CIPHER_SPEC = 20
_CT_ALERT = 21
_CT_HANDSHAKE = 22
_CT_APPLICATION_DATA = 23

_HS_CLIENT_HELLO = 1
_HS_SERVER_HELLO = 2
_HS_NEW_SESSION_TICKET = 4

_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SESSION_TICKET = 35
_EXT_PRE_SHARED_KEY = 41
_EXT_SUPPORTED_VERSIONS = 43

_NAME_TYPE_HOST_NAME = 0
_MAX_SESSION_ID = 32
_MIN_PSK_BINDER = 32
# Printable ASCII without space: what a host name in SNI may hold.
_HOST_BYTES = frozenset(range(0x21, 0x7F))


@dataclass(frozen=True, slots=True)
class ClientHello:
    """The parts of a ClientHello that can identify a session or a service."""

    legacy_version: int
    random: bytes
    session_id: bytes
    """legacy_session_id: 0..32 bytes (random per connection when TLS 1.3 is offered)."""
    cipher_suites: tuple[int, ...]
    sni: str | None
    """host_name of the server_name extension (0), lower-cased ASCII; None if absent."""
    alpn: tuple[str, ...]
    """Protocol names of the ALPN extension (16), decoded as Latin-1 (total)."""
    supported_versions: tuple[int, ...]
    """The client's list in the supported_versions extension (43); () if absent."""
    session_ticket: bytes | None
    """Content of the session_ticket extension (35): None if absent, b"" if empty."""
    psk_identities: tuple[bytes, ...]
    """Identities of the pre_shared_key extension (41), in order; () if absent."""
    extensions: tuple[int, ...]
    """Extension types in the order sent (GREASE values included)."""
    length: int
    """Bytes of the record stream up to the end of the ClientHello message."""

    @property
    def offers_tls13(self) -> bool:
        """The client lists TLS 1.3 in supported_versions."""
        return TLS13 in self.supported_versions


@dataclass(frozen=True, slots=True)
class ServerHelloInfo:
    """What a server said in cleartext about the session it set up."""

    version: int
    """Negotiated: the supported_versions extension (43) if present, else legacy_version."""
    session_id: bytes
    """The ServerHello's session id (meaningless in TLS 1.3: an echo of the client's)."""
    new_session_ticket: bytes | None
    """The TLS 1.2 NewSessionTicket ticket, if one was seen before ChangeCipherSpec."""


class _Reader:
    """Bounds-checked big-endian reads over ``buf[pos:end]``; any overrun is a TlsError."""

    __slots__ = ("_buf", "_end", "_pos", "_what")

    def __init__(self, buf: bytes, what: str, pos: int = 0, end: int | None = None) -> None:
        self._buf = buf
        self._pos = pos
        self._end = len(buf) if end is None else end
        self._what = what

    @property
    def left(self) -> int:
        return self._end - self._pos

    def _advance(self, n: int, field: str) -> int:
        start = self._pos
        if n > self._end - start:
            raise TlsError(f"{self._what}: {field} is truncated")
        self._pos = start + n
        return start

    def uint(self, size: int, field: str) -> int:
        start = self._advance(size, field)
        return int.from_bytes(self._buf[start : start + size], "big")

    def take(self, n: int, field: str) -> bytes:
        start = self._advance(n, field)
        return self._buf[start : start + n]

    def vector(self, width: int, field: str, minimum: int = 0) -> _Reader:
        """A reader over the next length-prefixed vector (length of ``width`` bytes)."""
        n = self.uint(width, f"{field} length")
        if n < minimum:
            raise TlsError(f"{self._what}: {field} is shorter than {minimum} bytes")
        start = self._advance(n, field)
        return _Reader(self._buf, self._what, start, start + n)

    def take_all(self) -> bytes:
        return self.take(self.left, "data")

    def end(self, field: str) -> None:
        if self._pos != self._end:
            raise TlsError(f"{self._what}: {self.left} stray bytes after {field}")


def _extensions(reader: _Reader, what: str) -> list[tuple[int, _Reader]]:
    """The extension block (if any bytes are left): [(type, data reader)], no duplicates."""
    if reader.left == 0:
        return []
    block = reader.vector(2, "extensions")
    reader.end("extensions")
    found: list[tuple[int, _Reader]] = []
    seen: set[int] = set()
    while block.left:
        ext_type = block.uint(2, "extension type")
        if ext_type in seen:
            raise TlsError(f"{what}: duplicate extension {ext_type}")
        seen.add(ext_type)
        found.append((ext_type, block.vector(2, f"extension {ext_type}")))
    return found


def _server_name(ext: _Reader) -> str:
    names = ext.vector(2, "server_name_list", minimum=1)
    ext.end("server_name_list")
    host: str | None = None
    while names.left:
        if names.uint(1, "server name type") != _NAME_TYPE_HOST_NAME:
            raise TlsError("ClientHello: server name is not a host_name")
        raw = names.vector(2, "host_name", minimum=1).take_all()
        if host is not None:
            raise TlsError("ClientHello: more than one host_name")
        if not _HOST_BYTES.issuperset(raw):
            raise TlsError("ClientHello: host_name is not printable ASCII")
        host = raw.decode("ascii").lower()
    assert host is not None  # the list holds at least one byte, so at least one name
    return host


def _alpn(ext: _Reader) -> tuple[str, ...]:
    protocols = ext.vector(2, "protocol_name_list", minimum=2)
    ext.end("protocol_name_list")
    names: list[str] = []
    while protocols.left:
        names.append(protocols.vector(1, "protocol name", minimum=1).take_all().decode("latin-1"))
    return tuple(names)


def _client_versions(ext: _Reader) -> tuple[int, ...]:
    versions = ext.vector(1, "supported_versions", minimum=2)
    ext.end("supported_versions")
    if versions.left % 2:
        raise TlsError("ClientHello: supported_versions has an odd length")
    return tuple(versions.uint(2, "version") for _ in range(versions.left // 2))


def _psk_identities(ext: _Reader) -> tuple[bytes, ...]:
    identities = ext.vector(2, "psk identities", minimum=7)
    found: list[bytes] = []
    while identities.left:
        found.append(identities.vector(2, "psk identity", minimum=1).take_all())
        identities.uint(4, "obfuscated_ticket_age")
    binders = ext.vector(2, "psk binders", minimum=_MIN_PSK_BINDER + 1)
    ext.end("psk binders")
    count = 0
    while binders.left:
        binders.vector(1, "psk binder", minimum=_MIN_PSK_BINDER)
        count += 1
    if count != len(found):
        raise TlsError("ClientHello: psk binders do not match the identities")
    return tuple(found)


def _parse_client_hello_body(body: bytes, length: int) -> ClientHello:
    reader = _Reader(body, "ClientHello")
    legacy_version = reader.uint(2, "legacy_version")
    if legacy_version >> 8 != 3:
        raise TlsError(f"ClientHello: legacy_version {legacy_version:#06x} is not 3.x")
    random = reader.take(32, "random")
    session_id = reader.vector(1, "legacy_session_id").take_all()
    if len(session_id) > _MAX_SESSION_ID:
        raise TlsError("ClientHello: legacy_session_id is longer than 32 bytes")
    suites = reader.vector(2, "cipher_suites", minimum=2)
    if suites.left % 2:
        raise TlsError("ClientHello: cipher_suites has an odd length")
    cipher_suites = tuple(suites.uint(2, "cipher suite") for _ in range(suites.left // 2))
    reader.vector(1, "legacy_compression_methods", minimum=1)

    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    ticket: bytes | None = None
    psk: tuple[bytes, ...] = ()
    found = _extensions(reader, "ClientHello")
    for index, (ext_type, ext) in enumerate(found):
        if ext_type == _EXT_SERVER_NAME:
            sni = _server_name(ext)
        elif ext_type == _EXT_ALPN:
            alpn = _alpn(ext)
        elif ext_type == _EXT_SUPPORTED_VERSIONS:
            versions = _client_versions(ext)
        elif ext_type == _EXT_SESSION_TICKET:
            ticket = ext.take_all()
        elif ext_type == _EXT_PRE_SHARED_KEY:
            if index != len(found) - 1:
                raise TlsError("ClientHello: pre_shared_key is not the last extension")
            psk = _psk_identities(ext)
    return ClientHello(
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        cipher_suites=cipher_suites,
        sni=sni,
        alpn=alpn,
        supported_versions=versions,
        session_ticket=ticket,
        psk_identities=psk,
        extensions=tuple(ext_type for ext_type, _ in found),
        length=length,
    )


def _check_record_header(content_type: int, major: int, length: int, what: str) -> None:
    if major != 3:
        raise TlsError(f"{what}: record version major {major} is not 3")
    if length == 0 and content_type == _CT_HANDSHAKE:
        raise TlsError(f"{what}: empty handshake record")
    if length > MAX_RECORD_LENGTH:
        raise TlsError(f"{what}: record length {length} exceeds {MAX_RECORD_LENGTH}")


def parse_client_hello(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> ClientHello | None:
    """Parse the ClientHello at the start of a client's byte stream.

    ``data`` is every byte the client sent so far. Returns None while the
    ClientHello is incomplete; raises TlsError for bytes that cannot be a
    ClientHello, and as soon as it is certain that the ClientHello would end past
    ``max_bytes`` stream bytes. Reassembles a ClientHello spread over several
    handshake records. Work and memory are bounded by ``min(len(data), max_bytes)``.
    A decided prefix stays decided: once some prefix of a stream gives a
    ClientHello or raises, every longer prefix gives the same.
    """
    view = memoryview(data)[:max_bytes]
    available = len(view)
    handshake = bytearray()
    message_total = _HANDSHAKE_HEADER  # until the handshake header is read
    header_known = False
    pos = 0
    while True:
        if available - pos < _RECORD_HEADER:
            # Check what there is of the next record header, then the bound.
            if pos < available and view[pos] != _CT_HANDSHAKE:
                raise TlsError(f"ClientHello: record type {view[pos]} is not handshake (22)")
            if pos + 1 < available and view[pos + 1] != 3:
                raise TlsError(f"ClientHello: record version major {view[pos + 1]} is not 3")
            if pos + _RECORD_HEADER + message_total - len(handshake) > max_bytes:
                raise TlsError(f"ClientHello: needs more than {max_bytes} bytes")
            return None
        if view[pos] != _CT_HANDSHAKE:
            raise TlsError(f"ClientHello: record type {view[pos]} is not handshake (22)")
        record_length = int.from_bytes(view[pos + 3 : pos + 5], "big")
        _check_record_header(_CT_HANDSHAKE, view[pos + 1], record_length, "ClientHello")
        got = pos + _RECORD_HEADER
        end = got + record_length
        limit = min(end, available)
        while True:
            rest = message_total - len(handshake)
            # Past this record the message needs at least one more record header.
            needed = got + rest + (_RECORD_HEADER if rest > end - got else 0)
            if needed > max_bytes:
                raise TlsError(f"ClientHello: needs more than {max_bytes} bytes")
            take = min(rest, limit - got)
            handshake += view[got : got + take]
            got += take
            if handshake and handshake[0] != _HS_CLIENT_HELLO:
                raise TlsError(f"ClientHello: handshake type {handshake[0]} is not 1")
            if len(handshake) < message_total:
                break
            if header_known:
                return _parse_client_hello_body(bytes(handshake[_HANDSHAKE_HEADER:]), got)
            header_known = True
            message_total += int.from_bytes(handshake[1:4], "big")
        if end > available:
            return None
        pos = end


class ServerHelloWatcher:
    """Watches a server->client TLS stream for the ServerHello and a TLS 1.2 ticket.

    ``feed(data)`` reads ``data`` without keeping or changing it (the caller
    forwards it as is) and keeps at most the ServerHello and NewSessionTicket
    bodies. It is done when it knows all it can learn: after a TLS 1.3 (or
    HelloRetryRequest) ServerHello; after a TLS 1.2 ServerHello that announces no
    ticket; after a NewSessionTicket; at the first ChangeCipherSpec, alert or
    application data record; after ``max_bytes`` bytes; or at the first malformed
    byte (then ``result`` is None). It never raises.
    """

    __slots__ = (
        "_done",
        "_expect_ticket",
        "_fed",
        "_hs_header",
        "_hs_keep",
        "_hs_left",
        "_hs_type",
        "_max_bytes",
        "_record_header",
        "_record_left",
        "_result",
    )

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._max_bytes = max_bytes
        self._fed = 0
        self._done = False
        self._result: ServerHelloInfo | None = None
        self._expect_ticket = False
        self._record_header = bytearray()
        self._record_left = 0
        self._hs_header = bytearray()
        self._hs_type = -1
        self._hs_left = 0
        self._hs_keep: bytearray | None = None

    @property
    def done(self) -> bool:
        """Nothing more will be learned; further ``feed`` calls do nothing."""
        return self._done

    @property
    def result(self) -> ServerHelloInfo | None:
        """The ServerHello once parsed (with the ticket if seen); None before or on error."""
        return self._result

    def feed(self, data: bytes) -> None:
        """Read the next bytes of the server's stream."""
        if self._done:
            return
        budget = self._max_bytes - self._fed
        view = memoryview(data)[: max(budget, 0)]
        self._fed += len(view)
        try:
            self._records(view)
        except TlsError:
            self._finish(None)
            return
        if not self._done and self._fed >= self._max_bytes:
            self._finish(self._result)

    def _finish(self, result: ServerHelloInfo | None) -> None:
        self._done = True
        self._result = result
        self._hs_keep = None
        self._record_header.clear()
        self._hs_header.clear()

    def _records(self, view: memoryview) -> None:
        pos = 0
        size = len(view)
        while pos < size and not self._done:
            if self._record_left == 0:
                want = _RECORD_HEADER - len(self._record_header)
                self._record_header += view[pos : pos + want]
                pos += want
                if len(self._record_header) < _RECORD_HEADER:
                    return
                header = self._record_header
                content_type = header[0]
                length = int.from_bytes(header[3:5], "big")
                _check_record_header(content_type, header[1], length, "ServerHello")
                header.clear()
                if content_type in (_CT_CHANGE_CIPHER_SPEC, _CT_ALERT, _CT_APPLICATION_DATA):
                    # Cleartext ends here (or the handshake failed): nothing more to learn.
                    self._finish(self._result)
                    return
                if content_type != _CT_HANDSHAKE:
                    raise TlsError(f"ServerHello: record type {content_type} is not TLS")
                self._record_left = length
                continue
            take = min(self._record_left, size - pos)
            self._handshake(view[pos : pos + take])
            pos += take
            self._record_left -= take

    def _handshake(self, chunk: memoryview) -> None:
        pos = 0
        size = len(chunk)
        while pos < size and not self._done:
            if self._hs_type < 0:
                want = _HANDSHAKE_HEADER - len(self._hs_header)
                self._hs_header += chunk[pos : pos + want]
                pos += want
                if len(self._hs_header) < _HANDSHAKE_HEADER:
                    return
                self._start_message(self._hs_header[0], int.from_bytes(self._hs_header[1:4], "big"))
                self._hs_header.clear()
            else:
                take = min(self._hs_left, size - pos)
                if self._hs_keep is not None:
                    self._hs_keep += chunk[pos : pos + take]
                pos += take
                self._hs_left -= take
            if self._hs_type >= 0 and self._hs_left == 0:
                self._end_message()

    def _start_message(self, hs_type: int, length: int) -> None:
        if self._result is None and hs_type != _HS_SERVER_HELLO:
            raise TlsError(f"ServerHello: handshake type {hs_type} before the ServerHello")
        if self._result is not None and hs_type == _HS_SERVER_HELLO:
            raise TlsError("ServerHello: a second ServerHello")
        if length > self._max_bytes:
            raise TlsError(f"ServerHello: handshake message of {length} bytes")
        keep = hs_type in (_HS_SERVER_HELLO, _HS_NEW_SESSION_TICKET)
        self._hs_type = hs_type
        self._hs_left = length
        self._hs_keep = bytearray() if keep else None

    def _end_message(self) -> None:
        hs_type = self._hs_type
        body = bytes(self._hs_keep) if self._hs_keep is not None else b""
        self._hs_type = -1
        self._hs_keep = None
        if hs_type == _HS_SERVER_HELLO:
            info, announces_ticket = _parse_server_hello(body)
            self._result = info
            if info.version >= TLS13 or not announces_ticket:
                # TLS 1.3: the rest is encrypted. TLS 1.2 without the session_ticket
                # extension: no NewSessionTicket will come.
                self._finish(info)
        elif hs_type == _HS_NEW_SESSION_TICKET:
            ticket = _parse_new_session_ticket(body)
            assert self._result is not None
            self._finish(replace(self._result, new_session_ticket=ticket or None))


def _parse_server_hello(body: bytes) -> tuple[ServerHelloInfo, bool]:
    """(info, the server announced a NewSessionTicket with an empty extension 35)."""
    reader = _Reader(body, "ServerHello")
    legacy_version = reader.uint(2, "legacy_version")
    if legacy_version >> 8 != 3:
        raise TlsError(f"ServerHello: legacy_version {legacy_version:#06x} is not 3.x")
    reader.take(32, "random")
    session_id = reader.vector(1, "legacy_session_id_echo").take_all()
    if len(session_id) > _MAX_SESSION_ID:
        raise TlsError("ServerHello: session id is longer than 32 bytes")
    reader.uint(2, "cipher_suite")
    reader.uint(1, "legacy_compression_method")
    version = legacy_version
    ticket = False
    for ext_type, ext in _extensions(reader, "ServerHello"):
        if ext_type == _EXT_SUPPORTED_VERSIONS:
            version = ext.uint(2, "selected_version")
            ext.end("selected_version")
        elif ext_type == _EXT_SESSION_TICKET:
            ticket = True
    return ServerHelloInfo(version, session_id, None), ticket


def _parse_new_session_ticket(body: bytes) -> bytes:
    reader = _Reader(body, "NewSessionTicket")
    reader.uint(4, "ticket_lifetime_hint")
    ticket = reader.vector(2, "ticket").take_all()
    reader.end("ticket")
    return ticket
