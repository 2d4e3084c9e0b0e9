"""The service process: setup serves gRPC and reports its three dependencies in readiness."""

from __future__ import annotations

from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from facemint.library.v1 import library_pb2, library_pb2_grpc
from facemint_core.grpcutil import open_channel
from facemint_core.lifecycle import ServiceRuntime
from facemint_core.schemas import service_dsn
from facemint_core.settings import DatabaseSettings, GrpcSettings
from facemint_library.__main__ import setup
from facemint_library.settings import LibrarySettings


async def test_setup_serves_grpc_and_readiness_follows_the_media_decoder(fresh_database: str, tmp_path: Path) -> None:
    decoder_health = health.aio.HealthServicer()
    await decoder_health.set("", health_pb2.HealthCheckResponse.SERVING)
    decoder = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(decoder_health, decoder)
    decoder_port = decoder.add_insecure_port("127.0.0.1:0")
    await decoder.start()
    settings = LibrarySettings(
        grpc=GrpcSettings(port=0),
        database=DatabaseSettings(dsn=service_dsn(fresh_database, "library"), min_pool_size=0, max_pool_size=2),
        data_dir=tmp_path,
        media_decoder_target=f"127.0.0.1:{decoder_port}",
    )
    runtime = ServiceRuntime("library", settings)
    try:
        await setup(runtime, settings)
        report = await runtime.readiness.evaluate()
        assert report.ready, report.checks
        assert set(report.checks) == {"database", "vector_store", "media_decoder"}
        async with open_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
            stub = library_pb2_grpc.LibraryServiceStub(channel)
            page = await stub.ListLibraries(library_pb2.ListLibrariesRequest(account_id="nobody"))
            assert list(page.libraries) == []
        await decoder_health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        report = await runtime.readiness.evaluate()
        assert not report.ready and report.checks["media_decoder"].startswith("failing")
    finally:
        await runtime.shutdown()
        await decoder.stop(0)
