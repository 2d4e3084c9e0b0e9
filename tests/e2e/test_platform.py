"""The whole local platform: readiness of every service, one RPC each, crash recovery, clean stop (issue #2)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facemint.common.v1 import common_pb2
from facemint.inference.v1 import inference_pb2, inference_pb2_grpc
from facemint.library.v1 import library_pb2, library_pb2_grpc
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc
from facemint.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from facemint.webhook.v1 import webhook_pb2, webhook_pb2_grpc
from facemint_local.harness import MEDIA_HOST, MediaServer, RunningPlatform, pids_alive, start_platform
from facemint_local.testmedia import png_with_faces

pytestmark = [pytest.mark.e2e]

GRPC_SERVICES = ("task-orchestrator", "media-decoder", "inference", "library", "webhook-dispatcher")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("platform"))
    yield running
    running.stop()


def test_every_service_is_ready_over_http_and_grpc(platform: RunningPlatform) -> None:
    for name in platform.reload()["services"]:
        assert platform.readyz(name) == 200, name

    async def health() -> None:
        for name in GRPC_SERVICES:
            port = platform.service(name)["grpc_port"]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING, name

    asyncio.run(health())


def test_one_rpc_on_each_service(platform: RunningPlatform, tmp_path: Path) -> None:
    media = MediaServer(tmp_path / "media", host=MEDIA_HOST)
    image_url = media.add("face.png", png_with_faces())

    async def calls() -> None:
        def target(name: str) -> str:
            return f"127.0.0.1:{platform.service(name)['grpc_port']}"

        async with grpc.aio.insecure_channel(target("inference")) as ch:
            info = await inference_pb2_grpc.InferenceServiceStub(ch).GetModelInfo(
                inference_pb2.GetModelInfoRequest(), timeout=10
            )
            assert info.pack == "open" and info.embedding_dim == 128
        async with grpc.aio.insecure_channel(target("media-decoder")) as ch:
            probe = await media_decoder_pb2_grpc.MediaDecoderServiceStub(ch).ProbeMedia(
                media_decoder_pb2.ProbeMediaRequest(media_url=image_url, kind=common_pb2.MEDIA_KIND_IMAGE),
                timeout=30,
            )
            assert probe.media_info.width > 0 and probe.media_info.height > 0
        async with grpc.aio.insecure_channel(target("library")) as ch:
            libs = await library_pb2_grpc.LibraryServiceStub(ch).ListLibraries(
                library_pb2.ListLibrariesRequest(account_id="acct_dev", limit=5), timeout=10
            )
            assert list(libs.libraries) == [] or libs.libraries[0].account_id == "acct_dev"
        async with grpc.aio.insecure_channel(target("task-orchestrator")) as ch:
            page = await orchestrator_pb2_grpc.TaskServiceStub(ch).ListTasks(
                orchestrator_pb2.ListTasksRequest(account_id="acct_dev", limit=5), timeout=10
            )
            assert all(t.account_id == "acct_dev" for t in page.tasks)
        async with grpc.aio.insecure_channel(target("webhook-dispatcher")) as ch:
            # The dispatcher knows deliveries only (whether a task exists is the orchestrator's to say).
            listed = await webhook_pb2_grpc.WebhookServiceStub(ch).ListDeliveries(
                webhook_pb2.ListDeliveriesRequest(account_id="acct_dev", task_id="task_missing"), timeout=10
            )
            assert list(listed.deliveries) == []

    try:
        asyncio.run(calls())
    finally:
        media.close()


def test_killed_service_is_restarted_and_becomes_ready_again(platform: RunningPlatform) -> None:
    before = platform.service("media-decoder")
    os.kill(before["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        now = platform.service("media-decoder")
        if now["pid"] != before["pid"] and platform.readyz("media-decoder") == 200:
            break
        time.sleep(0.5)
    else:
        pytest.fail("media-decoder was not restarted and ready within 90 s")
    assert now["restarts"] == before["restarts"] + 1
    assert "media-decoder exited" in platform.log_path.read_text()


def test_sigterm_stops_every_child_process(platform: RunningPlatform) -> None:
    pids = platform.all_pids()
    assert len(pids) >= 9  # six services, PostgreSQL, NATS, object store
    assert platform.stop() == 0
    deadline = time.monotonic() + 10
    while pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pids_alive(pids) == []
