"""The home side: serve the flows entry nodes open here, and mark new sessions.

On NEW (a `FlowOpened` event of an inbound link) the home connects its local
application and answers VERIFIED, or RESET with the reason; the flow is then
spliced to that application connection. For HTTP services the entry frames
every request and response on the flow (it inserts the home cookie signed here
by `set_cookie_line` and learns application cookies), and reuses the flow for
later requests to this home; for tls-passthrough a learner watches the
ServerHello for sessions to record in the directory.

It must not route or place (lb.routing), nor speak the link protocol (lb.link).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

import structlog

from lb.clock import wall
from lb.link import FlowOpened
from lb.node.app import AppConnector
from lb.node.learn import SessionLearner
from lb.node.peerlink import FlowEndpoint, LinkDriver
from lb.node.service import Service
from lb.node.splice import AppEndpoint
from lb.routing.cookie import CookieKeyring, set_cookie_header_value
from lb.wire.frames import ResetReason
from lb.wire.proxy import encode_proxy_v2

log = structlog.get_logger("lb.home")


class Home:
    """Accepts forwarded flows for this node's services and signs new sessions' cookies."""

    def __init__(
        self,
        name: str,
        services: Mapping[str, Service],
        apps: AppConnector,
        keyring: CookieKeyring,
        cookie_name: str,
        cookie_ttl: int,
        learner_for: Callable[[Service, str], SessionLearner | None],
        counters: Counter[str],
    ) -> None:
        self.name = name
        self.services = services
        self.apps = apps
        self.keyring = keyring
        self.cookie_name = cookie_name
        self.cookie_ttl = cookie_ttl
        self.learner_for = learner_for
        self.counters = counters

    def set_cookie_line(self, service: Service, home: str) -> bytes:
        """The Set-Cookie header line (CRLF included) naming `home` as a session's home."""
        ttl = self.cookie_ttl
        value = self.keyring.sign(home, int(wall()) + ttl)
        header = set_cookie_header_value(
            self.cookie_name, value, max_age=ttl, secure=service.secure_cookie
        )
        return b"Set-Cookie: " + header.encode("latin-1") + b"\r\n"

    def flow_opened(self, link: LinkDriver, event: FlowOpened) -> None:
        service = self.services.get(event.ref.service)
        if service is None:
            link.conn.reset(event.flow_id, int(ResetReason.NO_SERVICE), event.ref.service)
            link.flush_soon()
            return
        flow = link.home_flow(event.flow_id)
        flow.pooled = service.http  # entries pool HTTP flows between requests
        flow.awaiting = True  # a request is on its way (held by the link until the app is up)
        # http: the entry frames every response (home cookie, learning); tcp is spliced
        learner = self.learner_for(service, event.ref.client_ip)
        # the client's address to the application (tcp services): from the connection reference
        ref = event.ref
        first = b""
        if service.app_proxy_v2:
            first = encode_proxy_v2((ref.client_ip, ref.client_port), (ref.home_ip, ref.home_port))
        self.apps.start(self._connect(flow, service, learner, first))

    async def _connect(
        self,
        flow: FlowEndpoint,
        service: Service,
        learner: SessionLearner | None,
        first: bytes = b"",
    ) -> None:
        app = AppEndpoint(flow, learner, first)
        try:
            await self.apps.connect_app(app, service)
        except TimeoutError:
            self.counters["app_connect_failures"] += 1
            flow.reset(int(ResetReason.APP_TIMEOUT))
            return
        except OSError:
            self.counters["app_connect_failures"] += 1
            flow.reset(int(ResetReason.APP_REFUSED))
            return
        if flow.done:  # the entry gave up meanwhile (RESET, pending timeout, link lost)
            app.peer = None
            if app.transport is not None:
                app.transport.close()
            return
        flow.attach(app)


__all__ = ["Home"]
