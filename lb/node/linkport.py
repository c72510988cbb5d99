"""The link port: the forward address, where peers (and anyone else) connect.

It accepts each socket and admits it before any byte is read: at most
MAX_PRELOGIN_PER_SOURCE sockets not logged in per source (an IPv4 address, an
IPv6 /64) and MAX_PRELOGIN in total from strangers; the farm members' own
addresses do not count against the total, and a full table evicts its oldest
stranger, so a flood cannot keep a restarted peer out. Then the TLS handshake
(mutual TLS links), then HELLO/AUTH in the link driver, all within the login
deadline. Failed logins are counted and logged, at most a line a second.

It must not speak the link protocol (lb.link) nor keep the farm's links
(lb.node.peers); it only admits sockets and hands them to link drivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from collections.abc import Callable

import structlog

from lb.config import FarmConfig
from lb.node.linktls import LinkTls
from lb.node.peerlink import LinkDriver
from lb.node.sockets import accept_forever, listening_socket
from lb.routing.directory import source_key

log = structlog.get_logger("lb.linkport")

LOGIN_TIMEOUT = 3.0  # seconds a socket on the forward address has to log in
MAX_PRELOGIN = 256  # sockets of strangers not yet logged in, in total
MAX_PRELOGIN_PER_SOURCE = 16  # ... and from one source
BACKLOG = 1024


class LinkPort:
    """The forward address's listener and the admission of sockets before login."""

    def __init__(
        self,
        name: str,
        config: FarmConfig,
        loop: asyncio.AbstractEventLoop,
        counters: Counter[str],
        make_link: Callable[[], LinkDriver],
        tls: LinkTls | None,
    ) -> None:
        self.name = name
        self.config = config
        self.loop = loop
        self.counters = counters
        self.make_link = make_link  # a responder link end
        self.tls = tls
        self.prelogin: dict[LinkDriver, str] = {}  # inbound, not logged in: source address
        self.prelogin_by_source: Counter[str] = Counter()
        self.member_sources: set[str] = set()  # the farm members' addresses (resolved)
        self.listener: socket.socket | None = None
        self.accept_task: asyncio.Task[None] | None = None
        self.handshakes: set[asyncio.Task[None]] = set()
        self.handshake_tasks: dict[LinkDriver, asyncio.Task[None]] = {}
        self.failed_logins = 0
        self.last_login_log = 0.0

    async def listen(self, host: str, port: int, reuse_port: bool) -> None:
        """Bind the forward address; accept links in a task (see `_on_socket`)."""
        self.listener = listening_socket(host, port, reuse_port, BACKLOG)
        await self.resolve_members(self.config)
        self.accept_task = self.loop.create_task(
            accept_forever(self.loop, self.listener, self._on_socket, self._accept_failed)
        )

    async def resolve_members(self, config: FarmConfig) -> None:
        """The addresses farm members connect from (their forward and advertised hosts)."""
        self.config = config
        hosts = {
            a.host
            for n in config.nodes.values()
            if n.name != self.name
            for a in (n.forward, n.forward_advertised)
        }
        found: set[str] = set()
        for host in hosts:
            try:
                infos = await self.loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except OSError:
                continue
            found.update(str(info[4][0]) for info in infos)
        self.member_sources = {ip for ip in found if ip not in ("0.0.0.0", "::")}

    def _on_socket(self, conn: socket.socket, source: str) -> None:
        """Admit each socket before any byte is read (caps, deadline), then TLS, then HELLO.

        Admission happens at accept time, so the caps on sockets not logged in
        cover the TLS handshake too; a failed handshake is a failed login, logged
        with the source address.
        """
        link = self.make_link()
        if not self.admit(link, source):
            conn.close()
            return
        task = self.loop.create_task(self._start_inbound(link, conn, source))
        self.handshake_tasks[link] = task
        self.handshakes.add(task)
        task.add_done_callback(self.handshakes.discard)

    def _accept_failed(self, exc: OSError) -> None:
        self.counters["link_accept_errors"] += 1
        self.log_failed("?", f"accept failed: {exc}")

    async def _start_inbound(self, link: LinkDriver, conn: socket.socket, source: str) -> None:
        try:
            tls = self.tls
            if tls is None:
                await self.loop.connect_accepted_socket(link.factory(), conn)
            else:
                await self.loop.connect_accepted_socket(
                    link.factory(),
                    conn,
                    ssl=tls.server,
                    ssl_handshake_timeout=LOGIN_TIMEOUT,
                )
        except (OSError, TimeoutError, ConnectionError) as exc:
            conn.close()
            if link in self.prelogin:  # not evicted meanwhile
                self.left(link)
                self.counters["link_logins_failed"] += 1
                self.log_failed(source, f"TLS handshake failed: {exc or type(exc).__name__}")
        finally:
            self.handshake_tasks.pop(link, None)

    def admit(self, link: LinkDriver, source: str) -> bool:
        """An inbound socket before login: within the caps, or refused at once.

        At most MAX_PRELOGIN_PER_SOURCE per source (an IPv4 address, an IPv6 /64).
        The farm members' own addresses do not count against the total, and when
        the total is full the oldest stranger's socket makes room: a flood from
        many sources cannot keep a restarted peer from linking.
        """
        key = source_key(source)
        if self.prelogin_by_source[key] >= MAX_PRELOGIN_PER_SOURCE:
            self.counters["link_logins_refused"] += 1
            self.log_failed(source, "too many sockets not logged in from this source")
            return False
        if source not in self.member_sources:
            strangers = [ln for ln, src in self.prelogin.items() if src not in self.member_sources]
            if len(strangers) >= MAX_PRELOGIN:
                oldest = strangers[0]
                self.counters["link_prelogin_evicted"] += 1
                evicted_from = self.prelogin.get(oldest, "?")
                self.log_failed(evicted_from, "evicted: too many sockets not logged in")
                self.left(oldest)
                oldest.abort("evicted: too many sockets not logged in")
                if oldest.transport is None:
                    self._close_handshake_socket(oldest)
        self.prelogin[link] = source
        self.prelogin_by_source[key] += 1
        return True

    def left(self, link: LinkDriver) -> None:
        source = self.prelogin.pop(link, None)
        if source is not None:
            key = source_key(source)
            self.prelogin_by_source[key] -= 1
            if self.prelogin_by_source[key] <= 0:
                del self.prelogin_by_source[key]

    def _close_handshake_socket(self, link: LinkDriver) -> None:
        """An evicted socket still in its TLS handshake: cancel the handshake (it closes it)."""
        task = self.handshake_tasks.pop(link, None)
        if task is not None:
            task.cancel()

    def log_failed(
        self, source: str, reason: str, claimed: str | None = None, direction: str = "in"
    ) -> None:
        """One line a second at most; the count says how many were not logged."""
        self.failed_logins += 1
        now = self.loop.time()
        if now - self.last_login_log < 1.0:
            return
        self.last_login_log = now
        log.warning(
            "link_login_failed",
            node=self.name,
            source=source,
            claimed=claimed,
            direction=direction,
            reason=reason,
            failures=self.failed_logins,
        )

    def failed(self, link: LinkDriver, reason: str) -> None:
        """A link driver's login failed (bad proof, wrong farm or name, too slow)."""
        self.counters["link_logins_failed"] += 1
        source = self.prelogin.get(link)
        if source is None and link.transport is not None:
            peername = link.transport.get_extra_info("peername")
            source = str(peername[0]) if peername else "?"
        self.log_failed(source or "?", reason, link.peer_name, link.direction)

    async def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
        tasks = list(self.handshakes)
        if self.accept_task is not None:
            tasks.append(self.accept_task)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for link in list(self.prelogin):
            link.close()


__all__ = ["LOGIN_TIMEOUT", "LinkPort"]
