"""Entry point: ``facemint-library`` (or ``python -m facemint_library``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facemint.library.v1 import library_pb2, library_pb2_grpc
from facemint_core.db import create_pool
from facemint_core.grpcutil import open_channel, start_grpc_server
from facemint_core.lifecycle import ServiceRuntime, run_service
from facemint_core.schemas import apply_own_migrations
from facemint_core.settings import load_settings
from facemint_library.calibration import Calibrations
from facemint_library.media import MediaAnalyzer
from facemint_library.service import LibraryService
from facemint_library.settings import LibrarySettings
from facemint_library.store import EdgeStore, VectorStore, make_store

log = logging.getLogger(__name__)


async def maintain(store: VectorStore, service: LibraryService, interval: float) -> None:
    """Periodically index new segments of the embedded store and refresh the vectors gauge."""
    while True:
        await asyncio.sleep(interval)
        try:
            if isinstance(store, EdgeStore):
                await store.maintain()
            await service.refresh_vector_gauge()
        except Exception:
            log.exception("vector store maintenance failed")


async def setup(runtime: ServiceRuntime, settings: LibrarySettings) -> None:
    """Open the pool, the vector store and the media-decoder channel; serve gRPC; register readiness checks."""
    calibrations = Calibrations.load(settings.calibration.directory)
    log.info("score calibrations", extra={"models": calibrations.model_ids})
    pool = await create_pool(settings.database)
    if settings.apply_migrations:
        async with pool.acquire() as conn:
            await apply_own_migrations(conn, "library")
    store = make_store(settings)
    await store.open()
    channel = open_channel(settings.media_decoder_target)
    service = LibraryService(
        settings, pool, store, MediaAnalyzer(channel, settings.media_decoder_timeout_seconds), calibrations
    )
    await service.refresh_vector_gauge()

    async def close_resources(_: float) -> None:
        await channel.close()
        await store.close()
        await pool.close()

    runtime.on_stop("resources", close_resources)

    async def database() -> None:
        await pool.fetchval("SELECT 1")

    async def media_decoder() -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1.5)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise RuntimeError("media-decoder is not serving")

    runtime.readiness.add("database", database)
    runtime.readiness.add("vector_store", store.ping)
    runtime.readiness.add("media_decoder", media_decoder)

    def register(server: grpc.aio.Server) -> None:
        library_pb2_grpc.add_LibraryServiceServicer_to_server(service, server)

    await start_grpc_server(runtime, register, [library_pb2.DESCRIPTOR.services_by_name["LibraryService"].full_name])
    task = asyncio.create_task(maintain(store, service, settings.optimize_interval_seconds))

    async def stop_maintenance(_: float) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    runtime.on_stop("maintenance", stop_maintenance)


def main() -> None:
    """Run the library service until SIGTERM."""
    settings = load_settings(LibrarySettings)

    async def _setup(runtime: ServiceRuntime) -> None:
        await setup(runtime, settings)

    run_service("library", settings, _setup)


if __name__ == "__main__":
    main()
