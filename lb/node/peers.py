"""Peers: the node's links to the rest of the farm and what membership asks of them.

It keeps one outbound link to every peer (reconnecting with a short backoff),
owns the inbound ones (admitted on the forward address by lb.node.linkport),
dispatches control frames (directory, owners, membership: the membership
machine is driven by lb.node.gossip, which sends through these links), relays
membership frames to the sibling workers, pings, and builds the farm view the
router reads.

It must not speak the link protocol (lb.link does) nor decide membership
(lb.cluster does): it drives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import ssl
from collections import Counter
from collections.abc import Callable

import structlog

from lb.clock import Monotonic
from lb.cluster.membership import Membership, diff_members
from lb.config import FarmConfig, Limits
from lb.link import FlowOpened, LinkConnection, Role, link_key
from lb.node.gossip import Gossip
from lb.node.home import Home
from lb.node.linkport import LOGIN_TIMEOUT, LinkPort
from lb.node.linktls import LinkTls
from lb.node.peerlink import LinkDriver
from lb.node.registry import Registry
from lb.node.replication import Replication
from lb.routing.view import FarmView, NodeInfo, ViewCell
from lb.wire import frames as fr
from lb.wire.bus import decode_relayed, encode_relayed
from lb.wire.directory import DIRECTORY_UPDATE

log = structlog.get_logger("lb.peers")

RECONNECT_MIN = 0.1
RECONNECT_MAX = 1.0
LINKED_POLL = 0.02  # seconds between looks while a starting process waits for its links


def node_infos(config: FarmConfig) -> dict[str, NodeInfo]:
    """The farm view's description of every node of the farm file."""
    return {
        n.name: NodeInfo(
            n.name,
            (n.forward_advertised.host, n.forward_advertised.port),
            {s: (a[0].host, a[0].port) for s, a in n.listen.items()},  # the primary
            n.weight,
        )
        for n in config.nodes.values()
    }


class Peers:
    """Links to every peer, membership actions, and the farm view."""

    def __init__(
        self,
        config: FarmConfig,
        name: str,
        loop: asyncio.AbstractEventLoop,
        membership: Membership,
        home: Home,
        replication: Replication,
        counters: Counter[str],
        load: Callable[[], int],
        wake_at: Callable[[float | None], None],
        to_siblings: Callable[[list[bytes]], None],
        worker: int | None = None,
        tls: LinkTls | None = None,
    ) -> None:
        self.config = config
        self.worker = worker
        self.tls = tls  # mutual TLS on links; None: plaintext (configured explicitly)
        self.port = LinkPort(
            name,
            config,
            loop,
            counters,
            lambda: LinkDriver(self, self._connection(Role.RESPONDER, None, 0), self.loop),
            tls,
        )
        self.name = name
        self.farm_name = config.name
        self.limits: Limits = config.limits
        self.loop = loop
        self.membership = membership
        # peers held as homes of their sessions while this node hears none (lb.cluster)
        self.held: frozenset[str] = frozenset()
        # peers declared dead whose sessions wait for them (dead_rehome_after, lb.cluster)
        self.dead_held: frozenset[str] = frozenset()
        # live nodes without the held ones: those that can answer (directory owners)
        self.reachable: frozenset[str] = frozenset((name,))
        self.held_told = False  # a warning named held peers (their end is told too)
        self.home = home
        self.replication = replication
        self.counters = counters
        self.load = load
        self.wake_at = wake_at
        self.to_siblings = to_siblings
        self.keys = [link_key(s) for s in (config.secret, *config.previous_secrets)]
        self.node_infos = node_infos(config)
        self.peers = [n for n in config.nodes if n != name]
        self.loads: dict[str, float] = {}
        self.home_load = 0  # sessions on flows this process is home for (sample_home_load)
        self.links_out: dict[str, LinkDriver] = {}
        self.links_in: set[LinkDriver] = set()
        self.link_tasks: dict[str, asyncio.Task[None]] = {}
        self.stopping = False
        self.draining = False
        self.registry: Registry | None = None  # directory owners (set by the node)
        # the view of now, in a cell the entry holds too (it reads the view per request)
        self.view_cell = ViewCell(
            FarmView(name, self.node_infos, frozenset({name}), {name: 0.0}, frozenset())
        )
        self.gossip = Gossip(
            name,
            worker,
            loop,
            membership,
            self.limits,
            peers=self.peers,
            send_control=self.send_control,
            to_siblings=to_siblings,
            drop_links=self.drop_links,
            refresh_view=self.refresh_view,
            wake_at=wake_at,
        )

    @property
    def view(self) -> FarmView:
        return self.view_cell.view

    @view.setter
    def view(self, view: FarmView) -> None:
        self.view_cell.view = view

    def set_secrets(self, secret: bytes, previous: tuple[bytes, ...]) -> None:
        """SIGHUP changed previous_secrets: new logins prove and accept with these keys."""
        self.keys = [link_key(s) for s in (secret, *previous)]

    # -- links: making them ------------------------------------------------------
    def start(self) -> None:
        for peer in self.peers:
            self.link_tasks[peer] = self.loop.create_task(self._keep_link(peer))

    def _connection(self, role: Role, peer: str | None, key_index: int) -> LinkConnection:
        limits = self.limits
        return LinkConnection(
            role,
            farm=self.farm_name,
            name=self.name,
            nonce=os.urandom(fr.NONCE_SIZE),
            keys=self.keys,
            key_index=key_index,
            now=Monotonic(self.loop.time()),
            expected_peer=peer,
            is_member=self.is_peer,
            max_flows=limits.max_flows,
            pending_timeout=limits.pending_timeout,
            window=limits.flow_window,
            handshake_timeout=LOGIN_TIMEOUT,
            require_identity=self.tls is not None,
        )

    def is_peer(self, name: str) -> bool:
        return name in self.node_infos and name != self.name

    async def _keep_link(self, peer: str) -> None:
        """Keep one outbound link to `peer` up, reconnecting with a short backoff.

        After a failed login the next attempt proves itself with the next of this
        node's keys (current secret, then previous ones), so a rolling change of
        the farm secret keeps links up.
        """
        delay = RECONNECT_MIN
        attempt = 0
        while not self.stopping:
            addr = self.config.nodes[peer].forward_advertised
            link = LinkDriver(self, self._connection(Role.INITIATOR, peer, attempt), self.loop)
            try:
                async with asyncio.timeout(self.limits.connect_timeout + LOGIN_TIMEOUT):
                    if self.tls is None:
                        await self.loop.create_connection(link.factory(), addr.host, addr.port)
                    else:
                        await self.loop.create_connection(
                            link.factory(),
                            addr.host,
                            addr.port,
                            ssl=self.tls.client,
                            server_hostname=peer,
                            ssl_handshake_timeout=LOGIN_TIMEOUT,
                        )
                    await link.ready
            except ssl.SSLError as exc:
                link.abort()
                self.counters["link_logins_failed"] += 1
                self.port.log_failed(str(addr), f"TLS handshake failed: {exc}", peer, "out")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            except (OSError, TimeoutError, ConnectionError) as exc:
                link.abort()
                if link.conn.peer_nonce is not None and not link.authenticated:
                    attempt += 1  # refused our proof: try the next key next time
                log.debug("link_connect_failed", peer=peer, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            delay = RECONNECT_MIN
            await link.lost
            await asyncio.sleep(RECONNECT_MIN)

    # -- LinkOwner: what link drivers report ------------------------------------------
    def link_up(self, link: LinkDriver) -> None:
        peer = link.peer_name
        assert peer is not None
        self.port.left(link)
        if link.outbound:
            old = self.links_out.get(peer)
            if old is not None and old is not link:
                old.close()
            self.links_out[peer] = link
            link.ping(self.load())
            self.refresh_view()
        else:
            self.links_in.add(link)
        # a full directory sync each way: the peer (or this worker) may be new or was cut off
        for frame in self.replication.full_sync():
            link.send_control(frame)
        self.membership.link_up(peer, self.loop.time())
        self.run_membership()
        log.info("link_up", node=self.name, peer=peer, direction=link.direction)

    def link_down(self, link: LinkDriver) -> None:
        self.port.left(link)
        peer = link.peer_name
        if link.outbound:
            if peer is not None and self.links_out.get(peer) is link:
                del self.links_out[peer]
                self.refresh_view()
        else:
            self.links_in.discard(link)
        if (
            self.registry is not None
            and link.authenticated
            and peer is not None
            and self.link_to(peer) is None
        ):
            self.registry.peer_lost(peer)  # no link left: its answers will never come
        if link.authenticated and peer is not None and not self.stopping:
            self.membership.link_lost(peer, self.loop.time())
            self.run_membership()
            log.info(
                "link_down",
                node=self.name,
                peer=peer,
                direction=link.direction,
                reason=link.close_reason,
            )

    def link_failed_login(self, link: LinkDriver, reason: str) -> None:
        self.port.failed(link, reason)

    def flow_opened(self, link: LinkDriver, event: FlowOpened) -> None:
        self.home.flow_opened(link, event)

    def peer_heard(self, link: LinkDriver, load: int) -> None:
        """A PING or PONG from the peer: it is alive and reachable, and this is its load."""
        peer = link.peer_name
        if peer is not None:
            self.membership.heard(peer, self.loop.time())
            self.loads[peer] = load

    def control_frame(self, link: LinkDriver, frame: fr.Frame) -> None:
        """An extension frame on an authenticated link: directory or membership."""
        peer = link.peer_name
        assert peer is not None
        if frame.type == DIRECTORY_UPDATE:
            self.replication.merge(frame.payload, from_bus=False)
            return
        if self.registry is not None and self.registry.control_frame(link, frame):
            return  # REGISTER, REGISTER_ACK, LOOKUP, LOOKUP_ANSWER
        if self.gossip.frame(peer, frame):
            # every worker of this node must hear what the peer said
            self.to_siblings([encode_relayed(peer, fr.encode_frame(frame))])

    def relayed_frame(self, frame: fr.Frame) -> None:
        """A sibling worker passed on a membership frame it heard from a peer."""
        peer, inner = decode_relayed(frame.payload)
        if self.is_peer(peer):
            self.gossip.frame(peer, inner)

    def count(self, name: str) -> None:
        self.counters[name] += 1

    # -- sending ------------------------------------------------------------------------
    def link_to(self, peer: str) -> LinkDriver | None:
        """An authenticated link to `peer` for control frames: ours if up, else its own."""
        link = self.links_out.get(peer)
        if link is not None and link.authenticated and not link.closed:
            return link
        for other in self.links_in:
            if other.peer_name == peer and other.authenticated and not other.closed:
                return other
        return None

    def send_control(self, peer: str, frame: bytes) -> None:
        link = self.link_to(peer)
        if link is not None:
            link.send_control(frame)

    def to_all(self, frames: list[bytes]) -> None:
        for peer in self.peers:
            link = self.link_to(peer)
            if link is not None:
                for frame in frames:
                    link.send_control(frame)

    # -- membership -------------------------------------------------------------------------
    def run_membership(self) -> None:
        """Carry out what the membership machine asked for (lb.node.gossip)."""
        self.gossip.run()

    def drop_links(self, peer: str, reason: str) -> None:
        """Reset the flows of every link with `peer` now, never leave them hanging."""
        for link in [*self.links_out.values(), *self.links_in]:
            if link.peer_name == peer:
                link.abort(reason)

    def ping_and_check(self, now: Monotonic) -> None:
        """Heartbeat on our links; inbound links whose peer went silent are closed."""
        load = self.load()
        for link in list(self.links_out.values()):
            link.ping(load)
        dead_after = self.limits.dead_after
        for link in list(self.links_in):
            if now - link.conn.last_heard > dead_after:
                link.abort(f"no PING from the peer for {dead_after:g}s")

    def sweep(self, now: Monotonic) -> float | None:
        """Timer: each link's deadlines (login, pending flows); the earliest next one."""
        nearest: float | None = None
        for link in [*self.links_out.values(), *self.links_in, *self.port.prelogin]:
            when = link.sweep(now)
            if when is not None and (nearest is None or when < nearest):
                nearest = when
        return nearest

    # -- the farm view ------------------------------------------------------------------------
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
        # this node's own sessions, once its application stayed down past the bound
        rehomed = self.membership.rehomed_nodes(now)
        return FarmView(self.name, self.node_infos, live | {self.name}, loads, draining, rehomed)

    def refresh_view(self, *, quiet: bool = False) -> None:
        old = self.view.live
        self.view = self._build_view()
        if self.view.live != old and not quiet:
            log.info("farm_view", node=self.name, live=sorted(self.view.live))
        now = self.loop.time()
        dead_held = self.membership.dead_held_nodes(now)
        if dead_held != self.dead_held:
            if dead_held - self.dead_held and not quiet:
                self._tell_held(
                    "dead_sessions_held",
                    dead_held,
                    self.limits.dead_rehome_after,
                    "dead_rehome_after: the sessions of these wait for them to come back; "
                    "their requests wait for the link, new sessions go elsewhere",
                )
            self.dead_held = dead_held
        held = self.membership.held_nodes(now)
        if held != self.held:
            self.held = held
            # the operator must learn why sessions of unreachable peers fail here (a
            # start holds every peer until its links are up: node.py says it if they
            # are not, started_without_all_peers)
            if quiet:
                pass
            elif held:
                self.held_told = True
                self._tell_held(
                    "isolated_sessions_held",
                    held,
                    self.limits.isolated_rehome_after,
                    "this node hears none of its peers: the sessions of these wait for "
                    "them, they are not re-homed here",
                )
            elif self.held_told:
                self.held_told = False
                self._tell_held(
                    "isolated_sessions_held",
                    held,
                    None,
                    "the hold ended: a peer is heard, or the bound passed",
                )
        # a held peer stays live for its sessions but answers nothing: the directory's
        # owners are chosen among the others, or each registration would wait its bound
        self.reachable = self.view.live - self.held - self.dead_held

    def _tell_held(
        self, event: str, held: frozenset[str], rehome_after: float | None, reason: str
    ) -> None:
        """A warning naming the peers whose sessions wait for them (with the bound), or an
        info line with none when a hold ended (``rehome_after`` None)."""
        if rehome_after is None:
            log.info(event, node=self.name, worker=self.worker, held=[], reason=reason)
        else:
            log.warning(
                event,
                node=self.name,
                worker=self.worker,
                held=sorted(held),
                rehome_after=rehome_after,
                reason=reason,
            )

    # -- lifecycle ----------------------------------------------------------------------------
    def reload(self, config: FarmConfig) -> tuple[set[str], set[str]]:
        """Nodes that joined or left the farm file; returns (added, removed)."""
        now = self.loop.time()
        added, removed = diff_members(set(self.peers), set(config.nodes) - {self.name})
        self.config = dataclasses.replace(self.config, nodes=config.nodes)
        self.node_infos = node_infos(config)
        self.loop.create_task(self.port.resolve_members(self.config))
        for peer in sorted(removed):
            self.peers.remove(peer)
            self.membership.remove_node(peer, now)
            task = self.link_tasks.pop(peer, None)
            if task is not None:
                task.cancel()
            self.drop_links(peer, "the node left the farm file")
            self.loads.pop(peer, None)
        for peer in sorted(added):
            self.peers.append(peer)
            self.membership.add_node(peer, now)
            self.link_tasks[peer] = self.loop.create_task(self._keep_link(peer))
        self.run_membership()
        self.refresh_view()
        return added, removed

    def home_flows(self) -> int:
        """Flows this process is home for (inbound links)."""
        return sum(link.conn.flow_count() for link in self.links_in)

    def sample_home_load(self) -> int:
        """Once per ping_interval: the flows this process is home for that carry a session
        now, kept as `home_load` until the next sample. A flow of a tcp service is one
        session for as long as it is open; a flow of an HTTP service is kept open by
        its entry between requests (the entry's upstream pool), so it counts only when
        bytes moved on it since the last sample, the entry's bytes await an answer, or
        it became a tunnel (lb.node.peerlink.FlowEndpoint). Idle pooled flows are not
        load: counted, they would steer new sessions away from every node that recently
        served forwarded requests."""
        busy = 0
        for link in self.links_in:
            for flow in link.flows.values():
                if not flow.pooled or flow.used or flow.awaiting:
                    busy += 1
                flow.used = False
        self.home_load = busy
        return busy

    async def wait_linked(self, timeout: float) -> bool:
        """Until every peer is live in this process's view (its links up), or `timeout`.

        A process that took clients before that would see its peers as not yet
        live and re-home their sessions (a worker restarted beside a running
        sibling did exactly that)."""
        deadline = self.loop.time() + timeout
        # live by what it heard: a peer held for its sessions (isolated) is not linked
        while not set(self.peers) <= self.membership.live_nodes(self.loop.time()):
            if self.loop.time() >= deadline:
                return False
            await asyncio.sleep(LINKED_POLL)
        return True

    async def listen(self, host: str, port: int, reuse_port: bool) -> None:
        """Bind the forward address (lb.node.linkport admits what connects)."""
        await self.port.listen(host, port, reuse_port)

    async def stop(self) -> None:
        self.stopping = True
        tasks = list(self.link_tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.port.stop()
        for link in [*self.links_out.values(), *self.links_in]:
            link.close()

    def tables(self) -> dict[str, dict[str, list[int]]]:
        return {
            link.describe(): link.conn.tables.snapshot()
            for link in [*self.links_out.values(), *self.links_in]
        }


__all__ = ["Peers", "node_infos"]
