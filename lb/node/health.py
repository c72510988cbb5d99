"""Health checks of the local applications: active TCP connects and passive results.

Every `health_interval` each service's application gets a TCP connect (bounded
by the interval and connect_timeout); real application connects count too
(passive). The counting is lb.cluster.health; when any application goes down
or all are up again, `on_change(healthy)` tells the node, which takes no new
sessions while unhealthy. Transitions are logged at warning.

It must not decide placement: it only reports health.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping

import structlog

from lb.cluster.health import AppHealth
from lb.config import Limits
from lb.node.service import Service

log = structlog.get_logger("lb.health")


class HealthChecker:
    """Up/down of each service's local application; the node is healthy when all are up."""

    def __init__(
        self,
        name: str,
        loop: asyncio.AbstractEventLoop,
        services: Mapping[str, Service],
        limits: Limits,
        counters: Counter[str],
        on_change: Callable[[bool], None],
    ) -> None:
        self.name = name
        self.loop = loop
        self.services = services
        self.interval = limits.health_interval
        self.timeout = min(limits.health_interval, limits.connect_timeout)
        self.counters = counters
        self.on_change = on_change
        self.health = {s: AppHealth(limits.health_rise, limits.health_fall) for s in services}
        self.tasks: list[asyncio.Task[None]] = []

    @property
    def healthy(self) -> bool:
        return all(h.up for h in self.health.values())

    def state(self) -> dict[str, str]:
        return {s: "up" if h.up else "down" for s, h in self.health.items()}

    def start(self) -> None:
        for service in self.services.values():
            self.tasks.append(self.loop.create_task(self._check_forever(service)))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()

    async def _check_forever(self, service: Service) -> None:
        while True:
            await asyncio.sleep(self.interval)
            ok = await self._connects(service)
            try:
                self.observe(service.name, ok)
            except Exception:  # a failing reaction must not end the checks
                log.exception("health_check_failed", node=self.name, service=service.name)

    async def _connects(self, service: Service) -> bool:
        """A TCP connect to the application (no TLS, no request: it listens, it answers)."""
        target = service.app
        try:
            async with asyncio.timeout(self.timeout):
                _reader, writer = await asyncio.open_connection(target.host, target.port)
        except (OSError, TimeoutError):
            self.counters["health_checks_failed"] += 1
            return False
        writer.close()
        return True

    def observe(self, service: str, ok: bool) -> None:
        """A check or a real connect to `service`'s application succeeded or failed."""
        health = self.health.get(service)
        if health is None:
            return
        was_healthy = self.healthy
        change = health.observe(ok)
        if change is None:
            return
        log.warning(
            "app_up" if change else "app_down",
            node=self.name,
            service=service,
            app=str(self.services[service].app),
        )
        if self.healthy != was_healthy:
            self.on_change(self.healthy)


__all__ = ["HealthChecker"]
