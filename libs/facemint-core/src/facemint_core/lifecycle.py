"""One start-up and shutdown path for every service process.

``run_service`` configures logging and tracing, starts the operational HTTP listener (``/healthz``, ``/readyz``,
``/metrics``), calls the service's ``setup`` coroutine, then waits for SIGTERM or SIGINT. On a signal it marks the
process not ready, then runs the registered stop hooks in reverse order of registration (stop accepting, finish or
hand back in-flight work, drain NATS, close pools), all within ``shutdown_grace_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from facemint_core.health import Readiness
from facemint_core.logging import configure_logging
from facemint_core.metrics import render_latest
from facemint_core.settings import DatabaseSettings, NatsSettings, ServiceSettings
from facemint_core.tracing import instrument_asgi, setup_tracing

if TYPE_CHECKING:
    import asyncpg
    from nats.aio.client import Client as NatsClient

log = logging.getLogger(__name__)

READYZ_MAX_AGE_SECONDS = 1.0
"""How old a readiness report ``/readyz`` may answer with: probes never cost more than a round of checks a second."""

StopHook = Callable[[float], Awaitable[Any]]
"""A stop hook receives the seconds of grace left."""


class ServiceRuntime:
    """What a running service shares with its parts: settings, readiness, stop hooks and bound ports."""

    def __init__(self, name: str, settings: ServiceSettings) -> None:
        self.name = name
        self.settings = settings
        self.readiness = Readiness()
        self.stop_event = asyncio.Event()
        self._stop_hooks: list[tuple[str, StopHook]] = []
        self.http_port = 0
        self.grpc_port = 0
        self.extra_routes: list[BaseRoute] = []

    def on_stop(self, name: str, hook: StopHook) -> None:
        """Register a stop hook; hooks run in reverse order of registration."""
        self._stop_hooks.append((name, hook))

    def request_stop(self) -> None:
        """Begin a graceful shutdown, as SIGTERM does."""
        self.stop_event.set()

    async def shutdown(self) -> None:
        """Mark not ready and run the stop hooks within the configured grace."""
        self.readiness.shutting_down = True
        await self.readiness.evaluate()
        deadline = time.monotonic() + self.settings.shutdown_grace_seconds
        for name, hook in reversed(self._stop_hooks):
            left = max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(hook(left), timeout=left + 1.0)
            except Exception:
                log.exception("stop hook failed", extra={"hook": name})
        log.info("stopped", extra={"service": self.name})


def ops_routes(readiness: Readiness) -> list[BaseRoute]:
    """Routes for liveness, readiness and metrics."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        report = await readiness.evaluate(READYZ_MAX_AGE_SECONDS)
        return JSONResponse(
            {"status": "ready" if report.ready else "not_ready", "checks": report.checks},
            status_code=200 if report.ready else 503,
        )

    async def metrics(_: Request) -> Response:
        body, content_type = render_latest()
        return Response(body, media_type=content_type)

    return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`run_service` (one shutdown path per process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def start_http(runtime: ServiceRuntime, app: Any) -> uvicorn.Server:
    """Serve an ASGI app on the configured HTTP address; records the bound port; stops with the runtime."""
    config = uvicorn.Config(
        app,
        host=runtime.settings.http.host,
        port=runtime.settings.http.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(runtime.settings.shutdown_grace_seconds)),
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("HTTP server stopped during start-up")
        await asyncio.sleep(0.02)
    for srv in server.servers:
        for sock in srv.sockets:
            runtime.http_port = sock.getsockname()[1]

    async def stop(_: float) -> None:
        server.should_exit = True
        await task

    runtime.on_stop("http", stop)
    return server


Setup = Callable[[ServiceRuntime], Awaitable[None]]


async def _main(name: str, settings: ServiceSettings, setup: Setup, http_app: Any | None) -> None:
    runtime = ServiceRuntime(name, settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runtime.request_stop)
    await setup(runtime)
    app = http_app(runtime) if http_app else Starlette(routes=ops_routes(runtime.readiness) + runtime.extra_routes)
    await start_http(runtime, instrument_asgi(app))
    watcher = asyncio.create_task(runtime.readiness.watch())
    log.info(
        "started",
        extra={"http_port": runtime.http_port, "grpc_port": runtime.grpc_port},
    )
    await runtime.stop_event.wait()
    log.info("shutdown requested", extra={"grace_seconds": settings.shutdown_grace_seconds})
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    await runtime.shutdown()


def run_service(
    name: str,
    settings: ServiceSettings,
    setup: Setup,
    http_app: Callable[[ServiceRuntime], Any] | None = None,
) -> None:
    """Run a service process until SIGTERM/SIGINT, then shut it down gracefully.

    Args:
        name: Service name, e.g. ``"task-orchestrator"``.
        settings: The service's validated settings.
        setup: Coroutine that starts the service's servers and workers and registers stop hooks.
        http_app: Optional factory of the HTTP app (the gateway's API); defaults to the ops routes only.
    """
    configure_logging(name, settings.log.level)
    provider = setup_tracing(name, settings.tracing)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    try:
        asyncio.run(_main(name, settings, setup, http_app))
    finally:
        if provider is not None:
            provider.shutdown()  # exports the spans still queued


async def open_database(runtime: ServiceRuntime, settings: DatabaseSettings, migrate_as: str | None) -> asyncpg.Pool:
    """Create the service's PostgreSQL pool (closed on stop), applying its pending migrations when asked.

    Args:
        runtime: The running service.
        settings: Its ``DatabaseSettings`` (the DSN of its own role, whose schema the migrations go to).
        migrate_as: The service's name in :data:`facemint_core.schemas.SCHEMAS` to apply its migrations, or None.
    """
    from facemint_core.db import create_pool
    from facemint_core.schemas import apply_own_migrations

    pool = await create_pool(settings)

    async def close_pool(_: float) -> None:
        await pool.close()

    runtime.on_stop("database", close_pool)
    if migrate_as is not None:
        async with pool.acquire() as conn:
            await apply_own_migrations(conn, migrate_as)

    async def database() -> None:
        await pool.fetchval("SELECT 1")

    runtime.readiness.add("database", database)
    return pool


async def open_nats(
    runtime: ServiceRuntime, settings: NatsSettings, on_reconnect: Callable[[], Awaitable[None]] | None = None
) -> NatsClient:
    """Connect to NATS (drained on stop) and register a readiness check; returns the client.

    Readiness, and so gRPC health, is re-evaluated the moment the connection drops or comes back rather than at the
    next periodic evaluation; ``on_reconnect`` then runs in the background (a service catching up on work that
    waited for NATS).
    """
    from facemint_core.jetstream import connect, drain

    background: set[asyncio.Task[Any]] = set()

    def finished(task: asyncio.Task[Any]) -> None:
        background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("NATS reconnect hook failed", exc_info=task.exception())

    def spawn(work: Awaitable[Any]) -> None:  # the client awaits its callbacks inside its reconnect loop
        task = asyncio.ensure_future(work)
        background.add(task)
        task.add_done_callback(finished)

    async def disconnected() -> None:
        spawn(runtime.readiness.evaluate())

    async def reconnected() -> None:
        spawn(runtime.readiness.evaluate())
        if on_reconnect is not None:
            spawn(on_reconnect())

    nc = await connect(settings, runtime.name, on_disconnect=disconnected, on_reconnect=reconnected)

    async def drain_nats(grace: float) -> None:
        await drain(nc, max(1.0, grace))

    runtime.on_stop("nats", drain_nats)

    async def nats_ready() -> None:
        if not nc.is_connected:
            raise ConnectionError("NATS disconnected")

    runtime.readiness.add("nats", nats_ready)
    return nc
