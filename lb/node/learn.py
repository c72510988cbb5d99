"""Learning sessions on the home side of a spliced connection (tls-passthrough).

The home side watches what its application answers: the TLS 1.2 ServerHello
session id and a cleartext NewSessionTicket. (Application cookies of HTTP
services are learned by the entry from every response head it frames:
lb.node.http_response.) Each finding is reported as the (kind, value) the
matching extractor answers (`tls-session-id`, HEX; `tls-ticket`, DIGEST); the
directory stores only a keyed hash of it (lb.routing.directory.DirectoryKeys).
The watchers observe without copying; once they are done the splice forgets
this object. No I/O here: findings go to a callback.

Each finding is *registered* (lb.node.registry): the callback returns True when
it is done at once, else it calls `release` later (the key's owners acknowledged,
or the bound passed). Until every finding of this stream is released, the
response bytes from the one that completed the finding on are **held** (`hold`):
the client cannot use a session the farm does not know yet (a TLS 1.2
handshake whose final flight carries the session id or ticket). The endpoint
stops reading its application meanwhile (PAUSE_HOLD).
"""

from __future__ import annotations

from collections.abc import Callable

from lb.extract.tls import digest
from lb.wire.tls import TLS13, ServerHelloWatcher

# (identifier kind, identifier value, ttl seconds or None for the farm default, release)
# -> True when done now; else release() comes once, later. The pair is what the
# matching extractor answers, and is hashed before it is stored
Register = Callable[[str, str, float | None, Callable[[], None]], bool]

PAUSE_HOLD = 8
"""Pause reason (a bit beside lb.link.connection's) of an endpoint holding a response."""


class SessionLearner:
    """Watches one response stream until it has learned what it can."""

    __slots__ = ("eof_held", "held", "learn", "on_release", "pending", "tls")

    def __init__(self, learn: Register, tls: bool) -> None:
        self.learn = learn
        self.tls = ServerHelloWatcher() if tls else None
        self.pending = 0  # registrations not released yet
        self.held: list[bytes] = []  # response bytes waiting for them, in order
        self.eof_held = False  # the application's EOF came while bytes were held
        self.on_release: Callable[[bytes, bool], None] | None = None

    @property
    def finished(self) -> bool:
        """Nothing left to watch and nothing held: the endpoint may forget this object."""
        return self.tls is None and not self.pending and not self.held

    def hold(self, data: bytes, on_release: Callable[[bytes, bool], None]) -> bool:
        """Keep `data` back while a registration is pending (True); `on_release(bytes,
        eof)` gets everything held, once, when the last one is released."""
        if not self.pending and not self.held:
            return False
        self.on_release = on_release
        if data:
            self.held.append(data)
        return True

    def hold_eof(self) -> bool:
        """The application's EOF: kept back behind held bytes (True)."""
        if not self.pending and not self.held:
            return False
        self.eof_held = True
        return True

    def _register(self, kind: str, value: str, ttl: float | None) -> None:
        self.pending += 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.pending -= 1
            if not self.pending:
                self._flush()

        if self.learn(kind, value, ttl, release):
            release()

    def _flush(self) -> None:
        data = b"".join(self.held)
        self.held = []
        eof, self.eof_held = self.eof_held, False
        on_release, self.on_release = self.on_release, None
        if on_release is not None and (data or eof):
            on_release(data, eof)

    def feed(self, data: bytes) -> bool:
        """Observe response bytes; True once nothing more can be learned."""
        watcher = self.tls
        if watcher is not None:
            watcher.feed(data)
            if watcher.done:
                self.tls = None
                info = watcher.result
                if info is not None and info.version != TLS13:
                    # TLS 1.3 session ids are random per connection: nothing to learn there
                    if info.session_id:
                        self._register("tls-session-id", info.session_id.hex(), None)
                    if info.new_session_ticket:
                        self._register("tls-ticket", digest(info.new_session_ticket), None)
        return self.tls is None
