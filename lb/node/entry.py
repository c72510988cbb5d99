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
import math
import socket
import ssl
from collections import Counter
from collections.abc import Callable

import structlog

from lb.clock import Monotonic, wall
from lb.config import Address, FarmConfig, Limits
from lb.errors import LinkError, TableFull
from lb.extract.api import Extractor, Identifier
from lb.node.accesslog import AccessLog
from lb.node.app import AppConnector
from lb.node.client import WAIT, ClientEndpoint
from lb.node.home import Home
from lb.node.http_client import HttpClient
from lb.node.http_state import ROUTED, HttpClientState
from lb.node.metrics import Metrics
from lb.node.peerlink import LinkDriver
from lb.node.peers import Peers
from lb.node.registry import Registry
from lb.node.replication import Replication
from lb.node.service import Service
from lb.node.sockets import accept_forever
from lb.node.splice import AppEndpoint
from lb.node.timer import Deadlines
from lb.node.upstream import FlowUpstream, LocalUpstream, Upstream, UpstreamPool
from lb.routing.directory import source_key
from lb.routing.route import Decision, Router
from lb.wire import frames as fr
from lb.wire import http1
from lb.wire.forwarded import ForwardedHeaders
from lb.wire.frames import ConnRef, ResetReason
from lb.wire.http import RequestHead
from lb.wire.proxy import encode_proxy_v2, encode_proxy_v2_local

Client = ClientEndpoint | HttpClientState
IDLE_SWEEP_MAX = 1.0  # seconds between idle sweeps at most (pooled upstreams expire then too)

log = structlog.get_logger("lb.entry")

LINK_WAIT_POLL = 0.05  # seconds between looks at a link a held client waits for
MAX_TLS_HANDSHAKES = 256  # concurrent TLS handshakes of client connections, per process
MAX_TLS_HANDSHAKES_PER_SOURCE = 32  # ... of them from one IPv4 address or IPv6 /64


def _ip_or_unspecified(host: str, like: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "::" if ":" in like else "0.0.0.0"


def _affinity_source(client: ClientEndpoint | HttpClientState) -> str | None:
    """The client address new sessions are placed by, or None (each placed alone)."""
    if not client.service.client_affinity:
        return None
    return client.client[0] or None


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
        self.clients: set[Client] = set()
        self.heads: Deadlines[Client] = Deadlines()
        self.pool = UpstreamPool(loop.time, config.limits.pool_idle_timeout, self._keeps)
        self.draining = False
        idle = config.limits.idle_timeout
        self.idle_interval = min(idle / 8, IDLE_SWEEP_MAX, config.limits.pool_idle_timeout / 4)
        # closed after `idle_ticks` silent sweeps: between idle_timeout and one sweep more
        self.idle_ticks = math.ceil(idle / self.idle_interval - 1e-9)
        self.local_active = 0
        self.salt = 0
        self.last_extractor_log = 0.0
        self.last_accept_log = 0.0
        self.max_connections = config.limits.max_connections
        self.max_handshakes = MAX_TLS_HANDSHAKES
        self.handshaking = 0  # TLS clients accepted, handshake not done: they count too
        self.handshakes_by_source: Counter[str] = Counter()
        self.handshakes: set[asyncio.Task[None]] = set()
        self.metrics: Metrics | None = None  # set by the node when its admin listener is on
        self.access = AccessLog.from_config(config, name)
        self.now = loop.time
        self.registry: Registry | None = None  # directory owners (set by the node)

    # -- admission and head deadlines --------------------------------------------------
    def admit(self, client: Client) -> bool:
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
        client = HttpClient(self, service, reserved=True)
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

    def release(self, client: Client) -> None:
        # a tcp connection counts as one request (status unread); http requests are
        # recorded one by one (request_done)
        if self.metrics is not None and isinstance(client, ClientEndpoint):
            self.metrics.ended(client, client.service.name, self.name, self.loop.time())
        if client in self.clients:
            self.clients.discard(client)
            if isinstance(client, ClientEndpoint) and client.local:
                self.local_active -= 1

    def head_started(self, client: Client) -> None:
        self.wake_at(self.heads.add(client, self.loop.time() + self.limits.head_timeout))

    def head_done(self, client: Client) -> None:
        self.heads.discard(client)

    def sweep(self, now: Monotonic) -> float | None:
        """Timer: clients whose head did not arrive in time."""
        for client in self.heads.pop_due(now):
            client.head_timed_out()
        return self.heads.next_deadline()

    def sweep_idle(self) -> None:
        """Every `idle_interval`: connections silent both ways for idle_timeout
        are closed with a FIN (a request waiting for its response is silent too, and is
        not cut before that); idle pooled upstreams past their time are closed."""
        for client in list(self.clients):
            client.idle_tick(self.idle_ticks)
        self.pool.sweep()
        view = self.peers.view
        for home in {key[0] for key in self.pool.idle}:
            if home in view.draining or home not in view.live:
                self.pool.close_home(home)  # let a draining home finish: no idle flows to it

    def _keeps(self, home: str) -> bool:
        """Upstreams to `home` go back to the pool unless it drains or left (this node
        included: a draining node's clients are closed after their answer anyway)."""
        view = self.peers.view
        return home in view.live and home not in view.draining

    def drain(self) -> None:
        """Draining: idle keep-alive clients are closed now, busy ones after their response."""
        self.draining = True
        for client in list(self.clients):
            if isinstance(client, HttpClient):
                client.abort_idle()

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
    def route(
        self, client: ClientEndpoint, identifier: Identifier | None, looked_up: bool = False
    ) -> None:
        self.head_done(client)
        self.salt = (self.salt + 0x9E3779B1) & 0xFFFFFFFF
        # new sessions of one client address agree on a home (docs/routing.md)
        decision = self.router.route(
            identifier,
            self.peers.view,
            wall(),
            self.salt ^ client.client[1],
            _affinity_source(client),
        )
        # issue 11: a directory key this replica does not hold: ask its owners first
        # (one link round trip, bounded by lookup_timeout), then route with the answer
        registry = self.registry
        miss = decision.reason == "directory-miss" and identifier is not None
        if miss and not looked_up and registry is not None and identifier is not None:
            self._route_after_lookup(client, identifier, registry)
            return
        self.counters[decision.reason] += 1
        if self.metrics is not None:  # METRICS: where the connection went (see release)
            self.metrics.routed(client, self.name, decision.home, self.loop.time())
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

    # -- per-request routing (http, tls-terminate) -----------------------------------
    def decide(
        self, client: HttpClientState, identifier: Identifier | None, looked_up: bool = False
    ) -> Decision | None:
        """The request's home; None while the directory owners are asked about a key this
        replica does not hold (one link round trip, bounded by lookup_timeout), then
        `client.decided(...)` follows with the decision made with their answer."""
        self.salt = (self.salt + 0x9E3779B1) & 0xFFFFFFFF
        # new sessions of one client address agree on a home (docs/routing.md)
        decision = self.router.route(
            identifier,
            self.peers.view,
            wall(),
            self.salt ^ client.client[1],
            _affinity_source(client),
        )
        registry = self.registry
        if (
            decision.reason == "directory-miss"
            and not looked_up
            and registry is not None
            and identifier is not None
        ):
            known = identifier

            def answer(_home: str | None) -> None:
                if not client.closed and client.state == ROUTED:
                    client.decided(self.decide(client, known, looked_up=True))

            if registry.lookup(identifier.kind, identifier.value, answer) is None:
                return None
            return self.decide(client, identifier, looked_up=True)  # learned meanwhile
        self.counters[decision.reason] += 1
        return decision

    def retry(self, client: HttpClientState, failed: Decision) -> Decision | None:
        """A new session whose home could not be reached, placed once more on another
        live, non-draining node (None when there is none)."""
        self.salt = (self.salt + 0x9E3779B1) & 0xFFFFFFFF
        decision = self.router.retry(
            failed.home,
            self.peers.view,
            wall(),
            self.salt ^ client.client[1],
            _affinity_source(client),
        )
        if decision is not None:
            self.counters[decision.reason] += 1
        return decision

    def upstream_for(
        self, client: HttpClientState, decision: Decision, fresh: bool = False
    ) -> Upstream | None:
        """A pooled upstream to the decision's home, a new flow, or None while one is
        being made (then `client.attach` or `client.fail` follows)."""
        service = client.service
        pool = self.pool
        if decision.local:
            key = (self.name, service.name)
            upstream = None if fresh else pool.take(key)
            if upstream is not None:
                return upstream
            local = LocalUpstream(pool, key, self.name)
            self.apps.start(self._connect_upstream(client, local))
            return None
        home = decision.home
        link = self.peers.links_out.get(home)
        if link is None or link.closed or not link.authenticated:
            if decision.new_session:
                here = Decision(self.name, True, True, decision.reason)
                client.decision = here
                return self.upstream_for(client, here, fresh)
            # the home is live but our link to it is (re)connecting: hold the request
            self.loop.create_task(self._upstream_when_linked(client, decision))
            return None
        key = (home, service.name)
        upstream = None if fresh else pool.take(key)
        if upstream is not None:
            return upstream
        flow_upstream = FlowUpstream(pool, key, home)
        home_addr = self.peers.config.nodes[home].listen[service.name]
        ref = make_conn_ref(client.client, home_addr, service.name)
        if self.metrics is not None:
            self.metrics.forwarded[home] += 1  # flows opened (requests reuse them)
        try:
            flow_upstream.flow = link.open_flow(flow_upstream, ref, b"", 0)
        except TableFull:
            self.counters["table_full"] += 1
            client.fail(int(ResetReason.TABLE_FULL))
            return None
        except LinkError:
            link.close()
            client.fail(int(ResetReason.LINK_CLOSED))
            return None
        return flow_upstream

    async def _connect_upstream(self, client: HttpClientState, upstream: LocalUpstream) -> None:
        try:
            await self.apps.connect_app(upstream, client.service)
        except (OSError, TimeoutError) as exc:
            self.counters["app_connect_failures"] += 1
            log.debug("app_connect_failed", app=str(client.service.app), error=str(exc))
            client.fail(int(ResetReason.APP_REFUSED))
            return
        if client.closed or client.state != ROUTED:
            upstream.release(reusable=True)  # a fresh connection: keep it for the next one
            return
        client.attach(upstream)

    async def _upstream_when_linked(self, client: HttpClientState, decision: Decision) -> None:
        limits = self.limits
        deadline = self.loop.time() + max(limits.connect_timeout, limits.dead_after)
        home = decision.home
        while self.loop.time() < deadline and not client.closed:
            link = self.peers.links_out.get(home)
            if link is not None and link.authenticated and not link.closed:
                upstream = self.upstream_for(client, decision)
                if upstream is not None:
                    client.attach(upstream)
                return
            if home not in self.peers.view.live:
                # declared dead while we waited: route again (the session is re-homed)
                client.reroute()
                return
            await asyncio.sleep(LINK_WAIT_POLL)
        self.counters["link_waits_failed"] += 1
        client.fail(int(ResetReason.LINK_CLOSED))

    def request_head(self, client: HttpClientState, head: RequestHead) -> bytes:
        """The request head as it goes to the home: the client's address in
        X-Forwarded-For / X-Forwarded-Proto / Forwarded (a client-sent chain is kept
        only from a trusted proxy); the client's own Connection options stay with the
        client (lb.wire.http1.upstream_hop_by_hop)."""
        service = client.service
        if service.forwarded_headers:
            fwd = client.forwarded
            if fwd is None:
                ip = client.client[0]
                proto = "https" if service.server_ssl is not None else "http"
                fwd = client.forwarded = ForwardedHeaders(
                    ip, proto, service.trusted_proxies.contains(ip)
                )
            raw = fwd.rewrite(head, client.buf)
        else:
            raw = bytes(client.buf[: head.length])
        return http1.upstream_hop_by_hop(raw, head, client.upgrade)

    def response_head(
        self,
        client: HttpClientState,
        head: http1.ResponseHead,
        buf: bytes | bytearray,
        start: int,
        end: int,
        decision: Decision,
    ) -> bytes | None:
        """The response head `buf[start:end]` as it goes to the client, or None when it
        goes unchanged: the home cookie of a new session, and the client side's own
        Connection header (RFC 9112 9.6: a connection about to be closed says
        `Connection: close`; an application's close is not the client's)."""
        raw: bytes | None = None
        if head.status != 101:
            if self.draining:
                client.keep_alive = False
            if client.keep_alive:
                if head.close:  # the application closes its side, not the client's
                    raw = http1.without_connection_headers(bytes(buf[start:end]))
                    if head.minor == 0:
                        raw = http1.with_header(raw, b"Connection: keep-alive\r\n")
            elif not head.close:
                raw = bytes(buf[start:end])
                if head.connection_header:
                    raw = http1.without_connection_headers(raw)
                raw = http1.with_header(raw, b"Connection: close\r\n")
        if decision.new_session:
            line = self.home.set_cookie_line(client.service, decision.home)
            raw = http1.with_header(raw if raw is not None else bytes(buf[start:end]), line)
        return raw

    def request_done(self, client: HttpClientState, status: int) -> None:
        """One request ended with `status` (its response's, or the error lb answered)."""
        metrics = self.metrics
        access = self.access
        if metrics is None and not access.enabled:
            return
        now = self.loop.time()
        start = client.t_start or client.t_routed or now
        decision = client.decision
        home = decision.home if decision is not None else None
        service = client.service.name
        if metrics is not None:
            metrics.request(
                service,
                self.name,
                home or "",
                status,
                client.bytes_in,
                client.bytes_out,
                now - start,
            )
        if access.enabled:
            head = client.head
            identifier = client.identifier
            routed = client.t_routed
            access.record(
                service,
                self.name,
                home,
                head.method if head is not None else "-",
                head.target if head is not None else "-",
                status,
                client.bytes_in,
                client.bytes_out,
                (routed - start) if routed else None,
                (client.t_attached - start) if client.t_attached else None,
                (client.t_first_out - start) if client.t_first_out else None,
                now - start,
                identifier.kind if identifier is not None else None,
                decision.new_session if decision is not None else False,
            )

    def learn(
        self,
        kind: str,
        value: str,
        ttl: float | None,
        source: str,
        home: str,
        release: Callable[[], None],
    ) -> bool:
        """Record (kind, value) -> home: True when done; False when the key's directory
        owners must acknowledge first (then `release()` follows once, bounded)."""
        registry = self.registry
        if registry is None:
            self.replication.learn_entry(kind, value, ttl, home, source)
            return True
        return registry.register(kind, value, ttl, home, release, source=source)

    def _route_after_lookup(
        self, client: ClientEndpoint, identifier: Identifier, registry: Registry
    ) -> None:
        """issue 11: hold the client until the key's owners answered, then route again
        (the answer was merged into the replica, so the router finds it)."""
        client.state = WAIT

        def answer(_home: str | None) -> None:
            if not client.closed:
                self.route(client, identifier, looked_up=True)

        if registry.lookup(identifier.kind, identifier.value, answer) is not None:
            self.route(client, identifier, looked_up=True)  # learned meanwhile

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
        self.apps.start(self._connect_local(client))

    async def _connect_local(self, client: ClientEndpoint) -> None:
        learner = self.replication.learner_for(client.service, client.client[0])
        # the client's address to the application: app_proxy_protocol = "v2"
        first = proxy_v2_header(client) if client.service.app_proxy_v2 else b""
        app = AppEndpoint(client, learner, first)
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
        self.pool.close_all()


__all__ = ["Entry", "make_conn_ref", "proxy_v2_header"]
