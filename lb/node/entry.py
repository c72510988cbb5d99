"""The entry side: admit client connections, route them, and start their splice.

A client connection (lb.node.client) reads until the extractor chain answers
and then asks `route`: the router's decision sends it to the local
application (through the application connector) or to a flow on the link to
its home. Admission (`max_connections`), head deadlines and the idle sweep of
client connections live here too.

It must not decide placement (lb.routing.route does) nor speak the link
protocol (lb.link); it only carries out the decision.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections import Counter
from collections.abc import Callable

import structlog

from lb.clock import Monotonic, wall
from lb.config import Address, FarmConfig, Limits
from lb.errors import LinkError, TableFull
from lb.extract.api import Extractor, Identifier
from lb.node.app import AppConnector
from lb.node.client import SPLICE, WAIT, ClientEndpoint
from lb.node.home import Home
from lb.node.peerlink import LinkDriver
from lb.node.peers import Peers
from lb.node.replication import Replication
from lb.node.service import Service
from lb.node.sockets import accept_forever
from lb.node.splice import AppEndpoint
from lb.node.timer import Deadlines
from lb.routing.directory import source_key
from lb.routing.route import Router
from lb.wire import frames as fr
from lb.wire.frames import ConnRef, ResetReason
from lb.wire.http import ResponseCookieInserter
from lb.wire.proxy import encode_proxy_v2, encode_proxy_v2_local

log = structlog.get_logger("lb.entry")

LINK_WAIT_POLL = 0.05  # seconds between looks at a link a held client waits for
MAX_TLS_HANDSHAKES = 256  # concurrent TLS handshakes of client connections, per process
MAX_TLS_HANDSHAKES_PER_SOURCE = 32  # ... of them from one IPv4 address or IPv6 /64


def _ip_or_unspecified(host: str, like: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "::" if ":" in like else "0.0.0.0"


def make_conn_ref(client: tuple[str, int], home: Address, service: str) -> ConnRef:
    """The NEW frame's connection reference; both addresses in one family (v4-mapped if mixed)."""
    client_ip = client[0]
    home_ip = _ip_or_unspecified(home.host, client_ip)
    c = ipaddress.ip_address(client_ip)
    h = ipaddress.ip_address(home_ip)
    if c.version != h.version:
        if c.version == 4:
            client_ip = f"::ffff:{client_ip}"
        else:
            home_ip = f"::ffff:{home_ip}"
    return ConnRef(client_ip, client[1], home_ip, home.port, service)


def proxy_v2_header(client: ClientEndpoint) -> bytes:
    """The PROXY v2 header of a local splice: the client, and the address it connected to
    (LOCAL if the socket is already gone)."""
    transport = client.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    if not local:
        return encode_proxy_v2_local()
    return encode_proxy_v2(client.client, (local[0], local[1]))


class Entry:
    """Client connections of this node: admission, head deadlines, routing, idle sweep."""

    def __init__(
        self,
        config: FarmConfig,
        name: str,
        loop: asyncio.AbstractEventLoop,
        router: Router,
        peers: Peers,
        apps: AppConnector,
        home: Home,
        replication: Replication,
        counters: Counter[str],
        wake_at: Callable[[float | None], None],
    ) -> None:
        self.name = name
        self.limits: Limits = config.limits
        self.head_bytes = config.limits.head_bytes
        self.loop = loop
        self.router = router
        self.peers = peers
        self.apps = apps
        self.home = home
        self.replication = replication
        self.counters = counters
        self.wake_at = wake_at
        self.clients: set[ClientEndpoint] = set()
        self.heads: Deadlines[ClientEndpoint] = Deadlines()
        self.local_active = 0
        self.salt = 0
        self.last_extractor_log = 0.0
        self.last_accept_log = 0.0
        self.max_connections = config.limits.max_connections
        self.max_handshakes = MAX_TLS_HANDSHAKES
        self.handshaking = 0  # TLS clients accepted, handshake not done: they count too
        self.handshakes_by_source: Counter[str] = Counter()
        self.handshakes: set[asyncio.Task[None]] = set()

    # -- admission and head deadlines --------------------------------------------------
    def admit(self, client: ClientEndpoint) -> bool:
        """A connection that is ready for bytes; TLS ones were reserved at accept time."""
        if client.reserved:
            client.reserved = False
            self.handshaking -= 1
        elif len(self.clients) + self.handshaking >= self.max_connections:
            self.counters["clients_refused"] += 1
            return False
        self.clients.add(client)
        return True

    def reserve_tls(self, source: str) -> bool:
        """Accept time of a TLS client: count it before its handshake, within the caps.

        Handshakes are capped per process and per source (an IPv4 address, an
        IPv6 /64), so one source cannot hold every handshake slot.
        """
        if len(self.clients) + self.handshaking >= self.max_connections:
            self.counters["clients_refused"] += 1
            return False
        if (
            self.handshaking >= self.max_handshakes
            or self.handshakes_by_source[source] >= MAX_TLS_HANDSHAKES_PER_SOURCE
        ):
            self.counters["tls_handshakes_refused"] += 1
            return False
        self.handshaking += 1
        self.handshakes_by_source[source] += 1
        return True

    def handshake_ended(self, source: str) -> None:
        """The handshake of a client from `source` finished, either way."""
        left = self.handshakes_by_source[source] - 1
        if left > 0:
            self.handshakes_by_source[source] = left
        else:
            del self.handshakes_by_source[source]

    def handshake_failed(self) -> None:
        self.handshaking -= 1
        self.counters["tls_handshakes_failed"] += 1

    async def serve_tls(self, sock: socket.socket, service: Service) -> None:
        """Accept loop of a tls-terminate listener: admission before the TLS handshake.

        Every socket counts against max_connections from accept on, handshakes
        are capped (max_handshakes) and bounded by head_timeout; a socket over a
        cap is closed at once, before any byte of it is read.
        """
        ssl_ctx = service.server_ssl
        assert ssl_ctx is not None

        def on_socket(conn: socket.socket, address: str) -> None:
            source = source_key(address)
            if not self.reserve_tls(source):
                conn.close()
                return
            task = self.loop.create_task(self._handshake(conn, service, ssl_ctx, source))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)

        await accept_forever(self.loop, sock, on_socket, self._accept_failed)

    async def _handshake(
        self, conn: socket.socket, service: Service, ctx: ssl.SSLContext, source: str
    ) -> None:
        client = ClientEndpoint(self, service, reserved=True)
        try:
            await self.loop.connect_accepted_socket(
                lambda: client, conn, ssl=ctx, ssl_handshake_timeout=self.limits.head_timeout
            )
        except (OSError, TimeoutError, ConnectionError):
            conn.close()
            if client.reserved:  # the handshake never completed: release the slot
                client.reserved = False
                self.handshake_failed()
        finally:
            self.handshake_ended(source)

    def _accept_failed(self, exc: OSError) -> None:
        self.counters["accept_errors"] += 1
        now = self.loop.time()
        if now - self.last_accept_log >= 1.0:
            self.last_accept_log = now
            log.error(
                "accept_failed",
                error=str(exc),
                clients=len(self.clients),
                errors=self.counters["accept_errors"],
            )

    def release(self, client: ClientEndpoint) -> None:
        if client in self.clients:
            self.clients.discard(client)
            if client.local:
                self.local_active -= 1

    def head_started(self, client: ClientEndpoint) -> None:
        self.wake_at(self.heads.add(client, self.loop.time() + self.limits.head_timeout))

    def head_done(self, client: ClientEndpoint) -> None:
        self.heads.discard(client)

    def sweep(self, now: Monotonic) -> float | None:
        """Timer: clients whose head did not arrive in time."""
        for client in self.heads.pop_due(now):
            client.head_timed_out()
        return self.heads.next_deadline()

    def sweep_idle(self) -> None:
        """Spliced clients with no byte either way since the last sweep are aborted."""
        for client in list(self.clients):
            if client.state != SPLICE:
                continue
            if client.active:
                client.active = False
            else:
                self.counters["idle_timeouts"] += 1
                client.abort()

    def count(self, name: str) -> None:
        self.counters[name] += 1

    def extractor_failed(self, extractor: Extractor, exc: BaseException) -> None:
        self.counters["extractor_failures"] += 1
        now = self.loop.time()
        if now - self.last_extractor_log >= 1.0:  # at most one line a second
            self.last_extractor_log = now
            log.warning(
                "extractor_failed",
                extractor=getattr(extractor, "name", type(extractor).__name__),
                # the type only: an exception's text may quote the request (a session token)
                error=type(exc).__name__,
                failures=self.counters["extractor_failures"],
            )

    # -- routing ---------------------------------------------------------------------------
    def route(self, client: ClientEndpoint, identifier: Identifier | None) -> None:
        self.head_done(client)
        self.salt = (self.salt + 0x9E3779B1) & 0xFFFFFFFF
        decision = self.router.route(
            identifier, self.peers.view, wall(), self.salt ^ client.client[1]
        )
        self.counters[decision.reason] += 1
        if decision.local:
            self._start_local(client, decision.new_session)
            return
        link = self.peers.links_out.get(decision.home)
        if link is None or link.closed:
            if decision.new_session:
                self._start_local(client, True)
            else:
                # the home is live but our link to it is (re)connecting: hold the client
                # until it is up or the home is declared dead (then re-route), bounded
                client.state = WAIT
                self.loop.create_task(self._forward_when_linked(client, decision.home, identifier))
            return
        self._forward(client, link, decision.home, decision.new_session)

    async def _forward_when_linked(
        self, client: ClientEndpoint, home: str, identifier: Identifier | None
    ) -> None:
        # wait for the link, or for the membership verdict on a suspect home (dead_after)
        limits = self.limits
        deadline = self.loop.time() + max(limits.connect_timeout, limits.dead_after)
        while self.loop.time() < deadline and not client.closed:
            link = self.peers.links_out.get(home)
            if link is not None and link.authenticated and not link.closed:
                self._forward(client, link, home, False)
                return
            if home not in self.peers.view.live:
                # declared dead while we waited: route again (the session is re-homed)
                self.route(client, identifier)
                return
            await asyncio.sleep(LINK_WAIT_POLL)
        self.counters["link_waits_failed"] += 1
        client.fail(int(ResetReason.LINK_CLOSED))

    def _forward(
        self, client: ClientEndpoint, link: LinkDriver, home: str, new_session: bool
    ) -> None:
        """Open a flow to `home` on `link` and splice the client to it."""
        if client.closed:
            return
        service = client.service
        home_addr = self.peers.config.nodes[home].listen[service.name]
        ref = make_conn_ref(client.client, home_addr, service.name)
        flags = fr.FLAG_NEW_SESSION if new_session and service.http else 0
        initial = bytes(client.buf)
        client.buf = bytearray()
        try:
            flow = link.open_flow(client, ref, initial, flags)
        except TableFull:
            self.counters["table_full"] += 1
            client.finish_with(503)
            return
        except LinkError:
            link.close()  # flow ids used up (or the link just went): a fresh link is made
            client.buf = bytearray(initial)
            client.fail(int(ResetReason.LINK_CLOSED))
            return
        client.start_splice(flow)

    def _start_local(self, client: ClientEndpoint, new_session: bool) -> None:
        client.state = WAIT
        client.local = True
        self.local_active += 1
        service = client.service
        inserter = self.home.cookie_inserter(service) if new_session and service.http else None
        self.apps.start(self._connect_local(client, inserter))

    async def _connect_local(
        self, client: ClientEndpoint, inserter: ResponseCookieInserter | None
    ) -> None:
        learner = self.replication.learner_for(client.service, client.client[0])
        # the client's address to the application (issue 10): app_proxy_protocol = "v2"
        first = proxy_v2_header(client) if client.service.app_proxy_v2 else b""
        app = AppEndpoint(client, inserter, learner, first)
        try:
            await self.apps.connect_app(app, client.service)
        except (OSError, TimeoutError) as exc:
            self.counters["app_connect_failures"] += 1
            log.debug("app_connect_failed", app=str(client.service.app), error=str(exc))
            client.fail(int(ResetReason.APP_REFUSED))
            return
        if client.closed or client.state != WAIT:
            app.peer = None
            if app.transport is not None:
                app.transport.close()
            return
        client.start_splice(app)

    def abort_all(self) -> None:
        for client in list(self.clients):
            client.abort()


__all__ = ["Entry", "make_conn_ref", "proxy_v2_header"]
