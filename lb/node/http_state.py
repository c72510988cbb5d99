"""The state of one HTTP client connection, and what it asks of the entry side.

`HttpClientState` declares every field of a client connection once (slots, so
an idle connection costs no dict); lb.node.http_client.HttpClient (the request
side) and lb.node.http_response.ResponseSide (the response side) are its two
halves of behaviour. `HttpEntrySide` is what a connection asks of the node's
entry: a base class of lb.node.entry.Entry, which implements every method (not a
Protocol: the compiled build calls a base class's methods through its method
table, a Protocol's by attribute look-up). No behaviour lives here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from lb.extract.api import Extractor, Identifier
from lb.node.service import Service
from lb.node.upstream import Upstream, User
from lb.routing.route import Decision
from lb.wire import http1, response_head
from lb.wire.forwarded import ForwardedHeaders
from lb.wire.frames import ResetReason
from lb.wire.http import RequestHead, RequestHeadScanner
from lb.wire.proxy import FrontProxy

# Final: a compiled build uses the numbers themselves, not a look-up of the name
# client states
HEAD: Final = 0  # reading a request head
ROUTED: Final = 1  # waiting for an upstream
EXCHANGE: Final = 2  # the request goes out, its response comes back
TUNNEL: Final = 3  # after 101 / CONNECT 2xx: bytes both ways
DONE: Final = 4

# response states
R_HEAD: Final = 0
R_BODY: Final = 1
R_UNTIL_CLOSE: Final = 2
R_DONE: Final = 3
R_HOLD: Final = 4  # a final head waits for the directory owners to acknowledge what it names

# an upstream that never reached the home's application: a new session may go elsewhere
HOME_UNREACHABLE = frozenset(
    (
        int(ResetReason.APP_REFUSED),
        int(ResetReason.APP_TIMEOUT),
        int(ResetReason.PENDING_TIMEOUT),
        int(ResetReason.NO_SERVICE),
        int(ResetReason.SHUTTING_DOWN),
    )
)
# no upstream could be had for a condition that passes (503 with Retry-After, not the 502 of
# an application or home that failed): a flow table full (this node's or the home's, which
# RESETs the NEW), no link up to the home (being made, or this node hears no peer and holds
# the home's sessions for it)
HOME_UNAVAILABLE = frozenset((int(ResetReason.TABLE_FULL), int(ResetReason.LINK_CLOSED)))
# the home went away under a request: an idempotent one may wait for it or its successor
HOME_LEAVING = frozenset((int(ResetReason.LINK_CLOSED), int(ResetReason.SHUTTING_DOWN)))
MAX_RETRIES: Final = 2  # sends of one request again on a fresh upstream
MAX_RESPONSE_HEAD: Final = 65536
PAUSE_BACKLOG: Final = 8  # pipelined bytes beyond the head limit wait for their turn
# the client reads none of its answers (its transport is above its high-water mark): no
# next request is read or sent on until it does (resume_writing)
PAUSE_ANSWERS: Final = 16


class HttpEntrySide:
    """What an HTTP client connection asks of the node's entry side: lb.node.entry.Entry
    (through lb.node.entry_http.HttpRouting) implements every method."""

    name: str
    head_bytes: int
    local_active: int
    requests_done: int
    now: Callable[[], float]  # the loop's clock
    # extractor_failed, bound once: run_chain's on_error on every request head
    on_extractor_error: Callable[[Extractor, BaseException], None]

    def admit(self, client: HttpClientState) -> bool:
        raise NotImplementedError

    def release(self, client: HttpClientState) -> None:
        raise NotImplementedError

    def head_started(self, client: HttpClientState) -> None:
        raise NotImplementedError

    def head_done(self, client: HttpClientState) -> None:
        raise NotImplementedError

    def count(self, name: str) -> None:
        raise NotImplementedError

    def extractor_failed(self, extractor: Extractor, exc: BaseException) -> None:
        raise NotImplementedError

    def decide(
        self,
        client: HttpClientState,
        identifier: Identifier | None,
        looked_up: bool = False,
        now: float = 0.0,
    ) -> Decision | None:
        raise NotImplementedError

    def upstream_for(
        self, client: HttpClientState, decision: Decision, fresh: bool = False
    ) -> Upstream | None:
        raise NotImplementedError

    def retry(self, client: HttpClientState, failed: Decision) -> Decision | None:
        raise NotImplementedError

    def request_head(self, client: HttpClientState, head: RequestHead) -> bytes:
        raise NotImplementedError

    def response_head(
        self,
        client: HttpClientState,
        head: response_head.ResponseHead,
        buf: bytes | bytearray,
        start: int,
        end: int,
        decision: Decision,
    ) -> bytes | None:
        raise NotImplementedError

    def learn(
        self,
        kind: str,
        value: str,
        ttl: float | None,
        source: str,
        home: str,
        release: Callable[[], None],
    ) -> bool:
        raise NotImplementedError

    def request_done(self, client: HttpClientState, status: int, error: str = "") -> None:
        raise NotImplementedError


class HttpClientState(User):
    """Every field of one HTTP client connection (see HttpClient for what they mean)."""

    __slots__ = (
        "active",
        "buf",
        "bytes_in",
        "bytes_out",
        "client",
        "closed",
        "decision",
        "entry",
        "eof_in",
        "forwarded",
        "front",
        "head",
        "head_timed",
        "held",
        "held_eof",
        "identifier",
        "keep_alive",
        "local",
        "method",
        "paused",
        "quiet_since",
        "rbuf",
        "req_done",
        "req_framer",
        "resend",
        "reserved",
        "resp_framer",
        "resp_sent",
        "retries",
        "retry_bytes",
        "rstate",
        "scanner",
        "sent_any",
        "served",
        "service",
        "state",
        "status",
        "t_attached",
        "t_first_out",
        "t_read",
        "t_routed",
        "t_start",
        "tls",
        "transport",
        "upgrade",
        "upstream",
        "upstream_ended",
        "upstream_reusable",
        "write_paused",
    )

    def __init__(self, entry: HttpEntrySide, service: Service, reserved: bool = False) -> None:
        self.entry = entry
        self.service = service
        self.reserved = reserved  # counted at accept time (TLS), before connection_made
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] = ("", 0)
        self.state = HEAD
        self.buf = bytearray()  # client bytes not yet sent on: a head, or pipelined requests
        self.scanner: RequestHeadScanner | None = None
        self.head: RequestHead | None = None
        self.head_timed = False  # the head deadline is armed
        self.front: FrontProxy | None = None  # a listed front balancer's PROXY v2 header
        # tls-terminate: the access-log fields of the connection's TLS, read once at
        # handshake end (lb.node.servertls.connection_tls); None for plain http
        self.tls: dict[str, str | None] | None = None
        self.forwarded: ForwardedHeaders | None = None  # this client's forwarding headers
        self.identifier: Identifier | None = None
        self.decision: Decision | None = None
        self.upstream: Upstream | None = None
        self.method = ""
        self.keep_alive = True
        self.upgrade = False
        self.req_framer: http1.BodyFramer | None = None
        self.req_done = False
        self.sent_any = False  # a byte of any response went to the client
        self.served = 0  # exchanges completed on this connection
        self.eof_in = False
        self.upstream_ended = False  # a tunnel's upstream sent EOF (with eof_in: both ended)
        self.closed = False
        self.paused = 0
        self.active = True  # a byte moved since the last idle sweep (the accept counts)
        self.quiet_since = 0.0  # the last sweep that saw one (lb.node.splice.silent_for)
        self.write_paused = False  # the client's transport is above its high-water mark
        self.local = False  # the current request is served by the local application
        # the current request, for metrics and the access log (times: the loop's clock)
        self.bytes_in = 0
        self.bytes_out = 0
        self.t_start = 0.0  # its first byte
        self.t_routed = 0.0  # its head read and routed
        self.t_attached = 0.0  # its upstream ready (0: never)
        self.t_first_out = 0.0  # the first byte of its response went out (0: never)
        self.t_read = 0.0  # the clock read by the client read under way (0: none)
        self.held: response_head.ResponseHead | None = None  # a final head held for registrations
        self.held_eof = False  # the upstream ended while a head was held
        self.rstate = R_HEAD
        # response bytes kept while a head is incomplete or held (a bytearray then)
        self.rbuf: bytes | bytearray = b""
        self.resp_framer: http1.BodyFramer | None = None
        self.resp_sent = False  # a byte of this request's final response went to the client
        self.upstream_reusable = True
        self.retry_bytes: bytes | None = None  # the request as sent, while it may be resent
        self.resend: bytes | None = None  # ... being sent again on a fresh upstream
        self.retries = 0  # times the current request was sent again
        self.status = 0

    # -- what the entry calls (HttpClient and ResponseSide implement them) -----------------
    def attach(self, upstream: Upstream) -> None:
        """An upstream to the home is ready: send the request."""
        raise NotImplementedError

    def decided(self, decision: Decision | None) -> None:
        """The entry's decision after asking the directory owners."""
        raise NotImplementedError

    def fail(self, reason: int) -> None:
        """No upstream could be had (a ResetReason code)."""
        raise NotImplementedError

    def reroute(self) -> None:
        """The home died while the request waited: route it again."""
        raise NotImplementedError

    def head_timed_out(self) -> None:
        """The head did not arrive within head_timeout."""
        raise NotImplementedError

    def idle_tick(self, now: float, timeout: float) -> None:
        """The idle sweep at `now`: closed once no byte moved either way for `timeout`."""
        raise NotImplementedError

    def abort(self) -> None:
        """Shutdown: drop the connection and its upstream."""
        raise NotImplementedError

    # -- what one half calls in the other ----------------------------------------------------
    def _send_to(self, decision: Decision | None) -> None:
        raise NotImplementedError

    def _read_head(self) -> None:
        raise NotImplementedError

    def _start_tunnel(self) -> None:
        raise NotImplementedError

    def tunnel_ended(self) -> None:
        raise NotImplementedError

    def _end_local(self) -> None:
        raise NotImplementedError

    def resume_client(self, reason: int) -> None:
        raise NotImplementedError

    def _finish(self, status: int, error: str = "") -> None:
        raise NotImplementedError

    def _close(self, clean: bool) -> None:
        raise NotImplementedError
