"""Learning sessions on the home side: the first response head of a connection.

The home side watches what its application answers: `Set-Cookie` of the
application cookies the service's chain looks for, and (tls-passthrough) the
TLS 1.2 ServerHello session id and a cleartext NewSessionTicket. Each finding
is reported as the (kind, value) the matching extractor answers (`cookie`,
`NAME=VALUE`; `tls-session-id`, HEX; `tls-ticket`, DIGEST); the directory stores
only a keyed hash of it (lb.routing.directory.DirectoryKeys).
The watchers observe without copying; once they are done the splice forgets
this object. No I/O here: findings go to a callback.

Each finding is *registered* (lb.node.registry): the callback returns True when
it is done at once, else it calls `release` later (the key's owners acknowledged,
or the bound passed). Until every finding of this stream is released, the
response bytes from the one that completed the finding on are **held** (`hold`):
the client cannot use a session the farm does not know yet (an application's
Set-Cookie, a TLS 1.2 handshake whose final flight carries the session id or
ticket). The endpoint stops reading its application meanwhile (PAUSE_HOLD).
"""

from __future__ import annotations

from collections.abc import Callable

from lb.extract.tls import digest
from lb.wire.http import SetCookieWatcher
from lb.wire.tls import TLS13, ServerHelloWatcher

# (identifier kind, identifier value, ttl seconds or None for the farm default, release)
# -> True when done now; else release() comes once, later. The pair is what the
# matching extractor answers, and is hashed before it is stored
Register = Callable[[str, str, float | None, Callable[[], None]], bool]

PAUSE_HOLD = 8
"""Pause reason (a bit beside lb.link.connection's) of an endpoint holding a response."""


class SessionLearner:
    """Watches one response stream until it has learned what it can."""

    __slots__ = ("cookies", "eof_held", "held", "learn", "on_release", "pending", "tls")

    def __init__(self, learn: Register, cookie_names: tuple[str, ...], tls: bool) -> None:
        self.learn = learn
        self.cookies = SetCookieWatcher(cookie_names) if cookie_names else None
        self.tls = ServerHelloWatcher() if tls else None
        self.pending = 0  # registrations not released yet
        self.held: list[bytes] = []  # response bytes waiting for them, in order
        self.eof_held = False  # the application's EOF came while bytes were held
        self.on_release: Callable[[bytes, bool], None] | None = None

    @property
    def finished(self) -> bool:
        """Nothing left to watch and nothing held: the endpoint may forget this object."""
        return self.cookies is None and self.tls is None and not self.pending and not self.held

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
        cookies = self.cookies
        if cookies is not None:
            cookies.feed(data)
            if cookies.done:
                self.cookies = None
                for name, value, max_age in cookies.found:
                    if value and max_age != 0:  # an empty value or Max-Age=0 deletes the cookie
                        self._register("cookie", f"{name}={value}", max_age)
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
        return self.cookies is None and self.tls is None
