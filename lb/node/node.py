"""The node: owns the listeners, the links, the timers and the farm view.

It wires the pure core to sockets: client connections ask it to route
(`route_client`), links hand it NEW frames (`home_new_flow`) and liveness
news. One periodic tick (not one timer per connection) sweeps head timeouts,
idle connections and pending flows, sends PINGs and rebuilds the farm view.

It must not parse bytes or decide placement itself: that is lb.wire,
lb.extract and lb.routing.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar, cast

import structlog

from lb.cluster.membership import (
    Broadcast,
    Membership,
    MemberState,
    SendProbeRequest,
    SendProbeResult,
    SendTo,
    StateChanged,
    Timing,
    diff_members,
)
from lb.cluster.view import FarmView, NodeInfo
from lb.config import Address, FarmConfig, Limits, NodeConfig
from lb.errors import FrameError, LinkError, TableFull
from lb.extract.api import Extractor, Identifier
from lb.node.client import SPLICE, WAIT, ClientEndpoint
from lb.node.learn import SessionLearner
from lb.node.link import Flow, Link, link_key
from lb.node.service import Service, build_service
from lb.node.splice import AppEndpoint, Endpoint
from lb.routing.cookie import CookieKeyring, set_cookie_header_value
from lb.routing.directory import Directory
from lb.routing.route import Router
from lb.wire import frames as fr
from lb.wire import membership as mw
from lb.wire.directory import DIRECTORY_UPDATE, decode_directory_update, encode_directory_frames
from lb.wire.frames import ConnRef, ResetReason
from lb.wire.http import ResponseCookieInserter

log = structlog.get_logger("lb.node")

P = TypeVar("P", bound=asyncio.BaseProtocol)

TICK = 0.1  # seconds between sweeps; bounds the precision of head/pending timeouts
RECONNECT_MIN = 0.1
RECONNECT_MAX = 1.0


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


def node_infos(config: FarmConfig) -> dict[str, NodeInfo]:
    """The farm view's description of every node of the farm file."""
    return {
        n.name: NodeInfo(
            n.name,
            (n.forward_advertised.host, n.forward_advertised.port),
            {s: (a.host, a.port) for s, a in n.listen.items()},
            n.weight,
        )
        for n in config.nodes.values()
    }


def _factory(protocol: P) -> Callable[[], P]:
    return lambda: protocol


class WorkerBus(asyncio.Protocol):
    """A worker's end of the bus to its sibling workers (see lb.node.workers)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.transport: asyncio.Transport | None = None
        self.decoder = fr.FrameDecoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            for frame in self.decoder.feed(data):
                if frame.type == DIRECTORY_UPDATE:
                    self.node.merge_directory(frame.payload, from_bus=True)
                elif frame.type == fr.FrameType.PING:
                    worker, load = fr.parse_ping(frame.payload)
                    self.node.sibling_load(worker, load)
        except FrameError as exc:
            log.error("bus_protocol_error", node=self.node.name, error=str(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        # the supervisor is gone: a worker must not outlive it
        if not self.node.stopping:
            log.error("supervisor_lost", node=self.node.name, worker=self.node.worker)
            self.node.exit_requested.set()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class Node:
    """One lb node of a farm, inside one event loop."""

    def __init__(
        self,
        config: FarmConfig,
        me: NodeConfig,
        worker: int | None = None,
        bus_fd: int | None = None,
    ) -> None:
        self.config = config
        self.worker = worker  # index among the node's workers; None when it runs alone
        self.bus_fd = bus_fd
        self.bus: WorkerBus | None = None
        self.sibling_loads: dict[int, int] = {}  # the other workers' loads, by index
        self.reuse_port = me.workers > 1
        self.exit_requested = asyncio.Event()
        self.me = me
        self.name = me.name
        self.farm_name = config.name
        self.limits: Limits = config.limits
        self.loop = asyncio.get_running_loop()
        self.link_key = link_key(config.secret)
        self.keyring = CookieKeyring(config.name, config.secret, config.previous_secrets)
        self.directory = Directory(max_entries=self.limits.directory_entries)
        self.router = Router(self.keyring, self.directory)
        self.services: dict[str, Service] = {
            svc.name: build_service(svc, me, config.cookie_name) for svc in config.services.values()
        }
        self.node_infos = node_infos(config)
        self.peers = [n for n in config.nodes if n != self.name]
        limits = self.limits
        self.membership = Membership(
            self.name,
            self.peers,
            self.loop.time(),
            timing=Timing(
                ping_interval=limits.ping_interval,
                suspect_after=limits.suspect_after,
                dead_after=limits.dead_after,
                probe_interval=limits.ping_interval,
                recheck_interval=max(limits.dead_after, 2 * limits.ping_interval),
            ),
            # a restarted node outranks what the farm remembers of its previous life
            incarnation=int(time.time()),
        )
        self.loads: dict[str, float] = {}
        self.links_out: dict[str, Link] = {}
        self.links_in: set[Link] = set()
        self.heading: dict[ClientEndpoint, float] = {}
        self.clients: set[ClientEndpoint] = set()
        self.local_active = 0
        self.counters: Counter[str] = Counter()
        self.servers: list[asyncio.Server] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.link_tasks: dict[str, asyncio.Task[None]] = {}
        self.connecting: dict[asyncio.Task[None], float] = {}  # application connects: deadline
        self.connect_timed_out: set[asyncio.Task[None]] = set()
        self.salt = 0
        self.last_extractor_log = 0.0
        self.stopping = False
        self.draining = False
        self.view = self._build_view()

    # -- lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        loop = self.loop
        fwd = self.me.forward
        self.servers.append(
            await loop.create_server(
                lambda: Link(self, outbound=False),
                fwd.host,
                fwd.port,
                backlog=1024,
                reuse_port=self.reuse_port,
            )
        )
        for service in self.services.values():
            self.servers.append(
                await loop.create_server(
                    lambda s=service: ClientEndpoint(self, s),
                    service.listen.host,
                    service.listen.port,
                    backlog=4096,
                    reuse_port=self.reuse_port,
                    ssl=service.server_ssl,
                    ssl_handshake_timeout=self.limits.head_timeout if service.server_ssl else None,
                )
            )
        if self.bus_fd is not None:
            sock = socket.socket(fileno=self.bus_fd)
            _, self.bus = await loop.create_unix_connection(lambda: WorkerBus(self), sock=sock)
        for peer in self.peers:
            self.link_tasks[peer] = loop.create_task(self._keep_link(peer))
        self.tasks.append(loop.create_task(self._tick_forever()))
        log.info(
            "node_started",
            node=self.name,
            worker=self.worker,
            farm=self.farm_name,
            forward=str(fwd),
            listeners={s.name: str(s.listen) for s in self.services.values()},
        )

    def reload(self, config: FarmConfig) -> None:
        """SIGHUP: nodes that joined or left the farm file, taken without a restart.

        Only membership changes apply live; other changes (services, limits,
        secrets, this node's own addresses) need a restart and are reported.
        """
        me = config.nodes.get(self.name)
        if config.name != self.farm_name or config.secret != self.config.secret or me is None:
            log.error(
                "reload_refused",
                node=self.name,
                reason="the new file changes the farm name or secret, or drops this node",
            )
            return
        if (
            config.services != self.config.services
            or config.limits != self.config.limits
            or me != self.me
        ):
            log.warning(
                "reload_partial",
                node=self.name,
                reason="only nodes joining or leaving apply live; restart for the other changes",
            )
        now = self.loop.time()
        added, removed = diff_members(set(self.peers), set(config.nodes) - {self.name})
        self.config = dataclasses.replace(self.config, nodes=config.nodes)
        self.node_infos = node_infos(config)
        for peer in sorted(removed):
            self.peers.remove(peer)
            self.membership.remove_node(peer, now)
            task = self.link_tasks.pop(peer, None)
            if task is not None:
                task.cancel()
            self._drop_links(peer)
            self.loads.pop(peer, None)
        for peer in sorted(added):
            self.peers.append(peer)
            self.membership.add_node(peer, now)
            self.link_tasks[peer] = self.loop.create_task(self._keep_link(peer))
        self._run_membership()
        self._refresh_view()
        log.info("farm_reloaded", node=self.name, joined=sorted(added), left=sorted(removed))

    def start_draining(self) -> None:
        """Take no new sessions; keep serving existing flows. Idempotent."""
        if self.draining:
            return
        self.draining = True
        for server in self.servers[1:]:  # client listeners; the link listener stays for peers
            server.close()
        self.membership.start_draining(self.loop.time())
        self._run_membership()
        self._refresh_view()
        log.info("draining", node=self.name, drain_timeout=self.limits.drain_timeout)

    def busy(self) -> bool:
        """Whether any client connection or home flow is still open."""
        return bool(self.clients) or any(len(link.tables) for link in self.links_in)

    async def drain_and_stop(self) -> None:
        """Drain, wait until the last flow ends or the drain deadline, then stop."""
        self.start_draining()
        deadline = self.loop.time() + self.limits.drain_timeout
        while self.busy() and self.loop.time() < deadline:
            await asyncio.sleep(TICK)
        # say goodbye: peers mark this node LEFT at once instead of detecting a failure;
        # then linger a little, serving flows a peer routed here before LEFT reached it
        self.membership.leave(self.loop.time())
        self._run_membership()
        linger_until = min(deadline, self.loop.time() + max(0.2, 2 * self.limits.ping_interval))
        while self.loop.time() < deadline and (self.loop.time() < linger_until or self.busy()):
            await asyncio.sleep(TICK)
        if self.busy():
            log.warning(
                "drain_deadline", node=self.name, clients=len(self.clients), load=self.load()
            )
        await self.stop()

    async def stop(self) -> None:
        self.stopping = True
        for server in self.servers:
            server.close()
        tasks = [*self.tasks, *self.link_tasks.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in list(self.clients):
            client.abort()
        for link in [*self.links_out.values(), *self.links_in]:
            link.close()
        await asyncio.sleep(0)
        log.info("node_stopped", node=self.name)

    # -- clients ------------------------------------------------------------------
    def admit_client(self, client: ClientEndpoint) -> bool:
        if len(self.clients) >= self.limits.max_connections:
            self.counters["clients_refused"] += 1
            return False
        self.clients.add(client)
        return True

    def release_client(self, client: ClientEndpoint) -> None:
        if client in self.clients:
            self.clients.discard(client)
            if client.local:
                self.local_active -= 1

    def route_client(self, client: ClientEndpoint, identifier: Identifier | None) -> None:
        self.salt = (self.salt + 0x9E3779B1) & 0xFFFFFFFF
        decision = self.router.route(
            identifier, self.view, self.wall_time(), self.salt ^ client.client[1]
        )
        self.counters[decision.reason] += 1
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

    async def _forward_when_linked(
        self, client: ClientEndpoint, home: str, identifier: Identifier | None
    ) -> None:
        # wait for the link, or for the membership verdict on a suspect home (dead_after)
        limits = self.limits
        deadline = self.loop.time() + max(limits.connect_timeout, limits.dead_after)
        while self.loop.time() < deadline and not client.closed:
            link = self.links_out.get(home)
            if link is not None and link.authenticated and not link.closed:
                self._forward(client, link, home, False)
                return
            if home not in self.view.live:
                # declared dead while we waited: route again (the session is re-homed)
                self.route_client(client, identifier)
                return
            await asyncio.sleep(TICK / 2)
        self.counters["link_waits_failed"] += 1
        client.fail(int(ResetReason.LINK_CLOSED))

    def _forward(self, client: ClientEndpoint, link: Link, home: str, new_session: bool) -> None:
        """Open a flow to `home` on `link` and splice the client to it."""
        if client.closed:
            return
        service = client.service
        home_addr = self.config.nodes[home].listen[service.name]
        ref = make_conn_ref(client.client, home_addr, service.name)
        flags = fr.FLAG_NEW_SESSION if new_session and service.http else 0
        initial, client.buf = client.buf, b""
        try:
            flow = link.open_flow(client, ref, initial, flags, self.loop.time())
        except TableFull:
            self.counters["table_full"] += 1
            client.finish_with(503)
            return
        except LinkError:
            link.close()  # flow ids used up: _keep_link opens a fresh link
            client.buf = initial
            client.fail(int(ResetReason.LINK_CLOSED))
            return
        client.start_splice(flow)

    def _start_local(self, client: ClientEndpoint, new_session: bool) -> None:
        client.state = WAIT
        client.local = True
        self.local_active += 1
        service = client.service
        inserter = self._cookie_inserter(service) if new_session and service.http else None
        self._start_connect(self._connect_local(client, inserter))

    async def _connect_local(
        self, client: ClientEndpoint, inserter: ResponseCookieInserter | None
    ) -> None:
        app = AppEndpoint(client, inserter, self._learner(client.service))
        try:
            await self._connect_app(app, client.service)
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

    def _cookie_inserter(self, service: Service) -> ResponseCookieInserter:
        ttl = self.config.cookie_ttl
        value = self.keyring.sign(self.name, int(time.time()) + ttl)
        header = set_cookie_header_value(
            self.config.cookie_name, value, max_age=ttl, secure=service.secure_cookie
        )
        return ResponseCookieInserter(header)

    def _start_connect(self, connect: Coroutine[Any, Any, None]) -> None:
        """Run an application connect; the tick's sweep bounds it by connect_timeout.

        One sweep for all connects instead of a timer per connection: a connect
        still running at its deadline is cancelled and fails with TimeoutError.
        """
        task = self.loop.create_task(connect)
        self.connecting[task] = self.loop.time() + self.limits.connect_timeout
        task.add_done_callback(self._connect_done)

    def _connect_done(self, task: asyncio.Task[None]) -> None:
        self.connecting.pop(task, None)
        self.connect_timed_out.discard(task)

    def _sweep_connects(self, now: float) -> None:
        late = [task for task, deadline in self.connecting.items() if deadline <= now]
        for task in late:
            del self.connecting[task]
            self.connect_timed_out.add(task)
            task.cancel()

    async def _connect_app(self, app: AppEndpoint, service: Service) -> None:
        """Connect the local application of `service` (TLS when configured).

        Bounded by the connect sweep: its cancellation surfaces here as TimeoutError.
        """
        target = service.app
        try:
            await self.loop.create_connection(
                _factory(app),
                target.host,
                target.port,
                ssl=service.app_ssl,
                server_hostname=service.app_server_hostname if service.app_ssl else None,
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task in self.connect_timed_out:
                task.uncancel()
                raise TimeoutError(
                    f"no connection to {target} within the connect timeout"
                ) from None
            raise

    def extractor_failed(self, extractor: Extractor, exc: BaseException) -> None:
        self.counters["extractor_failures"] += 1
        now = self.loop.time()
        if now - self.last_extractor_log >= 1.0:  # at most one line a second
            self.last_extractor_log = now
            log.warning(
                "extractor_failed",
                extractor=getattr(extractor, "name", type(extractor).__name__),
                error=f"{type(exc).__name__}: {exc}",
                failures=self.counters["extractor_failures"],
            )

    # -- home side ------------------------------------------------------------------
    def home_new_flow(self, link: Link, frame: fr.Frame) -> None:
        ref = frame.conn_ref
        assert ref is not None
        flow_id = frame.flow_id
        service = self.services.get(ref.service)
        if service is None:
            link.write(fr.encode_reset(flow_id, int(ResetReason.NO_SERVICE), ref.service))
            return
        if link.tables.get(flow_id) is not None:
            link.protocol_error(f"NEW for flow {flow_id} which exists")
            return
        flow = Flow(link, flow_id, link.window, None)
        try:
            link.tables.add_pending(flow_id, flow, self.loop.time())
        except TableFull:
            self.counters["table_full"] += 1
            link.write(fr.encode_reset(flow_id, int(ResetReason.TABLE_FULL)))
            return
        if frame.payload:
            flow.on_data(frame.payload)
        inserter = None
        if frame.flags & fr.FLAG_NEW_SESSION and service.http:
            inserter = self._cookie_inserter(service)
        self._start_connect(self._connect_home(link, flow, service, inserter))

    async def _connect_home(
        self, link: Link, flow: Flow, service: Service, inserter: ResponseCookieInserter | None
    ) -> None:
        app = AppEndpoint(flow, inserter, self._learner(service))
        try:
            await self._connect_app(app, service)
        except TimeoutError:
            self.counters["app_connect_failures"] += 1
            flow.reset(int(ResetReason.APP_TIMEOUT))
            return
        except OSError:
            self.counters["app_connect_failures"] += 1
            flow.reset(int(ResetReason.APP_REFUSED))
            return
        if flow.done:
            app.peer = None
            if app.transport is not None:
                app.transport.close()
            return
        link.tables.verify(flow.flow_id)
        link.write(fr.encode_verified(flow.flow_id))
        flow.attach(app)

    # -- links ------------------------------------------------------------------------
    def is_peer(self, name: str) -> bool:
        return name in self.node_infos and name != self.name

    async def _keep_link(self, peer: str) -> None:
        """Keep one outbound link to `peer` up, reconnecting with a short backoff."""
        addr = self.config.nodes[peer].forward_advertised
        delay = RECONNECT_MIN
        while not self.stopping:
            link = Link(self, outbound=True, expected_peer=peer)
            try:
                async with asyncio.timeout(self.limits.connect_timeout):
                    await self.loop.create_connection(_factory(link), addr.host, addr.port)
                    await link.ready
            except (OSError, TimeoutError, ConnectionError) as exc:
                if link.transport is not None:
                    link.transport.abort()
                log.debug("link_connect_failed", peer=peer, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            delay = RECONNECT_MIN
            await link.lost
            await asyncio.sleep(RECONNECT_MIN)

    def link_authenticated(self, link: Link) -> None:
        peer = link.peer_name
        assert peer is not None
        now = self.loop.time()
        if link.outbound:
            old = self.links_out.get(peer)
            if old is not None and old is not link:
                old.close()
            self.links_out[peer] = link
            link.ping()
            self._refresh_view()
        else:
            self.links_in.add(link)
        # a full directory sync each way: the peer (or this worker) may be new or was cut off
        for frame in encode_directory_frames(self.directory.entries(self.wall_time())):
            link.write(frame)
        self.membership.link_up(peer, now)
        self._run_membership()
        log.info("link_up", node=self.name, peer=peer, direction=link.describe().split()[-1])

    def link_closed(self, link: Link) -> None:
        peer = link.peer_name
        if link.outbound:
            if peer is not None and self.links_out.get(peer) is link:
                del self.links_out[peer]
                self._refresh_view()
        else:
            self.links_in.discard(link)
        if link.authenticated and peer is not None and not self.stopping:
            self.membership.link_lost(peer, self.loop.time())
            self._run_membership()
        if link.authenticated and not self.stopping:
            log.info(
                "link_down",
                node=self.name,
                peer=peer,
                direction=link.describe().split()[-1],
                reason=link.close_reason,
            )

    def peer_heard(self, link: Link, load: int) -> None:
        """A PING or PONG from the peer: it is alive and reachable, and this is its load."""
        if link.peer_name is not None:
            self.membership.heard(link.peer_name, self.loop.time())
            self.loads[link.peer_name] = load

    def control_frame(self, link: Link, frame: fr.Frame) -> None:
        """An extension frame on an authenticated link: directory or membership."""
        peer = link.peer_name
        assert peer is not None
        if frame.type == DIRECTORY_UPDATE:
            self.merge_directory(frame.payload, from_bus=False)
            return
        message = mw.parse_membership_frame(frame)
        if message is None:
            return  # an extension this version does not know: ignored (docs/protocol.md)
        now = self.loop.time()
        if isinstance(message, mw.ProbeRequest):
            self.membership.on_probe_request(peer, message.target, message.nonce, now)
        elif isinstance(message, mw.ProbeResult):
            self.membership.on_probe_result(peer, message.target, message.nonce, message.alive, now)
        else:
            for state in message:
                self.membership.on_node_state(peer, state, now)
        self._run_membership()

    def _link_to(self, peer: str) -> Link | None:
        """An authenticated link to `peer` for control frames: ours if up, else its own."""
        link = self.links_out.get(peer)
        if link is not None and link.authenticated and not link.closed:
            return link
        for other in self.links_in:
            if other.peer_name == peer and other.authenticated and not other.closed:
                return other
        return None

    def _send_control(self, peer: str, frame: bytes) -> None:
        link = self._link_to(peer)
        if link is not None:
            link.write(frame)

    def _run_membership(self) -> None:
        """Carry out what the membership machine asked for."""
        changed = False
        for action in self.membership.take_actions():
            if isinstance(action, SendProbeRequest):
                frame = mw.encode_probe_request_frame(action.target, action.nonce)
                self._send_control(action.via, frame)
            elif isinstance(action, SendProbeResult):
                frame = mw.encode_probe_result_frame(action.target, action.nonce, action.alive)
                self._send_control(action.to, frame)
            elif isinstance(action, Broadcast):
                frame = mw.encode_node_state_frame([action.state])
                for peer in self.peers:
                    self._send_control(peer, frame)
            elif isinstance(action, SendTo):
                if action.states:
                    self._send_control(action.peer, mw.encode_node_state_frame(action.states))
            elif isinstance(action, StateChanged):
                changed = True
                log.info(
                    "node_state",
                    node=self.name,
                    peer=action.node,
                    old=action.old.name.lower() if action.old is not None else None,
                    new=action.new.name.lower(),
                )
                if action.new is MemberState.DEAD:
                    # a dead peer's flows will never finish: reset them now. A peer that
                    # LEFT is finishing its flows and closes its links itself.
                    self._drop_links(action.node)
        if changed:
            self._refresh_view()

    def _drop_links(self, peer: str) -> None:
        """A peer was declared dead: reset the flows of its links now, never leave them hanging."""
        for link in [*self.links_out.values(), *self.links_in]:
            if link.peer_name == peer and link.transport is not None and not link.closed:
                link.close_reason = "the peer was declared dead"
                link.transport.abort()

    def merge_directory(self, payload: bytes, *, from_bus: bool) -> None:
        """Entries from a peer (or a sibling worker): merge; pass news on to the siblings."""
        now = self.wall_time()
        news = [e for e in decode_directory_update(payload) if self.directory.merge(e, now)]
        if news and not from_bus and self.bus is not None:
            for frame in encode_directory_frames(news):
                self.bus.write(frame)

    def sibling_load(self, worker: int, load: int) -> None:
        if worker != self.worker:
            self.sibling_loads[worker] = load

    def learn(self, key: str, ttl: float | None) -> None:
        """The home side saw a session start here: record it; the tick replicates it."""
        limit = self.limits.directory_ttl
        ttl = limit if ttl is None else min(max(ttl, 1.0), limit)
        try:
            self.directory.learn(key, self.name, self.wall_time(), ttl)
        except ValueError:
            self.counters["directory_refused"] += 1

    def _learner(self, service: Service) -> SessionLearner | None:
        if not service.learn_cookies and not service.passthrough:
            return None
        return SessionLearner(self.learn, service.learn_cookies, service.passthrough)

    def own_load(self) -> int:
        """Sessions this process is home for right now: local splices and home flows."""
        return self.local_active + sum(len(link.tables) for link in self.links_in)

    def load(self) -> int:
        """The node's load: this process's plus what its sibling workers reported."""
        return self.own_load() + sum(self.sibling_loads.values())

    # -- the tick -----------------------------------------------------------------------
    async def _tick_forever(self) -> None:
        next_ping = 0.0
        next_idle = self.loop.time() + self.limits.idle_timeout / 2
        while True:
            await asyncio.sleep(TICK)
            now = self.loop.time()
            try:
                self._sweep_heads(now)
                if self.connecting:
                    self._sweep_connects(now)
                self.membership.tick(now)
                self._run_membership()
                self._replicate_directory()
                if now >= next_ping:
                    next_ping = now + self.limits.ping_interval
                    self._ping_and_expire(now)
                if now >= next_idle:
                    next_idle = now + self.limits.idle_timeout / 2
                    self._sweep_idle()
            except Exception:  # a sweep must never stop the tick
                log.exception("tick_failed", node=self.name)

    def _replicate_directory(self) -> None:
        """Send what this node learned since the last tick to every peer, batched."""
        learned = self.directory.take_outbox()
        if not learned:
            return
        frames = encode_directory_frames(learned)
        if self.bus is not None:
            for frame in frames:
                self.bus.write(frame)
        for peer in self.peers:
            link = self._link_to(peer)
            if link is not None:
                for frame in frames:
                    link.write(frame)

    def _sweep_heads(self, now: float) -> None:
        if not self.heading:
            return
        late = [c for c, deadline in self.heading.items() if deadline <= now]
        for client in late:
            client.head_timed_out()

    def _ping_and_expire(self, now: float) -> None:
        for link in list(self.links_out.values()):
            link.ping()
        if self.bus is not None and self.worker is not None:
            self.bus.write(fr.encode_ping(self.worker, self.own_load()))
        for link in list(self.links_in):
            if now - link.last_heard > self.limits.dead_after:
                link.close_reason = f"no PING from the peer for {self.limits.dead_after:g}s"
                if link.transport is not None:
                    link.transport.abort()
        for link in [*self.links_out.values(), *self.links_in]:
            for _flow_id, flow in link.tables.expire(now):
                self.counters["pending_timeouts"] += 1
                flow.reset(int(ResetReason.PENDING_TIMEOUT), notify_peer=True)
        self.directory.expire(self.wall_time())
        self._refresh_view()

    def _sweep_idle(self) -> None:
        for client in list(self.clients):
            if client.state != SPLICE:
                continue
            if client.active:
                client.active = False
            else:
                self.counters["idle_timeouts"] += 1
                client.abort()

    # -- view and inspection --------------------------------------------------------------
    def _build_view(self) -> FarmView:
        now = self.loop.time()
        live, draining = self.membership.view_sets(now)
        # a live peer this node has no link to yet can keep its homes, but gets no new sessions
        unlinked = {p for p in live if p != self.name and p not in self.links_out}
        draining = draining | unlinked
        loads = dict(self.loads)
        loads[self.name] = float(self.load())
        if self.draining:
            draining = draining | {self.name}
        return FarmView(self.name, self.node_infos, live | {self.name}, loads, draining)

    def _refresh_view(self) -> None:
        old = self.view.live
        self.view = self._build_view()
        if self.view.live != old:
            log.info("farm_view", node=self.name, live=sorted(self.view.live))

    def wall_time(self) -> float:
        return time.time()

    def count(self, name: str) -> None:
        self.counters[name] += 1

    def tables(self) -> dict[str, Any]:
        """The pending and forward tables of every link end, for inspection."""
        links: dict[str, Any] = {}
        for link in [*self.links_out.values(), *self.links_in]:
            links[link.describe()] = link.tables.snapshot()
        return {
            "node": self.name,
            "worker": self.worker,
            "links": links,
            "pending": sum(len(v["pending"]) for v in links.values()),
            "forward": sum(len(v["forward"]) for v in links.values()),
            "local": self.local_active,
            "clients": len(self.clients),
            "live": sorted(self.view.live),
            "members": {
                peer: state.name.lower() if state is not None else None
                for peer in self.peers
                for state in [self.membership.state(peer)]
            },
            "directory": len(self.directory),
            "counters": dict(self.counters),
        }

    def dump_tables(self) -> None:
        snapshot = self.tables()
        log.info("tables", **snapshot)


__all__ = ["Endpoint", "Node", "Service", "make_conn_ref"]
