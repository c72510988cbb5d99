"""The HTTP client side: one client connection of an `http` or `tls-terminate` service.

Every request is routed on its own. For each request: read its head (bounded
by `head_bytes` and `head_timeout`), run the extractor chain, ask the entry
for the home and an upstream to it (a pooled connection to the local
application, or a pooled flow on the link to the home), send the head and
the body, frame the response, and give the upstream back to its pool. So
consecutive requests of one keep-alive connection (a pooling proxy, a
browser) may go to different homes; pipelined requests wait their turn and are
answered in order. A 101 or a 2xx answer to CONNECT turns the connection into
a tunnel to that request's home.

This module is the request side (reading, routing, sending the request, the
tunnel, idle and error ends); the response side (framing the answer, the home
cookie of a new session, learning application cookies, retries) is
lb.node.http_response.ResponseSide, a base class; the fields of a connection
are lb.node.http_state.HttpClientState's.

Error answers: 400 (malformed), 408 (head timeout), 431 (head too large), 502
(the home or application failed before a byte of the response was sent; a
reset after that), 503 with Retry-After (what passes: over capacity, no way to the
home for now). Parsing is lb.wire's; placement is
lb.routing's; this module only carries out the exchange.
"""

from __future__ import annotations

import asyncio
from typing import Final, cast

from lb.clock import wall
from lb.errors import HttpError, ProxyHeaderError
from lb.extract.api import Identifier, Seen, Verdict
from lb.extract.chain import run_chain
from lb.link.connection import PAUSE_PEER
from lb.node.client import service_front
from lb.node.http_response import ResponseSide
from lb.node.http_state import (
    DONE,
    EXCHANGE,
    HEAD,
    PAUSE_ANSWERS,
    PAUSE_BACKLOG,
    R_DONE,
    R_HEAD,
    ROUTED,
    TUNNEL,
)
from lb.node.servertls import connection_tls
from lb.node.splice import abort_with_reset, silent_for
from lb.node.upstream import Upstream
from lb.routing.route import Decision
from lb.wire import http1
from lb.wire.http import (
    RequestHead,
    RequestHeadScanner,
    empty_lines_before,
    error_response,
    parse_request_head,
)
from lb.wire.proxy import FrontProxy

RETRY_BUFFER: Final = 65536  # a request up to this size is kept to be resent on a fresh upstream
_NEED_MORE: Final = Verdict.NEED_MORE  # a module constant: no class attribute lookup per head


def _has_body(head: RequestHead) -> bool:
    """Whether the request announces a body (a Content-Length or chunked), so that an
    extractor answering need-more may get more bytes; a framing lb refuses counts as
    none (routing the head answers its error)."""
    try:
        return http1.request_framing(head)[0] != http1.NO_BODY
    except HttpError:
        return False


class HttpClient(ResponseSide):
    """A client connection whose requests are routed one by one.

    An asyncio protocol by its methods, not by subclassing asyncio.Protocol, so a
    compiled build (setup.py) makes it a native class; it defines every protocol
    method the event loop calls."""

    __slots__ = ()  # the connection's fields are HttpClientState's

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        if not peername:
            self.state = DONE
            transport.abort()  # type: ignore[attr-defined]
            return
        self.client = (peername[0], peername[1])
        if self.service.server_tls is not None:  # the handshake is done: read it once
            self.tls = connection_tls(transport)
        if service_front(self.service, peername[0]):
            self.front = FrontProxy(self.client)  # its PROXY v2 header names the client
        if not self.entry.admit(self):
            self.state = DONE
            self.transport.write(error_response(503))
            self.transport.close()
            return
        self._start_head_deadline()  # the first request: head_timeout from accept on

    def data_received(self, data: bytes) -> None:
        self.active = True
        state = self.state
        if state == TUNNEL:
            upstream = self.upstream
            if upstream is not None:
                upstream.write(data)
            return
        if state == EXCHANGE and not self.req_done:
            self._request_body(data)
            return
        self.buf += data
        if state == HEAD:
            if len(self.buf) == len(data):
                # a head's first bytes: its routing and attach in this read read no clock
                self.t_start = self.t_read = self.entry.now()
                try:
                    self._read_head()
                finally:
                    self.t_read = 0.0
            else:
                self._read_head()
        elif len(self.buf) >= self.entry.head_bytes:
            self.pause_client(PAUSE_BACKLOG)

    def eof_received(self) -> bool:
        self._client_ended()
        # True: the socket stays open for the answers, and lb closes after the last one.
        # Over TLS the layer ends the session at the client's close_notify whatever the
        # answer, and warns for each True: a log line per client that closes first.
        return self.service.server_tls is None

    def _client_ended(self) -> None:
        """The client's FIN (or close_notify): what it sent is all there is."""
        self.eof_in = True
        state = self.state
        if state == TUNNEL:
            if self.upstream is not None:
                self.upstream.write_eof()
            if self.upstream_ended:
                self.tunnel_ended()
            return
        if state == HEAD:
            self.keep_alive = False
            if self.buf:
                self._read_head()
            if self.state == HEAD:
                self._finish(400 if self.buf else 0, "the client ended inside a request head")
            return
        if state == EXCHANGE and not self.req_done:
            # the client ended in the middle of its request body: it can never be whole.
            # The application's connection goes (it must not take the part as a request);
            # the client hears why unless an answer had begun (then a reset says broken)
            self._abort_exchange()
            if self.resp_sent:
                self._close(clean=False)
            else:
                self._finish(400, "the client ended inside a request body")
            return
        if state == ROUTED:
            # the upstream is not ready yet: the body (whole or cut) waits in buf, and
            # attach() frames it knowing the FIN came (a cut one gets 400)
            return
        if not self.buf:
            self.keep_alive = False  # answer what was asked, then close
        # else pipelined requests came before the FIN: each is answered, then the close
        # (the exchange's end reads them, and closes once none is left)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.entry.head_done(self)
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close(clean=self.state == TUNNEL and exc is None)
        self._end_local()
        self.state = DONE
        self.entry.release(self)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.upstream is not None:
            self.upstream.pause_response()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.upstream is not None:
            self.upstream.resume_response()
        if self.paused & PAUSE_ANSWERS:
            # the client read its answers: its next request (ResponseSide._exchange_done)
            self.resume_client(PAUSE_ANSWERS)
            if self.state == HEAD and self.buf and not self.closed:
                self.next_request()

    # -- reading a request head ----------------------------------------------------------
    def _read_head(self) -> None:
        entry = self.entry
        if self.front is not None and not self._take_front_header():
            return
        head = self.head
        if head is None:
            scanner = self.scanner
            try:
                if scanner is None:
                    # the usual case: a whole head in one read, parsed in one pass
                    head = parse_request_head(self.buf, entry.head_bytes)
                    if head is None:
                        # a head in pieces: resume where each read stopped, under a deadline
                        scanner = self.scanner = RequestHeadScanner(entry.head_bytes)
                        scanner.scan(self.buf)
                        self._start_head_deadline()
                        return
                else:
                    head = scanner.scan(self.buf)
                    if head is None:
                        return
            except HttpError as exc:
                self._finish(exc.status, exc.reason)
                return
            buf = self.buf
            if buf[0] == 13:
                # RFC 9112 2.2: empty lines before the request line are ignored, not
                # passed on to an application that may refuse them
                lead = empty_lines_before(buf, head.length)
                del buf[:lead]
                head.length -= lead
            self.head = head
        # a bytes copy of the buffer, as bytes() makes, for a fraction of its cost compiled
        # (bytes() is a call of the type, which parses its arguments)
        buf = self.buf
        now = wall()  # the extractors' time, and the router's (one read of the clock)
        seen = Seen(http1.span_joined(buf, 0, len(buf), b""), self.eof_in, self.client, head, now)
        result = run_chain(self.service.chain, seen, entry.on_extractor_error)
        if result is _NEED_MORE:
            if not _has_body(head):
                # no byte more can come for this request: need-more counts as no match
                # and the rest of the chain decides (as at a tcp client's end), instead
                # of holding a GET for the whole head_timeout
                seen.eof = True
                result = run_chain(self.service.chain, seen, entry.on_extractor_error)
            elif len(self.buf) < entry.head_bytes and not self.eof_in:
                self._start_head_deadline()  # an extractor reads the body: wait, bounded
                return
            else:
                result = Verdict.NO_MATCH
        self._route(result if isinstance(result, Identifier) else None, now)

    def _take_front_header(self) -> bool:
        """A listed front balancer's PROXY v2 header: True once read (its source is the
        client from now on); False while more bytes are needed, or after a bad header
        closed the connection (counted, no answer: the balancer speaks no HTTP here)."""
        front = self.front
        assert front is not None
        try:
            got = front.feed(self.buf)
        except ProxyHeaderError:
            self.entry.count("proxy_header_errors")
            self._finish(0)
            return False
        if got is None:
            self._start_head_deadline()
            return False
        consumed, self.client = got
        del self.buf[:consumed]
        self.front = None
        return bool(self.buf)

    def _start_head_deadline(self) -> None:
        if not self.head_timed:
            self.head_timed = True
            self.entry.head_started(self)

    def head_timed_out(self) -> None:
        """The entry's sweep: the head did not arrive within head_timeout."""
        self.head_timed = False  # the deadline fired: it is no longer armed
        if self.state != HEAD or self.closed:
            return
        if self.head is not None:
            self._route(None)  # complete head, an extractor still waits for the body
            return
        self.entry.count("head_timeouts")
        if self.front is not None:
            # a listed front balancer sent part of its PROXY v2 header: no answer, as for a
            # bad header (the balancer speaks no HTTP here)
            self._finish(0, "PROXY v2 header not complete within head_timeout")
            return
        self._finish(408 if self.buf else 0, "request head not complete within head_timeout")

    def _route(self, identifier: Identifier | None, now: float = 0.0) -> None:
        """Route the complete head; ``now``: the wall clock's time just read, or 0.0."""
        head = self.head
        assert head is not None
        entry = self.entry
        if self.head_timed:
            self.head_timed = False
            entry.head_done(self)
        try:
            http1.check_host(head)
            kind, length, keep_alive, self.upgrade = http1.request_framing(head)
        except HttpError as exc:
            self._finish(exc.status, exc.reason)
            return
        self.method = head.method
        if not keep_alive:
            self.keep_alive = False
        self.identifier = identifier
        self.req_framer = None if kind == http1.NO_BODY else http1.BodyFramer(kind, length)
        self.req_done = kind == http1.NO_BODY
        self.scanner = None
        self.state = ROUTED
        self.retries = 0
        self.t_routed = self.t_read or self.entry.now()
        self._send_to(entry.decide(self, identifier, False, now))

    def decided(self, decision: Decision | None) -> None:
        """The entry's answer after asking the directory owners about this request's key."""
        if decision is not None and not self.closed and self.state == ROUTED:
            self._send_to(decision)

    def _send_to(self, decision: Decision | None) -> None:
        if decision is None:
            return  # the directory owners are asked; `decided` follows
        self.decision = decision
        upstream = self.entry.upstream_for(self, decision)
        if upstream is not None:
            self.attach(upstream)
        # else the entry calls attach() or fail() once the upstream is ready

    # -- the exchange ----------------------------------------------------------------------
    def attach(self, upstream: Upstream) -> None:
        """An upstream to the home is ready: send the request head and what we have."""
        if self.closed or self.state != ROUTED:
            upstream.release(reusable=not upstream.closed)
            return
        head = self.head
        assert head is not None
        upstream.user = self
        self.upstream = upstream
        if self.write_paused:
            # the transport said pause_writing once, to the previous upstream (released
            # and resumed since): this one must not be read until it says resume_writing
            upstream.pause_response()
        self.state = EXCHANGE
        self.t_attached = self.t_read or self.entry.now()
        self.rstate = R_HEAD
        self.rbuf = b""  # a partial head from an upstream that failed is not this one's
        self.resp_sent = False
        # RFC 9112 9.3: after an HTTP/1.0 request without keep-alive the application
        # closes its connection, Connection: close or not
        self.upstream_reusable = head.version == "HTTP/1.1" or http1.request_keeps_alive(head)
        self.local = upstream.home == self.entry.name
        if self.local:
            self.entry.local_active += 1
        resend = self.resend
        if resend is not None:
            upstream.write(resend)
            self.resend = None
            # still the request as sent, and still unanswered: should this upstream fail
            # before any answer too (a new session's home refusing it), it may go elsewhere
            self.retry_bytes = resend
            if self.eof_in and not self.buf:
                self.keep_alive = False  # the last request before the client's FIN: say close
            return
        out = self.entry.request_head(self, head)
        buf = self.buf
        if len(buf) == head.length:
            buf.clear()  # the usual case: cheaper than deleting a slice (built, then taken)
        else:
            del buf[: head.length]
        framer = self.req_framer
        if framer is None:
            whole = out
        else:
            try:
                end = framer.feed(buf, 0)
            except HttpError as exc:  # a bad chunk already in the head's read
                self._abort_exchange()
                self._finish(exc.status, exc.reason)
                return
            whole = out + bytes(buf[:end])
            del buf[:end]
            self.req_done = framer.done
            if self.eof_in and not self.req_done:
                # a pipelined request whose body the client's FIN cut: it can never be
                # whole; nothing of it went out, so the client hears why (as for a cut head)
                self._abort_exchange()
                self._finish(400, "the client ended inside a request body")
                return
        # kept while it may be sent again: on a fresh upstream when a pooled one closed
        # under an idempotent request, or to another node when a new session's home
        # could not be reached
        decision = self.decision
        if (
            self.req_done
            and not self.upgrade
            and len(whole) <= RETRY_BUFFER
            and (http1.idempotent(self.method) or (decision is not None and decision.new_session))
        ):
            self.retry_bytes = whole
        else:
            self.retry_bytes = None
        self.bytes_in = len(whole)
        upstream.write(whole)
        if self.eof_in and self.req_done and self.upgrade:
            upstream.write_eof()
        if self.eof_in and not buf:
            self.keep_alive = False  # the last request before the client's FIN: say close
        if self.paused & PAUSE_BACKLOG and len(buf) < self.entry.head_bytes:
            self.resume_client(PAUSE_BACKLOG)

    def _request_body(self, data: bytes) -> None:
        framer = self.req_framer
        upstream = self.upstream  # None after an early answer whose upstream closed
        assert framer is not None
        try:
            end = framer.feed(data, 0)
        except HttpError as exc:
            self._abort_exchange()
            self._finish(exc.status, exc.reason)
            return
        self.bytes_in += end
        if end == len(data):
            if upstream is not None:
                upstream.write(data)
        else:
            if upstream is not None:
                upstream.write(data[:end])
            self.buf += data[end:]
        if framer.done:
            self.req_done = True
            if self.rstate == R_DONE:
                self._exchange_done()

    def abort_idle(self) -> None:
        """Close an idle keep-alive connection (draining): a FIN, nothing lost.

        Only between requests: a connection accepted a moment ago whose first request
        is still on its way is served (its answer says Connection: close)."""
        if self.state == HEAD and not self.buf and self.served:
            self._close(clean=True)

    def tunnel_ended(self) -> None:
        """Both ends of a tunnel sent EOF, each passed on: nothing more can pass. Both
        connections are closed (FIN) and the client released (its admission slot; a
        local tunnel's load). Without this, half-closed both ways, neither would ever end."""
        upstream, self.upstream = self.upstream, None
        self._end_local()
        if upstream is not None:
            upstream.close(clean=True)
        self._close(clean=True)

    def _start_tunnel(self) -> None:
        self.state = TUNNEL
        self.keep_alive = False
        upstream = self.upstream
        if upstream is None:
            return
        if self.buf:
            upstream.write(bytes(self.buf))
            self.buf = bytearray()
        if self.eof_in:
            upstream.write_eof()
        if self.paused & PAUSE_BACKLOG:
            self.resume_client(PAUSE_BACKLOG)

    def _abort_exchange(self) -> None:
        upstream, self.upstream = self.upstream, None
        self._end_local()
        if upstream is not None:
            upstream.close(clean=False)

    def _end_local(self) -> None:
        if self.local:
            self.local = False
            self.entry.local_active -= 1

    # -- back-pressure ---------------------------------------------------------------------
    def pause_client(self, reason: int) -> None:
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_client(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    # -- the end -----------------------------------------------------------------------------
    def _finish(self, status: int, error: str = "") -> None:
        """Answer an error status (if no byte of a response went out), then close; `error`
        says why, for the access log (fixed text: never a byte of the request)."""
        self.entry.head_done(self)
        transport = self.transport
        self.state = DONE
        if transport is None or self.closed:
            return
        if status and not self.resp_sent:
            self.entry.count(f"http_{status}")  # every error answer lb writes, counted here
            self.sent_any = True
            answer = error_response(status)
            self.bytes_out += len(answer)
            transport.write(answer)
            if self.buf or self.head is not None:  # a request (or its start) was read
                if not self.t_start:
                    self.t_start = self.entry.now()
                if not self.bytes_in:  # nothing went on: what was read of the request
                    self.bytes_in = len(self.buf)
                self.entry.request_done(self, status, error)
        transport.close()

    def _close(self, clean: bool) -> None:
        self.state = DONE
        transport = self.transport
        if transport is None or self.closed:
            return
        if clean:
            transport.close()  # what was written goes first, then FIN
        else:
            abort_with_reset(transport)

    def idle_tick(self, now: float, timeout: float) -> None:
        """The entry's idle sweep at `now`: closed (FIN) once no byte moved either way for
        `timeout`."""
        if not silent_for(self, now, timeout):
            return
        self.entry.count("idle_timeouts")
        upstream, self.upstream = self.upstream, None
        if upstream is not None:
            upstream.close(clean=True)
        self._end_local()
        if self.state in (ROUTED, EXCHANGE) and not self.resp_sent:
            # the home or its application stayed silent: say so, as a gateway does
            self._finish(504, "no response within idle_timeout")
            return
        # a response cut in its middle must look broken (a FIN ends a close-delimited one)
        self._close(clean=self.state not in (ROUTED, EXCHANGE) or self.rstate == R_DONE)

    def abort(self) -> None:
        """Shutdown: drop the connection and its upstream."""
        self._abort_exchange()
        self._close(clean=False)


__all__ = ["PAUSE_BACKLOG", "PAUSE_PEER", "HttpClient"]
