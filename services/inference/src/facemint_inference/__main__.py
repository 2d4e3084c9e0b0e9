"""Entry point of the inference service: ``python -m facemint_inference`` (or ``facemint-inference``).

Start-up never waits for the models: the gRPC and health servers start at once, the models load in the
background (retried until they are available), and the ``models`` readiness check reports why the service is
not ready meanwhile, so a missing or corrupt model file never makes the process crash-loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import cast

import grpc

from facemint.inference.v1 import inference_pb2_grpc
from facemint_core.grpcutil import start_grpc_server
from facemint_core.lifecycle import ServiceRuntime, run_service
from facemint_core.settings import load_settings
from facemint_inference.engine import Engine, create_runner
from facemint_inference.packs import PACKS
from facemint_inference.priority import PriorityExecutor
from facemint_inference.servicer import SERVICE_NAME, InferenceServicer
from facemint_inference.settings import InferenceSettings

log = logging.getLogger("facemint_inference")


async def setup(runtime: ServiceRuntime) -> Engine:
    """Build the runner and engine, register the ``models`` readiness check and start the gRPC server.

    Args:
        runtime: The running service; its settings must be :class:`InferenceSettings`.

    Returns:
        The engine (models keep loading in the background until available).
    """
    settings = cast(InferenceSettings, runtime.settings)
    pack = PACKS[settings.pack]
    log.info("model pack", extra={"pack": pack.name, "license": pack.license, "runner": settings.runner})
    if pack.name == "insightface":
        log.warning(
            "the insightface pack's SCRFD, ArcFace and 2d106det weights are licensed for NON-COMMERCIAL "
            "RESEARCH USE ONLY; use the open pack (FACEMINT_INFERENCE_PACK=open) for anything else"
        )
    executor = PriorityExecutor(settings.executor_workers, thread_name_prefix="inference")
    runner = create_runner(settings, executor)
    engine = Engine(settings, runner, executor)
    runtime.readiness.add("models", engine.check)
    loader = asyncio.create_task(engine.load_until_ready())

    async def stop(_: float) -> None:
        loader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loader
        await runner.close()
        executor.shutdown(wait=False, cancel_futures=True)

    runtime.on_stop("models", stop)  # registered before the gRPC server, so it runs after the server stopped
    servicer = InferenceServicer(engine, settings, executor)

    def register(server: grpc.aio.Server) -> None:
        inference_pb2_grpc.add_InferenceServiceServicer_to_server(servicer, server)

    await start_grpc_server(runtime, register, [SERVICE_NAME])
    return engine


async def _setup(runtime: ServiceRuntime) -> None:
    await setup(runtime)


def main() -> None:
    """Run the inference service until SIGTERM/SIGINT."""
    run_service("inference", load_settings(InferenceSettings), _setup)


if __name__ == "__main__":
    main()
