"""Start-up of the template service: its gRPC server (with grpc.health.v1), readiness checks and stop hooks.

``setup`` is what :func:`facemint_core.lifecycle.run_service` calls; it registers everything that must be undone on
SIGTERM with ``runtime.on_stop`` so that the single shutdown path of ``facemint_core.lifecycle`` can drain it.
"""

from __future__ import annotations

import asyncio

import grpc

from facemint_core.grpcutil import start_grpc_server
from facemint_core.lifecycle import ServiceRuntime
from facemint_template.settings import TemplateSettings


def register(server: grpc.aio.Server) -> None:
    """Add the service's servicers to the gRPC server (a new service registers its generated servicer here)."""


async def setup(runtime: ServiceRuntime) -> None:
    """Start the gRPC server and declare what readiness depends on."""
    settings = runtime.settings
    assert isinstance(settings, TemplateSettings)
    slots = asyncio.Semaphore(settings.work_concurrency)

    async def capacity() -> None:
        if slots.locked():
            raise RuntimeError("every work slot is busy")

    runtime.readiness.add("capacity", capacity)
    await start_grpc_server(runtime, register, service_names=[])
