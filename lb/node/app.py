"""The application connector: connects the local application of a service.

Every connect is bounded by `limits.connect_timeout` through the node's one
timer (no timer per connection): a connect still running at its deadline is
cancelled and fails with TimeoutError. TLS to the application when the service
says so.

It must not decide which application or node serves a request (that is
lb.routing); it only connects what it is asked to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, cast

from lb.clock import Monotonic
from lb.node.service import Service
from lb.node.splice import AppEndpoint
from lb.node.timer import Deadlines
from lb.node.upstream import LocalUpstream

AppProtocol = AppEndpoint | LocalUpstream  # a splice end, or a pooled HTTP upstream


class AppConnector:
    """Runs application connects; `sweep(now)` cancels the late ones."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connect_timeout: float,
        wake_at: Callable[[float | None], None],
    ) -> None:
        self.loop = loop
        self.connect_timeout = connect_timeout
        self.wake_at = wake_at
        self.running: Deadlines[asyncio.Task[None]] = Deadlines()
        self.timed_out: set[asyncio.Task[None]] = set()
        # passive health: every real connect's outcome, by service (lb.node.health)
        self.report: Callable[[str, bool], None] = lambda _service, _ok: None

    def start(self, connect: Coroutine[Any, Any, None]) -> None:
        """Run `connect` (which awaits `connect_app`) under the connect deadline."""
        task = self.loop.create_task(connect)
        self.wake_at(self.running.add(task, self.loop.time() + self.connect_timeout))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        self.timed_out.discard(task)

    def sweep(self, now: Monotonic) -> float | None:
        for task in self.running.pop_due(now):
            self.timed_out.add(task)
            task.cancel()
        return self.running.next_deadline()

    async def connect_app(self, app: AppProtocol, service: Service) -> None:
        """Connect `service`'s application to `app`; TimeoutError past the deadline."""
        try:
            await self._connect(app, service)
        except (OSError, TimeoutError):
            self.report(service.name, False)
            raise
        self.report(service.name, True)

    async def _connect(self, app: AppProtocol, service: Service) -> None:
        target = service.app
        try:
            await self.loop.create_connection(
                lambda: cast(asyncio.BaseProtocol, app),  # both are protocols by their methods
                target.host,
                target.port,
                ssl=service.app_ssl,
                server_hostname=service.app_server_hostname if service.app_ssl else None,
            )
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task in self.timed_out:
                task.uncancel()
                if app.transport is not None:  # connected just as the deadline cancelled it
                    if isinstance(app, AppEndpoint):
                        app.peer = None
                    app.transport.close()
                raise TimeoutError(
                    f"no connection to {target} within the connect timeout"
                ) from None
            raise

    def __len__(self) -> int:
        return len(self.running)


__all__ = ["AppConnector"]
