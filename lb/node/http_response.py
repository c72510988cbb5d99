"""The response side of an HTTP client connection: the half of
lb.node.http_client.HttpClient that frames the home's answer, sends it to the
client and ends the exchange, and that recovers when the upstream fails before
a byte of the answer went out (a fresh upstream for an idempotent request,
another node for a new session). A final head that names a new learned
session is held here until its directory owners know it.

`ResponseSide` is a base class of HttpClient (fields: HttpClientState). The
home cookie of a new session goes into the head of the response that opens it
(the entry writes it); application cookies the chain looks for are learned from
every response head, on local and forwarded paths alike. It does no I/O
beyond the client's transport and the upstream the exchange was given, parses
nothing itself (lb.wire.http1 does) and decides no home (the entry asks
lb.routing).
"""

from __future__ import annotations

from lb.errors import HttpError
from lb.link.connection import PAUSE_LINK, PAUSE_PEER
from lb.node.accesslog import no_answer_text
from lb.node.http_state import (
    HEAD,
    HOME_LEAVING,
    HOME_UNAVAILABLE,
    HOME_UNREACHABLE,
    MAX_RESPONSE_HEAD,
    MAX_RETRIES,
    PAUSE_ANSWERS,
    PAUSE_BACKLOG,
    R_BODY,
    R_DONE,
    R_HEAD,
    R_HOLD,
    R_UNTIL_CLOSE,
    ROUTED,
    TUNNEL,
    HttpClientState,
)
from lb.wire import http1, response_head
from lb.wire.frames import ResetReason
from lb.wire.http import empty_lines_before, parse_set_cookie


class ResponseSide(HttpClientState):
    """Response framing, the end of an exchange, and recovery from a failed upstream.

    The connection's fields are HttpClientState's."""

    __slots__ = ()

    # -- the response ----------------------------------------------------------------------
    def upstream_data(self, data: bytes) -> None:
        self.active = True
        transport = self.transport
        if transport is None or self.closed:
            return
        rstate = self.rstate
        if self.state == TUNNEL or rstate == R_UNTIL_CLOSE:
            self._to_client(data)
            return
        if rstate == R_BODY:
            framer = self.resp_framer
            assert framer is not None
            try:
                end = framer.feed(data, 0)
            except HttpError as exc:
                self._upstream_broke(0, exc.reason)
                return
            if end == len(data):
                self._to_client(data)
            else:
                self._to_client(data[:end])
                self.upstream_reusable = False  # bytes after the response: not HTTP we know
            if framer.done:
                self._response_done()
            return
        if rstate == R_HEAD:
            if self.rbuf:
                self.rbuf += data
                self._response_heads(self.rbuf)
            else:
                self._response_heads(data)
            return
        if rstate == R_HOLD:
            self.rbuf += data  # kept until the held head goes out
            return
        # R_DONE: bytes after a complete response
        self.upstream_reusable = False

    def _response_heads(self, buf: bytes | bytearray) -> None:
        """Response heads at the start of `buf`: interim ones, then the final one."""
        pos = 0
        while True:
            try:
                head = response_head.parse_response_head(buf, pos, MAX_RESPONSE_HEAD)
            except HttpError as exc:
                self._upstream_broke(0, exc.reason)
                return
            if head is None:
                rest = buf[pos:]
                self.rbuf = rest if isinstance(rest, bytearray) else bytearray(rest)
                return
            end = pos + head.length
            if 100 <= head.status < 200 and head.status != 101:
                interim = bytes(buf[pos:end])  # 100-continue and friends
                if head.minor == 0:
                    # lb's own HTTP-version, as on final answers (RFC 9110 6.2): Python's
                    # http.server answers Expect: 100-continue with HTTP/1.0 100 Continue
                    interim = http1.with_own_version(interim)
                self._interim_to_client(interim)
                pos = end
                continue
            self.rbuf = b""
            self._final_head(head, buf, pos, end)
            return

    def _final_head(
        self, head: response_head.ResponseHead, buf: bytes | bytearray, pos: int, end: int
    ) -> None:
        entry = self.entry
        decision = self.decision
        assert decision is not None
        kind, length = http1.response_body(head, self.method)
        self.status = head.status
        if kind == http1.TUNNEL:
            if not self.upgrade:
                # a 101 to a request that asked no upgrade (RFC 9110 15.2.2): what follows
                # is no HTTP lb knows, and the client's next bytes must not pass raw (502,
                # as HAProxy answers); never sent again
                self.retry_bytes = None
                self._upstream_broke(0, "a 101 to a request that asked no upgrade")
                return
            if head.status != 101 and (
                head.content_length >= 0 or head.chunked or head.other_coding
            ):
                # a 2xx to CONNECT has no Content-Length nor Transfer-Encoding (RFC 9110
                # 9.3.6): one that frames a body is an application that took CONNECT for
                # one more method and reads what follows as requests, which a tunnel
                # would pass it raw (no forwarding headers, no routing)
                self.retry_bytes = None
                self._upstream_broke(0, "a 2xx to CONNECT that frames a body")
                return
        elif kind == http1.UNTIL_CLOSE and head.other_coding:
            # a Transfer-Encoding whose last coding is not chunked: RFC 9112 6.3 frames the
            # body by the close, but a client that frames by a `chunked` it reads in the
            # list (`chunked, identity`), or by one of two lines, ends the answer elsewhere
            # and takes the rest for its next answer; with the line dropped it would read
            # the coded bytes as the content. 502, as HAProxy and nginx answer any coding
            # but chunked; never sent again
            self.retry_bytes = None
            self._upstream_broke(0, "a Transfer-Encoding whose last coding is not chunked")
            return
        if not http1.response_keeps_alive(head):
            self.upstream_reusable = False
        elif (
            kind == http1.NO_BODY
            and (head.content_length > 0 or head.chunked or head.other_coding)
            and head.status != 304
        ):
            # a HEAD answer or a 204 has no body (RFC 9110 9.3.2, 15.3.5), yet this one
            # announces one: a server that wrote it as a GET's, or a 204 with a body,
            # sends the bytes later, and they would be the answer to the next request
            # the connection carries, another client's (a 304's length is the
            # representation's: it announces no body)
            self.upstream_reusable = False
        elif self.req_framer is not None and head.status >= 300:
            # a request with a body, answered by a redirect or an error: the answer of an
            # application that may not have read the body (an early 401, 404, 405, a
            # redirect of a path it does not serve), which it would then read as the
            # start of its next request, another client's (CL.0 desync): its connection
            # is not reused (a 2xx, the usual answer to a body it read, keeps it)
            self.upstream_reusable = False
        if head.minor == 0 and head.chunked:
            # RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty
            # framing; its recipient closes the connection after it (both sides)
            self.upstream_reusable = False
            self.keep_alive = False
        learns = head.set_cookies and self.service.learn_cookies and self.held is not head
        if learns and self._learn(head, decision.home):
            # the session this response names must be known to its directory owners
            # before the client can use it: hold the head (bounded by register_timeout)
            self.held = head
            self.rstate = R_HOLD
            self.rbuf = bytearray(buf[pos:])
            if self.upstream is not None:
                self.upstream.pause_response()
            return
        if kind == http1.UNTIL_CLOSE:
            self.keep_alive = False  # the client learns the end of it from our close
        if not self.req_done:
            # an answer before the whole body (a streaming application, or an early
            # refusal): whether the application reads the rest or takes it for its next
            # request is unknown, so its connection is not reused. The client's is: lb
            # frames the rest of the body itself; unless the application ends the
            # exchange with Connection: close (it will not read the rest), then the
            # client is told so and closed after its body
            self.upstream_reusable = False
            if head.close:
                self.keep_alive = False
        changed = entry.response_head(self, head, buf, pos, end, decision)
        if kind == http1.LENGTH and end + length <= len(buf):
            # the usual case: the whole response in this read, sent in one write
            stop = end + length
            if changed is None and pos == 0 and stop == len(buf):
                self._to_client(buf if isinstance(buf, bytes) else bytes(buf))
            else:
                self._to_client((changed or bytes(buf[pos:end])) + bytes(buf[end:stop]))
            if stop < len(buf):
                self.upstream_reusable = False  # bytes after the response: not HTTP we know
            self._response_done()
            return
        out = changed if changed is not None else bytes(buf[pos:end])
        rest = buf[end:]
        if kind == http1.TUNNEL:
            self._to_client(out + bytes(rest))
            self._start_tunnel()
            return
        if kind == http1.UNTIL_CLOSE:
            self.rstate = R_UNTIL_CLOSE
            self.upstream_reusable = False
            self._to_client(out + bytes(rest))
            return
        if kind == http1.NO_BODY:
            self._to_client(out)
            if rest:
                self.upstream_reusable = False
            self._response_done()
            return
        framer = self.resp_framer = http1.BodyFramer(kind, length, status=502)
        try:
            stop = framer.feed(rest, 0)
        except HttpError as exc:
            self._to_client(out)
            self._upstream_broke(0, exc.reason)
            return
        self.rstate = R_BODY
        self._to_client(out + bytes(rest[:stop]) if stop else out)
        if stop < len(rest):
            self.upstream_reusable = False
        if framer.done:
            self._response_done()

    def _learn(self, head: response_head.ResponseHead, home: str) -> bool:
        """Record the application cookies `head` sets that the chain looks for; True when
        some registration waits for its directory owners (then the head is held until
        the last one is released)."""
        names = self.service.learn_cookies
        waiting = [0]

        def release() -> None:
            waiting[0] -= 1
            if waiting[0] == 0 and self.held is head:
                self._release_held()

        learn = self.entry.learn
        for value in head.set_cookies:
            parsed = parse_set_cookie(value)
            if parsed is None or parsed[0] not in names:
                continue
            name, cookie, attributes = parsed
            max_age = attributes.get("max-age")
            ttl: float | None = None
            if max_age is not None and max_age.lstrip("-").isdigit():
                ttl = float(max(int(max_age), 0))
            if cookie and ttl != 0.0:
                waiting[0] += 1
                if learn("cookie", f"{name}={cookie}", ttl, self.client[0], home, release):
                    waiting[0] -= 1
        return waiting[0] > 0

    def _release_held(self) -> None:
        """Every registration of the held head was acknowledged (or timed out): send it."""
        head, self.held = self.held, None
        if head is None or self.closed or self.rstate != R_HOLD:
            return
        held_eof, self.held_eof = self.held_eof, False
        buf, self.rbuf = bytes(self.rbuf), b""
        self.rstate = R_HEAD
        upstream = self.upstream
        if upstream is not None:
            upstream.resume_response()
        self.held = head  # marks the head as learned for _final_head
        self._final_head(head, buf, 0, head.length)
        self.held = None
        if held_eof and self.upstream is not None:
            self.upstream_eof()

    def _to_client(self, data: bytes) -> None:
        size = len(data)  # compiled, a native length (`if data` is a call through Python)
        if size:
            if not self.t_first_out:  # 0 until a byte of an answer (an interim one too) went
                self.t_first_out = self.entry.now()
            self.bytes_out += size
            self.resp_sent = True
            self.sent_any = True
            self.active = True  # a byte out (a held answer's too, written long after it came)
            transport = self.transport
            # closing: the TLS layer hears a reset a loop turn before this protocol does,
            # and asyncio warns "SSL connection is closed" at each write past the fifth
            # (asked of TLS clients only: a TCP transport drops such writes silently, and
            # the call costs plain requests about 180 instructions)
            if (
                transport is not None
                and not self.closed
                and (self.tls is None or not transport.is_closing())
            ):
                transport.write(data)

    def _interim_to_client(self, data: bytes) -> None:
        """An interim (1xx) response: it goes out (to an HTTP/1.1 client only), but it is
        not the answer, so resp_sent stays False: a final answer may still be lb's own
        (502, 504). The application has the request now, so it is never sent again (no
        retry on a fresh upstream)."""
        self.retry_bytes = None
        head = self.head
        if head is not None and head.version == "HTTP/1.0":
            # RFC 9110 15.2: no 1xx to an HTTP/1.0 client, which takes the first status
            # line it reads for its answer (then every later answer for the next one's)
            return
        if not self.t_first_out:
            self.t_first_out = self.entry.now()
        self.bytes_out += len(data)
        self.sent_any = True
        self.active = True
        transport = self.transport
        if (
            transport is not None
            and not self.closed
            and (self.tls is None or not transport.is_closing())
        ):
            transport.write(data)

    def _response_done(self) -> None:
        self.rstate = R_DONE
        self.resp_framer = None
        if self.req_done:
            self._exchange_done()
        else:
            # the application answered, completely, before the whole request body came:
            # the exchange ends with the body (`_request_body`), which lb frames and
            # drops. The application's connection goes now: a server that does not read
            # the rest of a body it answered would take it for its next request, one lb
            # never read (no forwarding headers rewritten, no routing)
            self.upstream_reusable = False
            upstream, self.upstream = self.upstream, None
            self._end_local()
            if upstream is not None:
                upstream.close(clean=True)
            # its back-pressure ends with it (a closed upstream never says resume): the
            # client is read again, else the rest of the body never comes
            self.resume_client(PAUSE_PEER | PAUSE_LINK)

    def _exchange_done(self) -> None:
        entry = self.entry
        upstream, self.upstream = self.upstream, None
        self._end_local()
        self.retry_bytes = None
        if upstream is not None:
            upstream.release(self.upstream_reusable and not self.upgrade)
        entry.requests_done += 1
        entry.request_done(self, self.status)
        # the next request's line is its own: an error lb answers before routing it
        # (a bad head, a head timeout) must not count this one's bytes and times
        self.t_routed = self.t_attached = self.t_first_out = 0.0
        self.bytes_in = self.bytes_out = self.status = 0
        self.served += 1
        self.head = None
        self.decision = None
        self.identifier = None
        self.req_framer = None
        self.resp_sent = False  # the next request's answer (an error included) is its own
        self.state = HEAD
        buf = self.buf
        if buf and buf[0] == 13 and empty_lines_before(buf, len(buf)) == len(buf):
            buf.clear()  # RFC 9112 2.2: a stray empty line after a request (after a body)
        if not self.keep_alive or (self.eof_in and not buf):
            self._close(clean=True)
            return
        if self.write_paused:
            # the client reads none of its answers: its next request waits until it does
            # (resume_writing). Pausing the upstream holds back nothing of an answer that
            # fits in a flow's credit window; without this, every pipelined request's
            # answer would pile up in the client's write buffer
            self.pause_client(PAUSE_ANSWERS)
        if self.paused:
            # the upstream's pauses end with it (a window it may still reopen is not ours)
            self.resume_client(PAUSE_BACKLOG | PAUSE_PEER | PAUSE_LINK)
        if self.buf and not self.write_paused:
            self.next_request()

    def next_request(self) -> None:
        """The pipelined request already in `buf`, now that the one before it is done."""
        self.t_start = self.entry.now()
        self._read_head()
        if self.eof_in and self.state == HEAD:
            # the client ended with a part of a head: no more will come
            self.keep_alive = False
            self._finish(400, "the client ended inside a request head")

    def upstream_eof(self) -> None:
        if self.rstate == R_HOLD:
            self.held_eof = True
            return
        if self.state == TUNNEL:
            self.upstream_ended = True
            transport = self.transport
            if transport is not None and not self.closed:
                if transport.can_write_eof():
                    transport.write_eof()
                    if self.eof_in:
                        self.tunnel_ended()
                else:
                    transport.close()  # TLS: no half-close; what was written goes first
            return
        if self.rstate == R_UNTIL_CLOSE:
            self.upstream_reusable = False
            self.rstate = R_DONE
            self.keep_alive = False
            self._exchange_done() if self.req_done else self._close(clean=True)
            return
        if self.rstate == R_DONE:
            self.upstream_reusable = False
            return
        self._upstream_broke()

    def upstream_lost(self, reason: int) -> None:
        if self.state == TUNNEL:
            self.upstream = None
            self._close(clean=reason == 0)
            return
        if self.rstate == R_DONE:
            self.upstream_reusable = False
            if self.upstream is not None and self.upstream.closed:
                self.upstream = None
            return
        if self.rstate == R_UNTIL_CLOSE and reason == 0:
            self.upstream = None
            self.keep_alive = False
            self._close(clean=True)
            return
        self._upstream_broke(reason)

    def _upstream_broke(self, reason: int = 0, error: str = "") -> None:
        """The upstream ended or failed (a RESET `reason`, or a bad response: `error`)
        before the response was complete."""
        upstream, self.upstream = self.upstream, None
        self._end_local()
        if upstream is not None:
            upstream.close(clean=False)
        entry = self.entry
        leaving = reason in HOME_LEAVING  # the link to the home closed, or it shut down
        if (
            not self.resp_sent
            and self.retry_bytes is not None
            and upstream is not None
            and (upstream.reused or leaving)
            and http1.idempotent(self.method)
            and self.retries < MAX_RETRIES
        ):
            self.retries += 1
            # a pooled upstream closed under an idempotent request: once more, on a fresh one
            entry.count("http_retried_on_fresh_upstream")
            self.resend, self.retry_bytes = self.retry_bytes, None
            self.state = ROUTED
            decision = self.decision
            assert decision is not None
            fresh = entry.upstream_for(self, decision, fresh=True)
            if fresh is not None:
                self.attach(fresh)
            return
        if not self.resp_sent:
            if self._retry_new_session(reason):
                return
            if reason == int(ResetReason.TABLE_FULL):
                # the home refused the flow (its table for this link is full): the request
                # reached no application, and the condition passes (503 with Retry-After)
                self._finish(503, no_answer_text("no upstream", reason))
                return
            self._finish(502, error or no_answer_text("no response", reason))
            return
        self._close(clean=False)  # a truncated response must look broken to the client

    def fail(self, reason: int) -> None:
        """The entry could not get an upstream (connect failed, link gone, table full): 502
        for an application that refused, 503 with Retry-After for what passes (no link up
        to the home, a full flow table: HOME_UNAVAILABLE)."""
        if self.closed:
            return
        self._end_local()
        if self._retry_new_session(reason):
            return
        status = 503 if reason in HOME_UNAVAILABLE else 502
        self._finish(status, no_answer_text("no upstream", reason))

    def _retry_new_session(self, reason: int) -> bool:
        """A new session's home could not be reached and no byte of an answer went out:
        place it once more on another node. True when it was sent there."""
        decision = self.decision
        if (
            decision is None
            or not decision.new_session
            or decision.reason == "retry"
            or reason not in HOME_UNREACHABLE
            or self.resp_sent
            or self.head is None
        ):
            return False
        if self.bytes_in and self.retry_bytes is None and self.resend is None:
            return False  # the request went out and cannot be sent again
        silent = reason == int(ResetReason.PENDING_TIMEOUT)
        if self.bytes_in and silent and not http1.idempotent(self.method):
            return False  # the home may have passed it on before it fell silent
        again = self.entry.retry(self, decision)
        if again is None:
            return False
        self.resend, self.retry_bytes = self.retry_bytes, None
        self.state = ROUTED
        self.rstate = R_HEAD
        self._send_to(again)
        return True

    def reroute(self) -> None:
        """The home died while the request waited for its link: route it again."""
        if self.closed or self.state != ROUTED:
            return
        self._send_to(self.entry.decide(self, self.identifier))


__all__ = ["ResponseSide"]
