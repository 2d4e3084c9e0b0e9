"""The gateway's connections to PostgreSQL and the internal gRPC services, created by the app's lifespan."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.requests import Request

from facemint.library.v1 import library_pb2_grpc
from facemint.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from facemint.webhook.v1 import webhook_pb2_grpc
from facemint_core.grpcutil import open_channel
from facemint_gateway.settings import GatewaySettings
from facemint_gateway.taskcache import TerminalTaskCache

R = TypeVar("R")


@dataclass
class Services:
    """Pool, channels and stubs shared by every request."""

    settings: GatewaySettings
    pool: asyncpg.Pool
    channels: list[grpc.aio.Channel]
    tasks: orchestrator_pb2_grpc.TaskServiceStub
    orchestrator_health: health_pb2_grpc.HealthStub
    library: library_pb2_grpc.LibraryServiceStub
    webhooks: webhook_pb2_grpc.WebhookServiceStub
    terminal_tasks: TerminalTaskCache

    @classmethod
    async def open(cls, settings: GatewaySettings) -> Services:
        """Create the pool and the channels."""
        from facemint_core.db import create_pool
        from facemint_core.schemas import apply_own_migrations

        pool = await create_pool(settings.database)
        if settings.apply_migrations:
            async with pool.acquire() as conn:
                await apply_own_migrations(conn, "gateway")
        orch = open_channel(settings.orchestrator_target)
        lib = open_channel(settings.library_target)
        hooks = open_channel(settings.webhook_target)
        return cls(
            settings=settings,
            pool=pool,
            channels=[orch, lib, hooks],
            tasks=orchestrator_pb2_grpc.TaskServiceStub(orch),
            orchestrator_health=health_pb2_grpc.HealthStub(orch),
            library=library_pb2_grpc.LibraryServiceStub(lib),
            webhooks=webhook_pb2_grpc.WebhookServiceStub(hooks),
            terminal_tasks=TerminalTaskCache(settings.terminal_task_cache_entries, 256 * 1024),
        )

    async def call(self, method: Callable[..., Awaitable[R]], request: Any, timeout: float | None = None) -> R:
        """Call a unary RPC with the configured deadline (the channel raises a peer's error as its FacemintError)."""
        return await method(request, timeout=timeout or self.settings.rpc_timeout_seconds)

    async def usage(self, account_id: str) -> orchestrator_pb2.Usage:
        """The account's active tasks and metered usage this month, from the task-orchestrator that owns them."""
        return await self.call(self.tasks.GetUsage, orchestrator_pb2.GetUsageRequest(account_id=account_id))

    async def check_task_queue(self) -> None:
        """Return when tasks can be queued: the orchestrator is reachable and serving (its own readiness covers
        PostgreSQL, NATS and the jobs stream); raise with the reason otherwise. The readiness timeout bounds it."""
        reply = await self.orchestrator_health.Check(health_pb2.HealthCheckRequest())
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise ConnectionError("task-orchestrator is not serving")

    async def close(self) -> None:
        """Close channels and the pool."""
        for channel in self.channels:
            await channel.close()
        await self.pool.close()


def services(request: Request) -> Services:
    """The Services of the running app."""
    svc: Services = request.app.state.services
    return svc
