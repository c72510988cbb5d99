"""The entry's per-request half: routing the requests of HTTP services.

For each request an `HttpClient` reads (lb.node.http_client), the entry
decides its home (asking the directory owners about a key this replica lacks),
hands it an upstream (a pooled one, a new connection to the local application,
or a new flow on the link to the home), rewrites the request and response
heads as they pass (forwarding headers, the client side's Connection, the home
cookie of a new session), learns the sessions its responses name, and records
the request for metrics and the access log.

`HttpRouting` is a base class of lb.node.entry.Entry, whose fields it uses.
It must not decide placement (lb.routing.route does), parse bytes (lb.wire)
or speak the link protocol (lb.link).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from collections.abc import Callable

import structlog

from lb.clock import wall
from lb.config import Address, Limits
from lb.errors import LinkError, TableFull
from lb.extract.api import Identifier
from lb.node.accesslog import AccessLog
from lb.node.app import AppConnector
from lb.node.client import ClientEndpoint
from lb.node.home import Home
from lb.node.http_state import ROUTED, HttpClientState, HttpEntrySide
from lb.node.metrics import Metrics
from lb.node.peerlink import LinkDriver
from lb.node.peers import Peers
from lb.node.placing import SiblingPlacement
from lb.node.registry import Registry
from lb.node.replication import Replication
from lb.node.upstream import FlowUpstream, LocalUpstream, PoolKey, Upstream, UpstreamPool
from lb.routing.route import Decision, Router
from lb.routing.view import ViewCell
from lb.wire import http1, response_head
from lb.wire.forwarded import forwarded_headers
from lb.wire.frames import ConnRef, ResetReason
from lb.wire.http import RequestHead

log = structlog.get_logger("lb.entry")

LINK_WAIT_POLL = 0.05  # seconds between looks at a link a held client waits for


def link_wait(limits: Limits) -> float:
    """How long a client waits for the link of its home (a suspect one: until the
    membership verdict, dead_after). With dead_rehome_after a home may be restarting:
    its clients wait up to pending_timeout too, as for a home's VERIFIED."""
    wait = max(limits.connect_timeout, limits.dead_after)
    if limits.dead_rehome_after > 0:
        wait = max(wait, limits.pending_timeout)
    return wait


def _ip_or_unspecified(host: str, like: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return "::" if ":" in like else "0.0.0.0"


def affinity_source(client: ClientEndpoint | HttpClientState) -> str | None:
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


def _http10_client(client: HttpClientState) -> bool:
    """The request being answered is an HTTP/1.0 one."""
    head = client.head
    return head is not None and head.version != "HTTP/1.1"


class HttpRouting(HttpEntrySide):
    """Per-request routing of HTTP services (a base class of Entry)."""

    # Entry's fields used here
    limits: Limits
    loop: asyncio.AbstractEventLoop
    router: Router
    peers: Peers
    links_out: dict[str, LinkDriver]
    view_cell: ViewCell
    apps: AppConnector
    home: Home
    replication: Replication
    registry: Registry | None
    placing: SiblingPlacement | None
    counters: Counter[str]
    reason_counts: dict[str, int]
    last_reason: str
    last_reason_routed: int
    pool: UpstreamPool
    metrics: Metrics | None
    access: AccessLog
    draining: bool
    salt: int

    def count_reason(self, reason: str) -> None:
        """One more request or connection routed for ``reason`` (a Decision's); folded
        into ``counters`` by Entry.counter_values."""
        if reason is self.last_reason:  # the usual case: the reason of the one before
            self.last_reason_routed += 1
            return
        self.fold_reasons()
        self.last_reason = reason
        self.last_reason_routed = 1

    def fold_reasons(self) -> None:
        """The run of ``last_reason`` moved into ``reason_counts``."""
        if self.last_reason_routed:
            counts = self.reason_counts
            reason = self.last_reason
            counts[reason] = counts.get(reason, 0) + self.last_reason_routed
            self.last_reason_routed = 0

    def _next_salt(self, client: ClientEndpoint | HttpClientState) -> int:
        """A new salt for one placement (mixed with the client's port)."""
        self.salt = (self.salt + 0x9E3779B1) & 0xFFFFFFFF
        return self.salt ^ client.client[1]

    def placed(
        self,
        client: ClientEndpoint | HttpClientState,
        identifier: Identifier | None,
        now: float = 0.0,
    ) -> Decision:
        """The router's decision for a client's identifier (a connection of a tcp
        service, a request of an HTTP one); new sessions of one client address agree
        on a home (docs/routing.md). ``now``: the wall clock's time the caller just
        read (its extractors saw it), or 0.0 to read it here."""
        return self.router.route(
            identifier,
            self.view_cell.view,
            now or wall(),
            self._next_salt(client),
            affinity_source(client),
        )

    def decide(
        self,
        client: HttpClientState,
        identifier: Identifier | None,
        looked_up: bool = False,
        now: float = 0.0,
        asked: bool = False,
    ) -> Decision | None:
        """The request's home; None while the directory owners are asked about a key this
        replica does not hold (one link round trip, bounded by lookup_timeout), or while
        worker 0 is asked where a client source's new sessions go (lb.node.placing,
        one bus round trip, bounded by its ASK_TIMEOUT); then `client.decided(...)`
        follows with the decision made with the answer. ``now`` as for `placed` (the
        decision after an answer reads the clock again)."""
        decision = self.placed(client, identifier, now)
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
        placing = self.placing
        if (
            placing is not None
            and decision.new_session
            and not asked
            and placing.hold(client, identifier, decision)
        ):
            return None
        self.count_reason(decision.reason)
        return decision

    def resume_placed(self, client: HttpClientState, identifier: Identifier | None) -> None:
        """Worker 0 answered (or did not in time) where the client's new sessions go."""
        if not client.closed and client.state == ROUTED:
            client.decided(self.decide(client, identifier, looked_up=True, asked=True))

    def retry(self, client: HttpClientState, failed: Decision) -> Decision | None:
        """A new session whose home could not be reached, placed once more on another
        live, non-draining node (None when there is none)."""
        decision = self.router.retry(
            failed.home,
            self.view_cell.view,
            wall(),
            self._next_salt(client),
            affinity_source(client),
        )
        if decision is not None:
            self.count_reason(decision.reason)
        return decision

    def upstream_for(
        self, client: HttpClientState, decision: Decision, fresh: bool = False
    ) -> Upstream | None:
        """A pooled upstream to the decision's home, a new flow, or None while one is
        being made (then `client.attach` or `client.fail` follows)."""
        service = client.service
        pool = self.pool
        if decision.local:
            key: PoolKey = (self.name, service.name)  # one boxed tuple (PoolKey)
            upstream = None if fresh else pool.take(key)
            if upstream is not None:
                return upstream
            local = LocalUpstream(pool, key, self.name)
            self.apps.start(self._connect_upstream(client, local))
            return None
        home = decision.home
        link = self.links_out.get(home)
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
        home_addr = self.peers.config.nodes[home].listen[service.name][0]  # the primary
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
        deadline = self.loop.time() + link_wait(limits)
        home = decision.home
        while self.loop.time() < deadline and not client.closed:
            link = self.links_out.get(home)
            if link is not None and link.authenticated and not link.closed:
                upstream = self.upstream_for(client, decision)
                if upstream is not None:
                    client.attach(upstream)
                return
            if home not in self.view_cell.view.live:
                # declared dead while we waited: route again (the session is re-homed)
                client.reroute()
                return
            if home in self.peers.held:
                break  # this node hears no peer: the home keeps its sessions, no link comes
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
                proto = "https" if service.server_tls is not None else "http"
                # shared by the connections of one address (an idle one holds no copy)
                fwd = client.forwarded = forwarded_headers(
                    ip, proto, service.trusted_proxies.contains(ip)
                )
            raw = fwd.rewrite(head, client.buf)
        else:
            raw = http1.span_joined(client.buf, 0, head.length, b"")
        return http1.upstream_hop_by_hop(raw, head, client.upgrade)

    def response_head(
        self,
        client: HttpClientState,
        head: response_head.ResponseHead,
        buf: bytes | bytearray,
        start: int,
        end: int,
        decision: Decision,
    ) -> bytes | None:
        """The response head `buf[start:end]` as it goes to the client, or None when it
        goes unchanged: lb's own HTTP version (RFC 9110 6.2), the home cookie of a new
        session, the client side's own Connection header (RFC 9112 9.6: a connection
        about to be closed says `Connection: close`; an application's close is not the
        client's, and an HTTP/1.0 answer to a client lb keeps says `Connection:
        keep-alive`), and a Content-Length of equal values or leading zeros made one
        decimal line (RFC 9110 8.6)."""
        raw: bytes | None = None
        if head.length_respelled:
            raw = http1.with_one_content_length(bytes(buf[start:end]), head.content_length)
        if head.minor == 0:
            # RFC 9110 6.2: an intermediary sends its own HTTP-version; relayed as it came,
            # an application's HTTP/1.0 makes an HTTP/1.1 client step down for its next
            # requests (curl, browsers); the framing stays (close-delimited or not)
            raw = http1.with_own_version(raw if raw is not None else bytes(buf[start:end]))
        if head.status != 101:
            if self.draining:
                client.keep_alive = False
            if client.keep_alive:
                # the application closes its side, not the client's: by Connection:
                # close, or as an HTTP/1.0 answer without keep-alive (RFC 9112 9.3), which
                # relayed as it came would tell the client its connection ends too
                if not http1.response_keeps_alive(head):
                    raw = http1.without_connection_headers(
                        raw if raw is not None else bytes(buf[start:end])
                    )
                    if head.minor == 0:
                        raw = http1.with_header(raw, b"Connection: keep-alive\r\n")
                elif not head.keep_alive and _http10_client(client):
                    # an HTTP/1.0 client keeps its connection only when told (RFC 9112
                    # 9.3; ab -k looks for it), which an HTTP/1.1 application does not say
                    raw = http1.with_header(
                        raw if raw is not None else bytes(buf[start:end]),
                        b"Connection: keep-alive\r\n",
                    )
            elif not head.close:
                if raw is None:
                    raw = bytes(buf[start:end])
                if head.connection_header:
                    raw = http1.without_connection_headers(raw)
                raw = http1.with_header(raw, b"Connection: close\r\n")
        if decision.new_session:
            line = self.home.set_cookie_line(client.service, decision.home)
            raw = http1.with_header(raw if raw is not None else bytes(buf[start:end]), line)
        return raw

    def request_done(self, client: HttpClientState, status: int, error: str = "") -> None:
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
                client.client[0],
                client.client[1],
                error or None,
                client.tls,
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


__all__ = ["LINK_WAIT_POLL", "HttpRouting", "affinity_source", "link_wait", "make_conn_ref"]
