"""The node: wires the drivers together and runs their lifecycle and their one timer.

`Node` builds the pure core (router, directory, membership) and the drivers
of the I/O layer — `Peers` (links, membership actions, the farm view),
`Entry` (client connections), `Home` (flows opened here), `AppConnector`,
`Replication` (the directory across the farm) and `Siblings` (the worker bus) — and gives
each only what it needs. One timer, armed from the drivers' next deadlines,
replaces per-connection timers and polling.

It must not parse bytes, speak the link protocol or decide placement: that
is lb.wire, lb.link and lb.routing.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from typing import Any

import structlog

from lb.clock import Monotonic, wall
from lb.cluster.membership import Membership
from lb.config import FarmConfig, Limits, NodeConfig
from lb.node.admin import Admin
from lb.node.app import AppConnector
from lb.node.entry import Entry, make_conn_ref
from lb.node.health import HealthChecker
from lb.node.home import Home
from lb.node.inspection import tables
from lb.node.linktls import LinkTls
from lb.node.listeners import ClientListeners
from lb.node.metrics import Metrics
from lb.node.peers import Peers
from lb.node.placing import SiblingPlacement
from lb.node.registry import Registry
from lb.node.reload import reload
from lb.node.replication import Replication
from lb.node.service import Service, build_service
from lb.node.siblings import Siblings
from lb.node.sockets import fit_to_descriptors
from lb.node.splice import Endpoint
from lb.node.timer import RESOLUTION, Timer
from lb.routing.cookie import CookieKeyring
from lb.routing.directory import Directory, DirectoryKeys, directory_secret
from lb.routing.keyring_slot import KeyringSlot
from lb.routing.memory import PlacementMemory
from lb.routing.route import Router
from lb.wire import frames as fr
from lb.wire.bus import ADMIN, METRICS, PLACE, PLACED, RELAYED
from lb.wire.directory import DIRECTORY_UPDATE

log = structlog.get_logger("lb.node")

DRAIN_POLL = 0.1  # seconds between looks at whether a draining node is idle
REOPEN_RETRY = 1.0  # seconds between tries to listen again after an undrain failed to
STALL_LOG_EVERY = 10.0  # seconds: at most one process_stalled warning this often


class Node:
    """One lb node of a farm (or one worker of it), inside one event loop."""

    def __init__(
        self,
        config: FarmConfig,
        me: NodeConfig,
        worker: int | None = None,
        bus_fd: int | None = None,
        start_drained: bool = False,
    ) -> None:
        self.config = config
        self.me = me
        self.name = me.name
        self.farm_name = config.name
        self.worker = worker  # index among the node's workers; None when it runs alone
        self.bus_fd = bus_fd
        self.reuse_port = me.workers > 1
        self.exit_requested = asyncio.Event()
        self.limits: Limits = config.limits
        self.loop = asyncio.get_running_loop()
        self.stopping = False
        self.draining = False
        # a worker restarted under an operator's drain starts drained (lb.node.workers)
        self.start_drained = start_drained
        self.exiting = False  # SIGTERM: draining to exit (the admin API cannot undrain it)
        self.counters: Counter[str] = Counter()
        self.timer = Timer(self.loop, self._sweep, self._stalled)
        self.stall_told = -STALL_LOG_EVERY  # when a stall was last logged (loop time)
        self.listeners: ClientListeners | None = None
        self.reopening: asyncio.Task[None] | None = None  # listening again after an undrain
        self.next_ping = 0.0

        keyring = CookieKeyring(config.name, config.secret, config.previous_secrets)
        self.link_tls: LinkTls | None = None
        if config.link_security == "mtls":
            assert config.link_certs is not None
            self.link_tls = LinkTls(config.link_certs, self.name)  # ConfigError: files missing
        self.directory = Directory(max_entries=self.limits.directory_entries)
        self.directory_secret = directory_secret(config.secret, config.previous_secrets)
        self.directory_keys = DirectoryKeys(self.directory_secret)
        memory = PlacementMemory(self.limits.placement_entries, self.limits.placement_hold)
        self.router = Router(keyring, self.directory, self.directory_keys, memory)
        # home cookies are checked with the keyring the router uses now (a reload renews it)
        self.keyring_slot = verifier = KeyringSlot(keyring)
        self.services: dict[str, Service] = {
            svc.name: build_service(  # trusted_proxies: the client's address (issue 10)
                svc,
                me,
                config.cookie_name,
                verifier,
                config.trusted_proxies,
                (config.name, config.secret),
            )
            for svc in config.services.values()
        }
        peers = [n for n in config.nodes if n != self.name]
        self.membership = Membership(
            self.name,
            peers,
            self.loop.time(),
            timing=self.limits.membership_timing(),
            # a restarted node outranks what the farm remembers of its previous life
            incarnation=int(time.time()),
            # one voice per node: worker 0 declares and refutes, its siblings adopt
            # (OWN_STATE on the bus); two voices would contradict each other
            speaker=worker in (None, 0),
        )
        self.siblings = Siblings(self.name, worker, self.membership)
        self.apps = AppConnector(self.loop, self.limits.connect_timeout, self.timer.at)
        self.app_unhealthy = False
        self.health = HealthChecker(
            self.name, self.loop, self.services, self.limits, self.counters, self._apps_changed
        )
        self.apps.report = self.health.observe
        self.replication = Replication(
            self.name,
            self.directory,
            self.directory_keys,
            self.limits.directory_ttl,
            self.loop,
            self.counters,
            to_peers=self._to_peers,
            to_siblings=self.siblings.write_frames,
        )
        self.home = Home(
            self.name,
            self.services,
            self.apps,
            keyring,
            config.cookie_name,
            config.cookie_ttl,
            self.replication.learner_for,
            self.counters,
        )
        self.peers = Peers(
            config,
            self.name,
            self.loop,
            self.membership,
            self.home,
            self.replication,
            self.counters,
            load=self.load,
            wake_at=self.timer.at,
            to_siblings=self.siblings.write_frames,
            worker=worker,
            tls=self.link_tls,
        )
        self.entry = Entry(
            config,
            self.name,
            self.loop,
            self.router,
            self.peers,
            self.apps,
            self.home,
            self.replication,
            self.counters,
            self.timer.at,
        )
        # the first idle sweep one interval from now, like every later one: the silence of
        # a connection is counted from the first sweep that sees its accept, so a sweep
        # further away makes every connection of that time wait longer for its close
        self.next_idle = self.loop.time() + self.entry.idle_interval
        # directory owners (issue 11): learned sessions are registered before the response
        # that names them is released; unknown keys are looked up before a new placement
        self.registry = Registry(
            self.name,
            self.replication,
            self.loop,
            self.counters,
            live=lambda: self.peers.reachable,
            send=self.peers.send_control,
            wake_at=self.timer.at,
            register_timeout=self.limits.register_timeout,
            lookup_timeout=self.limits.lookup_timeout,
            max_pending=self.limits.directory_pending,
        )
        self.peers.registry = self.registry
        self.replication.register = self.registry.register
        self.entry.registry = self.registry
        self.peers.refresh_view(quiet=True)
        # the admin listener (lb.node.admin): off unless the farm file sets nodes.<name>.admin
        self.metrics = Metrics()
        self.admin: Admin | None = None
        if me.admin is not None:
            self.entry.metrics = self.metrics
            self.admin = Admin(self)
        # max_connections is per node: each of its workers admits its share
        share = max(1, -(-self.limits.max_connections // me.workers))
        # a limit set explicitly above what the descriptors allow deserves a warning
        explicit = self.limits.max_connections != Limits().max_connections
        self.entry.set_max_connections(
            fit_to_descriptors(self.name, share, explicit, me.workers, self.limits.max_connections)
        )

    # -- wiring helpers ------------------------------------------------------------
    def _to_peers(self, frames: list[bytes]) -> None:
        self.peers.to_all(frames)

    def _supervisor_lost(self) -> None:
        # the supervisor is gone: a worker must not outlive it
        if not self.stopping:
            log.error("supervisor_lost", node=self.name, worker=self.worker)
            self.exit_requested.set()

    # -- lifecycle --------------------------------------------------------------
    async def start(self) -> None:
        loop = self.loop
        fwd = self.me.forward
        if self.start_drained:
            # before any link or listener: never declared alive, never accepting a client
            self.start_draining()
        try:
            await self.peers.listen(fwd.host, fwd.port, self.reuse_port)
        except socket.gaierror as exc:  # its text names no address: say which one
            raise OSError(exc.errno, f"forward {fwd}: {exc.strerror}") from None
        if self.bus_fd is not None:
            handlers = {
                DIRECTORY_UPDATE: lambda f: self.replication.merge(f.payload, from_bus=True),
                RELAYED: self.peers.relayed_frame,
                METRICS: self._admin_frame,
                ADMIN: self._admin_frame,
            }
            memory = self.router.memory
            if self.worker is not None and memory is not None and memory.max_entries > 0:
                # one home for a client source's new sessions across the node's workers
                placing = SiblingPlacement(
                    loop,
                    self.siblings,
                    lambda: self.router,
                    lambda: self.peers.view,
                    self.entry.resume_placed,
                    self.counters,
                )
                self.entry.placing = placing
                handlers[PLACE] = placing.place_frame
                handlers[PLACED] = placing.placed_frame
            await self.siblings.connect(
                loop,
                self.bus_fd,
                handlers,
                adopted=self.peers.run_membership,
                app_health=self._apply_app_health,
                on_lost=self._supervisor_lost,
            )
        if self.link_tls is None:
            log.warning(
                "links_in_plaintext",
                node=self.name,
                reason='link_security = "plaintext": links are not encrypted; keep forward '
                "addresses on a trusted network",
            )
        self.peers.start()
        self.timer.at(loop.time())
        # clients only once the peers are live here (bounded): sessions homed on a
        # peer must not be re-homed because this process has not linked to it yet
        if not await self.peers.wait_linked(self.limits.connect_timeout):
            log.warning(
                "started_without_all_peers",
                node=self.name,
                worker=self.worker,
                live=sorted(self.peers.membership.live_nodes(self.loop.time())),
                # peers this node never heard and does not re-home: it hears nobody
                held=sorted(self.peers.held),
            )
            self.peers.held_told = bool(self.peers.held)
        self.listeners = ClientListeners(loop, self.entry, self.reuse_port)
        if not self.draining:  # else opened by an undrain (stop_draining)
            await self.listeners.open(self.services.values())
            if self.draining:  # drained while the open awaited: close what it opened
                self._close_client_listeners()
        if self.worker in (None, 0):
            # one process checks the applications for the node; its siblings follow (bus)
            self.health.start()
        else:
            self.apps.report = lambda _service, _ok: None
        if self.admin is not None:
            await self.admin.start()
        log.info(
            "node_started",
            node=self.name,
            worker=self.worker,
            farm=self.farm_name,
            forward=str(fwd),
            listeners={s.name: [str(a) for a in s.listen] for s in self.services.values()},
        )

    def reload(self, config: FarmConfig) -> None:
        """SIGHUP: take the new farm file as far as it applies live (lb.node.reload)."""
        reload(self, config)

    def _apps_changed(self, healthy: bool) -> None:
        """Worker 0 (or the only process) saw the applications change: all workers follow."""
        self.siblings.tell_app_health(healthy)
        self._apply_app_health(healthy)

    def _admin_frame(self, frame: fr.Frame) -> None:
        if self.admin is not None:
            self.admin.bus_frame(frame)

    def _apply_app_health(self, healthy: bool) -> None:
        """A local application went down (or all are up again): stop (resume) new sessions.

        The farm learns it like a drain (DRAINING), so every entry places new
        sessions elsewhere; sessions homed here keep coming. If it stays down for
        app_down_rehome_after, the membership machine gives them up (LEFT, and
        this node re-homes them too: FarmView.rehomed). A real drain goes on
        whatever the applications do.
        """
        if self.app_unhealthy == (not healthy):
            return
        self.app_unhealthy = not healthy
        now = self.loop.time()
        if healthy:
            self.membership.app_up(now)
        else:
            self.membership.app_down(now)
        self.peers.draining = self.draining or self.app_unhealthy
        self.peers.run_membership()
        self.peers.refresh_view()

    def start_draining(self) -> None:
        """Take no new sessions; keep serving existing flows. Idempotent."""
        if self.draining:
            return
        self.draining = True
        self.peers.draining = True
        if self.reopening is not None:
            # an undrain still opening its listeners (or waiting to try again): it must not
            # open one after this drain closed them
            self.reopening.cancel()
            self.reopening = None
        self._close_client_listeners()
        self.entry.drain()
        self.membership.start_draining(self.loop.time())
        self.peers.run_membership()
        self.peers.refresh_view()
        log.info("draining", node=self.name, drain_timeout=self.limits.drain_timeout)

    def stop_draining(self) -> None:
        """Undrain (the admin API): take new sessions again, unless an application is down."""
        if not self.draining or self.stopping or self.exiting:
            return
        self.draining = False
        self.entry.undrain()
        # the membership machine stays DRAINING while an application is down, and
        # takes new sessions again once it is up (Membership.app_up)
        self.peers.draining = self.app_unhealthy
        self.membership.stop_draining(self.loop.time())
        self.peers.run_membership()
        self.peers.refresh_view()
        if self.reopening is not None:
            self.reopening.cancel()  # an earlier undrain still trying: this one takes over
        self.reopening = self.loop.create_task(self._reopen_client_listeners())
        log.info("undrained", node=self.name)

    async def _reopen_client_listeners(self) -> None:
        """Listen again after an undrain, on every address or none; while an address
        cannot be bound (another process took it meanwhile), try again every
        REOPEN_RETRY seconds, until it can or the node drains or stops."""
        while self.listeners is not None and not self.draining and not self.stopping:
            self.listeners.close()
            try:
                await self.listeners.open(self.services.values())
                return
            except OSError as exc:
                log.error(
                    "undrain_listen_failed",
                    node=self.name,
                    worker=self.worker,
                    error=str(exc),
                    retry_in=REOPEN_RETRY,
                )
            await asyncio.sleep(REOPEN_RETRY)

    def busy(self) -> bool:
        """Whether any client connection or home flow is still open; a TLS client whose
        handshake is not done (running, or waiting for a slot) is a client connection too:
        it was accepted before the drain, and is served like one."""
        entry = self.entry
        return bool(entry.clients) or entry.handshaking > 0 or self.peers.home_flows() > 0

    async def drain_and_stop(self) -> None:
        """Drain, wait until the last flow ends or the drain deadline, then stop."""
        self.exiting = True
        self.start_draining()
        deadline = self.loop.time() + self.limits.drain_timeout
        while self.busy() and self.loop.time() < deadline:
            await asyncio.sleep(DRAIN_POLL)
        # say goodbye: peers mark this node LEFT at once instead of detecting a failure;
        # then linger a little, serving flows a peer routed here before LEFT reached it.
        # With dead_rehome_after, a stop is taken for a restart: no LEFT, so the peers
        # hold this node's sessions for it (lb.cluster dead_held_nodes) until it is back
        if self.limits.dead_rehome_after > 0:
            log.info(
                "stopping_without_leave",
                node=self.name,
                rehome_after=self.limits.dead_rehome_after,
                reason="dead_rehome_after: peers hold this node's sessions until it is back",
            )
        else:
            self.membership.leave(self.loop.time())
            self.peers.run_membership()
        linger_until = min(deadline, self.loop.time() + max(0.2, 2 * self.limits.ping_interval))
        while self.loop.time() < deadline and (self.loop.time() < linger_until or self.busy()):
            await asyncio.sleep(DRAIN_POLL)
        if self.busy():
            log.warning(
                "drain_deadline",
                node=self.name,
                clients=len(self.entry.clients),
                tls_handshakes=self.entry.handshaking,
                load=self.load(),
            )
        await self.stop()

    async def stop(self) -> None:
        self.stopping = True
        self.timer.cancel()
        if self.reopening is not None:
            self.reopening.cancel()
        if self.entry.placing is not None:
            self.entry.placing.close()
        self._close_client_listeners()
        self.entry.abort_all()
        if self.admin is not None:
            await self.admin.close()
        await self.health.stop()
        await self.peers.stop()
        await asyncio.sleep(0)
        log.info("node_stopped", node=self.name)

    def _close_client_listeners(self) -> None:
        """Client listeners only; the link listener stays for peers (Peers.stop closes it)."""
        if self.listeners is not None:
            self.listeners.close()

    # -- the one timer --------------------------------------------------------------
    def _stalled(self, seconds: float) -> None:
        """The process served nothing for `seconds` (lb.node.timer): counted, and logged
        at most once per STALL_LOG_EVERY, since its peers suspect such a node and its
        clients wait. A plugin's synchronous call is the usual cause."""
        self.counters["process_stalls"] += 1
        now = self.loop.time()
        if now - self.stall_told >= STALL_LOG_EVERY:
            self.stall_told = now
            log.warning(
                "process_stalled",
                node=self.name,
                worker=self.worker,
                seconds=round(seconds, 3),
                stalls=self.counters["process_stalls"],
                reason="the process ran one callback this long and served nothing meanwhile "
                "(a synchronous call in an extractor plugin, a huge garbage collection, "
                "CPU starvation); its peers may have suspected it",
            )

    def _sweep(self, now: Monotonic) -> float | None:
        """Everything due at `now`; returns the next deadline."""
        if self.stopping:
            return None
        upcoming: list[float | None] = []
        try:
            upcoming.append(self.entry.sweep(now))
            upcoming.append(self.apps.sweep(now))
            due = self.membership.next_deadline()
            if due is not None and now >= due:
                self.membership.tick(now)
                self.peers.run_membership()
            if now >= self.next_ping:
                self.next_ping = now + self.limits.ping_interval
                self.peers.sample_home_load()
                self.peers.ping_and_check(now)
                self.siblings.heartbeat(self.own_load())
                self.replication.expire()
                self.peers.refresh_view()
                self._refresh_ticket_keys()
            if now >= self.next_idle:
                self.next_idle = now + self.entry.idle_interval
                self.entry.sweep_idle(now)
            upcoming.append(self.peers.sweep(now))
            upcoming.append(self.registry.sweep(now))
        except Exception:  # a sweep must never stop the timer
            log.exception("sweep_failed", node=self.name)
        upcoming += [self.membership.next_deadline(), self.next_ping, self.next_idle]
        # never sooner than one resolution step: a deadline a machine leaves unmoved must
        # not spin the loop
        return max(min(t for t in upcoming if t is not None), now + RESOLUTION)

    def _refresh_ticket_keys(self) -> None:
        """tls-terminate services with farm ticket keys take the new hour's key."""
        now = wall()
        for service in self.services.values():
            if service.server_tls is not None:
                service.server_tls.refresh_ticket_key(now)

    # -- load and inspection --------------------------------------------------------------
    def own_load(self) -> int:
        """Sessions this process is home for: local exchanges and splices right now, and
        the home flows that carried a session at the last ping tick (idle flows that
        entries keep pooled between requests are not load: Peers.sample_home_load)."""
        return self.entry.local_active + self.peers.home_load

    def load(self) -> int:
        """The node's load: this process's plus what its sibling workers reported."""
        return self.own_load() + self.siblings.load()

    def tables(self) -> dict[str, Any]:
        """The tables record, for inspection (lb.node.inspection)."""
        return tables(self)

    def dump_tables(self) -> None:
        log.info("tables", **self.tables())


__all__ = ["Endpoint", "Node", "Service", "make_conn_ref"]
