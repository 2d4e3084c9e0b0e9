"""The template service starts, answers grpc.health.v1 and /readyz, and reads its settings from the environment."""

from __future__ import annotations

import grpc
import httpx
import pytest
from facemint_template.app import setup
from facemint_template.settings import TemplateSettings
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.applications import Starlette

from facemint_core.lifecycle import ServiceRuntime, ops_routes
from facemint_core.settings import load_settings


def test_settings_are_read_from_prefixed_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEMINT_TEMPLATE_GRPC__PORT", "50051")
    monkeypatch.setenv("FACEMINT_TEMPLATE_INFERENCE_TARGET", "facemint-inference:50051")
    settings = TemplateSettings()
    assert settings.grpc.port == 50051
    assert settings.inference_target == "facemint-inference:50051"


def test_invalid_setting_stops_start_up_with_status_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEMINT_TEMPLATE_WORK_CONCURRENCY", "0")
    with pytest.raises(SystemExit) as exc:
        load_settings(TemplateSettings)
    assert exc.value.code == 2


async def test_started_service_reports_serving_over_grpc_health_and_readyz() -> None:
    runtime = ServiceRuntime("template", TemplateSettings())
    await setup(runtime)
    try:
        app = Starlette(routes=ops_routes(runtime.readiness))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}") as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await runtime.shutdown()
