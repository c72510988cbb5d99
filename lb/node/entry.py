"""The entry side: admit client connections, route them, and start their splice.

A client connection (lb.node.client) reads until the extractor chain answers
and then asks `route`: the router's decision sends it to the local
application (through the application connector) or to a flow on the link to
its home. Admission (`max_connections`), head deadlines and the idle sweep of
client connections live here too. The requests of HTTP services are routed
one by one by its base class lb.node.entry_http.HttpRouting.

It must not decide placement (lb.routing.route does) nor speak the link
protocol (lb.link); it only carries out the decision.
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from collections.abc import Callable
from typing import cast

import structlog

from lb.clock import Monotonic
from lb.config import FarmConfig, Limits
from lb.errors import ExtractorAnswerError, LinkError, TableFull
from lb.extract.api import Extractor, Identifier
from lb.node.accesslog import AccessLog, connection_fields
from lb.node.app import AppConnector
from lb.node.client import WAIT, ClientEndpoint
from lb.node.entry_http import LINK_WAIT_POLL, HttpRouting, link_wait, make_conn_ref
from lb.node.handshake_slots import HandshakeSlots, Offer
from lb.node.home import Home
from lb.node.http_client import HttpClient
from lb.node.http_state import HttpClientState
from lb.node.metrics import Metrics
from lb.node.peerlink import LinkDriver
from lb.node.peers import Peers
from lb.node.placing import SiblingPlacement
from lb.node.registry import Registry
from lb.node.replication import Replication
from lb.node.service import Service
from lb.node.sockets import accept_forever
from lb.node.splice import AppEndpoint
from lb.node.timer import Deadlines
from lb.node.upstream import UpstreamPool
from lb.routing.directory import source_key
from lb.routing.route import Router
from lb.wire import frames as fr
from lb.wire.frames import ResetReason
from lb.wire.proxy import encode_proxy_v2, encode_proxy_v2_local

Client = ClientEndpoint | HttpClientState
IDLE_SWEEP_MAX = 1.0  # seconds between idle sweeps at most (pooled upstreams expire then too)

log = structlog.get_logger("lb.entry")

MAX_TLS_HANDSHAKES = 256  # concurrent TLS handshakes of client connections, per process
MAX_TLS_HANDSHAKES_PER_SOURCE = 32  # ... of them from one IPv4 address or IPv6 /64
# connections over either wait for a slot, within head_timeout from accept; this many of
# one source may wait (and half of max_connections in all), more are closed at once
MAX_TLS_WAITING_PER_SOURCE = 1024


class WaitingHandshake:
    """A TLS client connection accepted and counted, before or during its handshake."""

    __slots__ = ("conn", "deadline", "service", "timer")

    def __init__(self, conn: socket.socket, service: Service, deadline: float) -> None:
        self.conn = conn
        self.service = service
        self.deadline = deadline  # head_timeout after accept: the handshake's end at the latest
        self.timer: asyncio.TimerHandle | None = None  # while it waits for a slot

    def stop_waiting(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


def proxy_v2_header(client: ClientEndpoint) -> bytes:
    """The PROXY v2 header of a local splice: the client, and the address it connected to
    (LOCAL if the socket is already gone)."""
    transport = client.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    if not local:
        return encode_proxy_v2_local()
    return encode_proxy_v2(client.client, (local[0], local[1]))


class Entry(HttpRouting):
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
        self.view_cell = peers.view_cell  # the farm view of now, read per request
        self.links_out = peers.links_out  # Peers never replaces this dict (one look-up less)
        self.apps = apps
        self.home = home
        self.replication = replication
        self.counters = counters
        # counts of the per-request path, kept out of `counters` (a Counter costs about
        # 1,500 instructions an increment compiled) until counter_values moves them there
        self.requests_done = 0  # http_requests
        self.reason_counts: dict[str, int] = {}  # decision reason -> routed
        self.last_reason = ""  # and the run of requests routed for one reason since
        self.last_reason_routed = 0
        self.wake_at = wake_at
        self.clients: set[Client] = set()
        self.heads: Deadlines[Client] = Deadlines()
        self.pool = UpstreamPool(loop.time, config.limits.pool_idle_timeout, self._keeps)
        self.draining = False
        idle = config.limits.idle_timeout
        self.idle_interval = min(idle / 8, IDLE_SWEEP_MAX, config.limits.pool_idle_timeout / 4)
        self.local_active = 0
        self.salt = 0
        self.last_extractor_log = 0.0
        self.last_accept_log = 0.0
        # TLS clients accepted whose handshake is not done (running or waiting for a slot):
        # they count against max_connections too
        self.handshaking = 0
        self.handshake_slots: HandshakeSlots[WaitingHandshake] = HandshakeSlots(
            MAX_TLS_HANDSHAKES, MAX_TLS_HANDSHAKES_PER_SOURCE, MAX_TLS_WAITING_PER_SOURCE, 0
        )
        self.max_connections = 0
        self.set_max_connections(config.limits.max_connections)
        self.handshakes: set[asyncio.Task[None]] = set()
        self.metrics: Metrics | None = None  # set by the node when its admin listener is on
        self.access = AccessLog.from_config(config, name)
        self.now = loop.time
        self.on_extractor_error = self.extractor_failed
        self.registry: Registry | None = None  # directory owners (set by the node)
        self.placing: SiblingPlacement | None = None  # several workers agree (set by the node)

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

    def set_max_connections(self, limit: int) -> None:
        """The client connections this process admits (its share of the node's). TLS
        connections waiting for a handshake slot take at most half of them: sockets that
        never handshake do not hold every connection slot (other services' included)."""
        self.max_connections = limit
        self.handshake_slots.max_waiting_total = limit // 2

    def reserve_tls(self) -> bool:
        """Accept time of a TLS client: count it against max_connections before its
        handshake (or its wait for a handshake slot)."""
        if len(self.clients) + self.handshaking >= self.max_connections:
            self.counters["clients_refused"] += 1
            return False
        self.handshaking += 1
        return True

    def handshake_failed(self) -> None:
        self.handshaking -= 1
        self.counters["tls_handshakes_failed"] += 1

    def tls_handshakes(self) -> dict[str, int]:
        """TLS clients accepted whose handshake is not done, for inspection: all of them
        (`accepted`, counted against max_connections), those handshaking (`running`) and
        those waiting for a slot (`waiting`); `accepted` is the sum of the other two."""
        return {
            "accepted": self.handshaking,
            "running": self.handshake_slots.running,
            "waiting": self.handshake_slots.queued,
        }

    async def serve_tls(self, sock: socket.socket, service: Service) -> None:
        """Accept loop of a tls-terminate listener: admission before the TLS handshake.

        Every socket counts against max_connections from accept on (over it, it is
        closed at once, before any byte of it is read); handshakes are capped per
        process and per source, a socket over a cap waits for a slot, and the wait
        and the handshake together are bounded by head_timeout.
        """
        assert service.server_tls is not None

        def on_socket(conn: socket.socket, address: str) -> None:
            self.tls_accepted(conn, address, service)

        await accept_forever(self.loop, sock, on_socket, self.accept_failed)

    def tls_accepted(self, conn: socket.socket, address: str, service: Service) -> None:
        """A socket accepted on a tls-terminate listener (by serve_tls, or by the listener
        taking its queue as it closes): counted, then its handshake starts or waits for a
        slot (lb.node.handshake_slots), or it is closed (over max_connections)."""
        if not self.reserve_tls():
            conn.close()
            return
        source = source_key(address)
        waiting = WaitingHandshake(conn, service, self.loop.time() + self.limits.head_timeout)
        offer = self.handshake_slots.offer(source, waiting)
        if offer is Offer.START:
            self._start_handshake(source, waiting)
        elif offer is Offer.WAIT:
            self.counters["tls_handshakes_queued"] += 1
            waiting.timer = self.loop.call_at(
                waiting.deadline, self._handshake_wait_expired, source, waiting
            )
        else:
            self._drop_unstarted(waiting, "tls_handshakes_refused")

    def _start_handshake(self, source: str, waiting: WaitingHandshake) -> None:
        task = self.loop.create_task(self._handshake(source, waiting))
        self.handshakes.add(task)
        task.add_done_callback(self.handshakes.discard)

    def _handshake_wait_expired(self, source: str, waiting: WaitingHandshake) -> None:
        """head_timeout passed while the connection waited for a handshake slot."""
        if self.handshake_slots.withdraw(source, waiting):
            self._drop_unstarted(waiting, "tls_handshakes_expired")

    def _drop_unstarted(self, waiting: WaitingHandshake, counter: str | None) -> None:
        """Close a counted TLS connection whose handshake never started."""
        waiting.stop_waiting()
        waiting.conn.close()
        self.handshaking -= 1
        if counter is not None:
            self.counters[counter] += 1

    async def _handshake(self, source: str, waiting: WaitingHandshake) -> None:
        client = HttpClient(self, waiting.service, reserved=True)
        conn = waiting.conn
        assert waiting.service.server_tls is not None
        ssl_ctx = waiting.service.server_tls.context
        try:
            await self.loop.connect_accepted_socket(
                lambda: cast(asyncio.BaseProtocol, client),
                conn,
                ssl=ssl_ctx,
                # head_timeout counts from accept, the wait for a slot included
                ssl_handshake_timeout=max(waiting.deadline - self.loop.time(), 0.001),
            )
        except (OSError, TimeoutError, ConnectionError):
            conn.close()
            if client.reserved:  # the handshake never completed: release the slot
                client.reserved = False
                self.handshake_failed()
        finally:
            for next_source, next_waiting in self.handshake_slots.ended(source):
                next_waiting.stop_waiting()
                self._start_handshake(next_source, next_waiting)

    def accept_failed(self, exc: OSError) -> None:
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
            self.metrics.ended(
                client,
                client.service.name,
                self.name,
                self.loop.time(),
                client.bytes_read,
                client.bytes_sent,
            )
        if isinstance(client, ClientEndpoint) and self.access.enabled:
            self._connection_line(client)
        if client in self.clients:
            self.clients.discard(client)
            if isinstance(client, ClientEndpoint) and client.local:
                self.local_active -= 1

    def _connection_line(self, client: ClientEndpoint) -> None:
        """A tcp or tls-passthrough connection's access line, when it was routed or sent
        a byte (a connection that sent nothing is not logged, as HAProxy's dontlognull)."""
        if client.home is None and not client.bytes_read:
            return
        if not self.access.wanted():
            return
        start = client.t_start
        self.access.write_fields(
            connection_fields(
                client.service.name,
                self.name,
                client.client[0],
                client.client[1],
                client.home,
                client.error or None,
                client.bytes_read,
                client.bytes_sent,
                client.t_home - start if client.t_home else None,
                self.loop.time() - start,
                client.id_kind,
                client.new_session,
            )
        )

    def head_started(self, client: Client) -> None:
        self.wake_at(self.heads.add(client, self.loop.time() + self.limits.head_timeout))

    def head_done(self, client: Client) -> None:
        self.heads.discard(client)

    def sweep(self, now: Monotonic) -> float | None:
        """Timer: clients whose head did not arrive in time."""
        for client in self.heads.pop_due(now):
            client.head_timed_out()
        return self.heads.next_deadline()

    def sweep_idle(self, now: float) -> None:
        """Every `idle_interval`: connections silent both ways for idle_timeout
        are closed with a FIN (a request waiting for its response is silent too, and is
        not cut before that); idle pooled upstreams past their time are closed."""
        for client in list(self.clients):
            client.idle_tick(now, self.limits.idle_timeout)
        self.pool.sweep()
        view = self.view_cell.view
        for home in self.pool.homes():
            if home in view.draining or home not in view.live:
                self.pool.close_home(home)  # let a draining home finish: no idle flows to it

    def _keeps(self, home: str) -> bool:
        """Upstreams to `home` go back to the pool unless it drains or left (this node
        included: a draining node's clients are closed after their answer anyway)."""
        view = self.view_cell.view
        return home in view.live and home not in view.draining

    def drain(self) -> None:
        """Draining: idle keep-alive clients are closed now, busy ones after their response."""
        self.draining = True
        for client in list(self.clients):
            if isinstance(client, HttpClient):
                client.abort_idle()

    def undrain(self) -> None:
        """Undrained (the admin API): answers keep their client connections again."""
        self.draining = False

    def count(self, name: str) -> None:
        self.counters[name] += 1

    def counter_values(self) -> dict[str, int]:
        """The node's counters (shared by its parts), the entry's per-request counts
        moved in first."""
        counters = self.counters
        if self.requests_done:
            counters["http_requests"] += self.requests_done
            self.requests_done = 0
        self.fold_reasons()
        for reason, routed in self.reason_counts.items():
            counters[reason] += routed
        self.reason_counts.clear()
        return dict(counters)

    def extractor_failed(self, extractor: Extractor, exc: BaseException) -> None:
        self.counters["extractor_failures"] += 1
        now = self.loop.time()
        if now - self.last_extractor_log >= 1.0:  # at most one line a second
            self.last_extractor_log = now
            log.warning(
                "extractor_failed",
                node=self.name,
                extractor=getattr(extractor, "name", type(extractor).__name__),
                # the type only: an exception's text may quote the request (a session token);
                # lb's own text for an answer of the wrong type holds none of it
                error=type(exc).__name__,
                reason=str(exc) if isinstance(exc, ExtractorAnswerError) else None,
                failures=self.counters["extractor_failures"],
            )

    # -- routing ---------------------------------------------------------------------------
    def route(
        self, client: ClientEndpoint, identifier: Identifier | None, looked_up: bool = False
    ) -> None:
        self.head_done(client)
        decision = self.placed(client, identifier)
        # issue 11: a directory key this replica does not hold: ask its owners first
        # (one link round trip, bounded by lookup_timeout), then route with the answer
        registry = self.registry
        miss = decision.reason == "directory-miss" and identifier is not None
        if miss and not looked_up and registry is not None and identifier is not None:
            self._route_after_lookup(client, identifier, registry)
            return
        self.count_reason(decision.reason)
        client.home = decision.home
        client.new_session = decision.new_session
        client.id_kind = identifier.kind if identifier is not None else None
        if self.metrics is not None:  # METRICS: where the connection went (see release)
            self.metrics.routed(client, self.name, decision.home, self.loop.time())
        if decision.local:
            self._start_local(client, decision.new_session)
            return
        link = self.links_out.get(decision.home)
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
        # wait for the link, or for the membership verdict on a suspect home (dead_after),
        # or for a restarting one (dead_rehome_after)
        limits = self.limits
        deadline = self.loop.time() + link_wait(limits)
        while self.loop.time() < deadline and not client.closed:
            link = self.links_out.get(home)
            if link is not None and link.authenticated and not link.closed:
                self._forward(client, link, home, False)
                return
            if home not in self.view_cell.view.live:
                # declared dead while we waited: route again (the session is re-homed)
                self.route(client, identifier)
                return
            if home in self.peers.held:
                break  # this node hears no peer: the home keeps its sessions, no link comes
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
        home_addr = self.peers.config.nodes[home].listen[service.name][0]  # the primary
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
        """The node stops: every client connection is closed, TLS ones before or during
        their handshake included. The connections waiting for a handshake slot go first,
        so the handshakes that end meanwhile hand no slot out (a handshake started on a
        closing event loop is destroyed pending, or fails: "Event loop is closed")."""
        for waiting in self.handshake_slots.clear():
            self._drop_unstarted(waiting, None)
        for task in list(self.handshakes):
            task.cancel()
        for client in list(self.clients):
            client.abort()
        self.pool.close_all()


__all__ = ["Entry", "make_conn_ref", "proxy_v2_header"]
