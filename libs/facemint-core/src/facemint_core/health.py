"""Liveness and readiness: named dependency checks shared by ``/readyz`` and ``grpc.health.v1``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from grpc_health.v1 import health, health_pb2
from prometheus_client import Gauge

log = logging.getLogger(__name__)

READY = Gauge("facemint_service_ready", "1 while the service's last readiness evaluation passed (what /readyz answers)")

Check = Callable[[], Awaitable[None]]
"""A readiness check: returns when the dependency is usable, raises with a reason otherwise."""


@dataclass
class ReadinessReport:
    """The outcome of one readiness evaluation."""

    ready: bool
    checks: dict[str, str] = field(default_factory=dict)


class Readiness:
    """Named checks plus a shutting-down flag; the gRPC health servicer mirrors the overall state.

    Evaluations run one at a time and a caller may accept a recent one, so that a storm of probes costs one round of
    checks (one query, one RPC) per ``max_age``, not one per probe.
    """

    def __init__(self, check_timeout: float = 2.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout = check_timeout
        self.shutting_down = False
        self.grpc_health = health.aio.HealthServicer()
        self._serving: bool | None = None
        self._last: ReadinessReport | None = None
        self._last_at = 0.0
        self._lock = asyncio.Lock()

    def add(self, name: str, check: Check) -> None:
        """Register a dependency check under a name shown by ``/readyz``."""
        self._checks[name] = check

    async def evaluate(self, max_age: float = 0.0) -> ReadinessReport:
        """Run every check (concurrently, each bounded by the timeout) and update gRPC health.

        Args:
            max_age: Return the last report instead when it is at most this many seconds old (never once shutting
                down); callers arriving during an evaluation wait for it.
        """
        async with self._lock:
            if self._last is not None and not self.shutting_down and time.monotonic() - self._last_at <= max_age:
                return self._last
            self._last = await self._run_checks()
            self._last_at = time.monotonic()
            return self._last

    async def _run_checks(self) -> ReadinessReport:
        report = ReadinessReport(ready=not self.shutting_down)
        if self.shutting_down:
            report.checks["shutdown"] = "shutting down"

        async def one(name: str, check: Check) -> tuple[str, str]:
            try:
                await asyncio.wait_for(check(), self._timeout)
            except Exception as exc:  # noqa: BLE001 - every failure is a reason to report
                return name, f"failing: {exc or type(exc).__name__}"
            return name, "ok"

        results = await asyncio.gather(*(one(n, c) for n, c in self._checks.items()))
        for name, outcome in results:
            report.checks[name] = outcome
            if outcome != "ok":
                report.ready = False
        READY.set(1 if report.ready else 0)
        await self._publish(report.ready)
        return report

    async def _publish(self, serving: bool) -> None:
        if serving == self._serving:
            return
        if self._serving is not None:
            log.info("readiness changed", extra={"ready": serving})
        self._serving = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        await self.grpc_health.set("", status)

    async def watch(self, interval: float = 2.0) -> None:
        """Re-evaluate periodically so that gRPC health follows the dependencies."""
        while True:
            await self.evaluate()
            await asyncio.sleep(interval)
