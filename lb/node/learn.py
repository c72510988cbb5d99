"""Learning sessions on the home side: the first response head of a connection.

The home side watches what its application answers: `Set-Cookie` of the
application cookies the service's chain looks for, and (tls-passthrough) the
TLS 1.2 ServerHello session id and a cleartext NewSessionTicket. Each finding
is reported as the (kind, value) the matching extractor answers (`cookie`,
`NAME=VALUE`; `tls-session-id`, HEX; `tls-ticket`, DIGEST); the directory stores
only a keyed hash of it (lb.routing.directory.DirectoryKeys).
The watchers observe without copying; once they are done the splice forgets
this object. No I/O here: findings go to a callback.
"""

from __future__ import annotations

from collections.abc import Callable

from lb.extract.tls import digest
from lb.wire.http import SetCookieWatcher
from lb.wire.tls import TLS13, ServerHelloWatcher

# (identifier kind, identifier value, ttl seconds or None for the farm default); the
# pair is what the matching extractor answers, and is hashed before it is stored
Learn = Callable[[str, str, float | None], None]


class SessionLearner:
    """Watches one response stream until it has learned what it can."""

    __slots__ = ("cookies", "learn", "tls")

    def __init__(self, learn: Learn, cookie_names: tuple[str, ...], tls: bool) -> None:
        self.learn = learn
        self.cookies = SetCookieWatcher(cookie_names) if cookie_names else None
        self.tls = ServerHelloWatcher() if tls else None

    def feed(self, data: bytes) -> bool:
        """Observe response bytes; True once nothing more can be learned."""
        cookies = self.cookies
        if cookies is not None:
            cookies.feed(data)
            if cookies.done:
                self.cookies = None
                for name, value, max_age in cookies.found:
                    if value and max_age != 0:  # an empty value or Max-Age=0 deletes the cookie
                        self.learn("cookie", f"{name}={value}", max_age)
        watcher = self.tls
        if watcher is not None:
            watcher.feed(data)
            if watcher.done:
                self.tls = None
                info = watcher.result
                if info is not None and info.version != TLS13:
                    # TLS 1.3 session ids are random per connection: nothing to learn there
                    if info.session_id:
                        self.learn("tls-session-id", info.session_id.hex(), None)
                    if info.new_session_ticket:
                        self.learn("tls-ticket", digest(info.new_session_ticket), None)
        return self.cookies is None and self.tls is None
