"""The MediaDecoderService gRPC API end to end: a real gRPC server, a local media server and an inference double.

The inference side is :class:`decoder_testkit.RecordingInferenceDouble`, a recording peer of the inference API, so
that the tests can assert what crosses the wire; the decoder with the real inference service is tested in tests/e2e.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from decoder_testkit import (
    MediaServer,
    RecordingInferenceDouble,
    Route,
    VideoSpec,
    animation,
    halves,
    level,
    save_image,
    video,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry

from facemint.common.v1 import common_pb2
from facemint.inference.v1 import inference_pb2, inference_pb2_grpc
from facemint.media_decoder.v1 import media_decoder_pb2 as pb
from facemint.media_decoder.v1 import media_decoder_pb2_grpc
from facemint_core.errors import ERROR_CODE_METADATA_KEY
from facemint_core.grpcutil import ServerInterceptor
from facemint_core.metrics import RpcMetrics
from facemint_local import testmedia
from facemint_media_decoder.metrics import DecoderMetrics
from facemint_media_decoder.service import MediaDecoderApp
from facemint_media_decoder.settings import (
    DecodeSettings,
    FetchSettings,
    InferenceSettings,
    LimitSettings,
    MediaDecoderSettings,
)

RPC_METRICS = RpcMetrics("media-decoder-test")  # registered once per process, shared by every test server


@dataclass
class Inference:
    """The inference double, its health servicer and its address."""

    double: RecordingInferenceDouble
    health: health.aio.HealthServicer
    target: str


@pytest.fixture
async def inference() -> AsyncIterator[Inference]:
    """A gRPC server on 127.0.0.1 with the RecordingInferenceDouble and grpc.health.v1 (SERVING)."""
    limit = 64 * 1024 * 1024
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)]
    )
    double = RecordingInferenceDouble()
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(double, server)
    health_servicer = health.aio.HealthServicer()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield Inference(double, health_servicer, f"127.0.0.1:{port}")
    await server.stop(None)


def make_settings(target: str, spool: Path, **groups: object) -> MediaDecoderSettings:
    """Settings for a test: 127.0.0.1 allowed, short timeouts, two frames per batch, a private spool dir."""
    values: dict[str, object] = {
        "inference": InferenceSettings(target=target, frames_per_batch=2, timeout_seconds=10),
        "fetch": FetchSettings(allow_cidrs=["127.0.0.1/32"], read_timeout_seconds=2, total_timeout_seconds=10),
        "decode": DecodeSettings(spool_dir=spool),
    }
    values.update(groups)
    return MediaDecoderSettings.model_validate(values)


@dataclass
class Decoder:
    """A running media-decoder gRPC server, a stub to call it, and its parts."""

    stub: media_decoder_pb2_grpc.MediaDecoderServiceStub
    app: MediaDecoderApp
    metrics: DecoderMetrics
    spool: Path


StartDecoder = Callable[..., Awaitable[Decoder]]


@pytest.fixture
async def start_decoder(inference: Inference, tmp_path: Path) -> AsyncIterator[StartDecoder]:
    """Start media-decoder servers (with the core interceptor, as start_grpc_server does); stop them afterwards."""
    running: list[tuple[grpc.aio.Server, grpc.aio.Channel, MediaDecoderApp]] = []

    async def start(**groups: object) -> Decoder:
        settings = make_settings(inference.target, tmp_path / "spool", **groups)
        metrics = DecoderMetrics(CollectorRegistry())
        app = MediaDecoderApp(settings, metrics)
        server = grpc.aio.server(interceptors=[ServerInterceptor(RPC_METRICS)])
        app.register(server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        running.append((server, channel, app))
        return Decoder(media_decoder_pb2_grpc.MediaDecoderServiceStub(channel), app, metrics, settings.decode.spool_dir)

    yield start
    for server, channel, app in running:
        await channel.close()
        await server.stop(None)
        await app.close()


@pytest.fixture
async def decoder_service(start_decoder: StartDecoder) -> Decoder:
    """A media-decoder with the test settings."""
    return await start_decoder()


async def analyze(decoder: Decoder, **fields: object) -> tuple[pb.MediaInfo, list[pb.FrameResult]]:
    """Call AnalyzeMedia and split the stream into its MediaInfo and its frames."""
    call = decoder.stub.AnalyzeMedia(pb.AnalyzeMediaRequest(**fields), metadata=[("x-request-id", "req_test")])
    items = [item async for item in call]
    assert items[0].WhichOneof("item") == "media_info"
    assert all(item.WhichOneof("item") == "frame" for item in items[1:])
    return items[0].media_info, [item.frame for item in items[1:]]


def error_code(error: grpc.aio.AioRpcError) -> str:
    """The public error code in an RPC error's trailing metadata."""
    return next(str(v) for k, v in error.trailing_metadata() or () if k == ERROR_CODE_METADATA_KEY)


async def test_analyze_video_streams_media_info_then_each_sampled_frame_in_order(
    decoder_service: Decoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    clip = video(tmp_path / "clip.mp4", VideoSpec())  # 60 frames, 30 fps, 160x96
    url = media_server.serve("/clip.mp4?X-Amz-Signature=abc", clip)
    info, frames = await analyze(
        decoder_service, task_id="task_1", media_url=url, kind=common_pb2.MEDIA_KIND_VIDEO,
        start_time=0.5, end_time=1.6, sample_rate=4,
    )  # fmt: skip
    assert (info.width, info.height, info.container, info.expected_frames) == (160, 96, "mp4", 5)
    assert info.duration == pytest.approx(2.0) and info.size_bytes == clip.stat().st_size
    sources = [15, 23, 30, 38, 45]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.timestamp for f in frames] == pytest.approx([i / 30 for i in sources])
    assert [len(f.faces) for f in frames] == [1] * 5
    assert [int(f.faces[0].bbox.x) for f in frames] == [0, 1, 2, 3, 4]
    received = inference.double.frames
    assert sorted(len(b) for b in inference.double.batches) == [1, 2, 2]
    assert {(r.width, r.height, r.pixel_format) for r in received} == {(160, 96, inference_pb2.PIXEL_FORMAT_BGR24)}
    assert [r.timestamp for r in received] == [f.timestamp for f in frames]
    assert [r.gray for r in received] == [level(i) for i in sources]  # the pixels of the right source frames
    assert all(
        md.get("x-task-id") == "task_1" and md.get("x-request-id") == "req_test" for md in inference.double.metadata
    )
    assert all("x-priority" not in md for md in inference.double.metadata)  # a video's frames are background work
    assert all(o.single_pass for o in inference.double.options)  # no second detection pass on a video's frames
    assert list(decoder_service.spool.iterdir()) == []


async def test_resume_from_index_sends_nothing_for_earlier_frames(
    decoder_service: Decoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    url = media_server.serve("/clip.webm", video(tmp_path / "clip.webm", VideoSpec(codec="libvpx-vp9")))
    info, frames = await analyze(
        decoder_service, media_url=url, kind=common_pb2.MEDIA_KIND_VIDEO, sample_rate=2, resume_from_index=2
    )
    assert info.expected_frames == 4
    assert [(f.index, f.timestamp) for f in frames] == [(2, 1.0), (3, 1.5)]
    assert [r.index for r in inference.double.frames] == [2, 3]


async def test_analyze_image_returns_one_frame(
    decoder_service: Decoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    url = media_server.serve("/photo", save_image(tmp_path / "p.heic", halves(64, 32), "HEIF", orientation=6))
    info, frames = await analyze(decoder_service, media_url=url, kind=common_pb2.MEDIA_KIND_IMAGE)
    assert (info.width, info.height, info.container, info.expected_frames, info.duration) == (32, 64, "heic", 1, 0)
    assert [(f.index, f.timestamp, len(f.faces)) for f in frames] == [(0, 0.0, 1)]
    [received] = inference.double.frames
    assert (received.width, received.height) == (32, 64)
    assert [md.get("x-priority") for md in inference.double.metadata] == ["interactive"]  # ahead of videos' frames
    assert [o.single_pass for o in inference.double.options] == [False]  # a photo gets the second pass


async def test_analyze_real_photo(decoder_service: Decoder, inference: Inference, media_server: MediaServer) -> None:
    url = media_server.serve("/players.jpg", testmedia.path(testmedia.PLAYERS))
    info, frames = await analyze(decoder_service, media_url=url, kind=common_pb2.MEDIA_KIND_IMAGE)
    assert info.container == "jpeg" and len(frames) == 1
    [received] = inference.double.frames
    assert (received.width, received.height) == (info.width, info.height)


async def test_analyze_gif_uses_frame_delays(
    decoder_service: Decoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    url = media_server.serve("/a.gif", animation(tmp_path / "a.gif", "GIF", [100, 250, 40, 500, 70]))
    info, frames = await analyze(decoder_service, media_url=url, kind=common_pb2.MEDIA_KIND_ANIMATED, sample_rate=10)
    assert (info.container, info.expected_frames) == ("gif", 4)
    assert info.duration == pytest.approx(0.96)
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.1, 0.35, 0.89])
    assert [r.gray for r in inference.double.frames] == [level(0), level(1), level(2), level(4)]


async def test_frame_too_large_for_one_message_travels_as_jpeg(
    start_decoder: StartDecoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    decoder = await start_decoder(inference=InferenceSettings(target=inference.target, max_message_bytes=1024 * 1024))
    url = media_server.serve("/big.png", save_image(tmp_path / "big.png", halves(1024, 512), "PNG"))
    _, frames = await analyze(decoder, media_url=url, kind=common_pb2.MEDIA_KIND_IMAGE)
    assert len(frames) == 1
    [received] = inference.double.frames
    assert (received.pixel_format, received.width, received.height) == (inference_pb2.PIXEL_FORMAT_ENCODED, 1024, 512)


async def test_probe_media_fetches_and_probes_only(
    decoder_service: Decoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    url = media_server.serve("/clip.mkv", video(tmp_path / "clip.mkv", VideoSpec(frames=90)))
    response = await decoder_service.stub.ProbeMedia(
        pb.ProbeMediaRequest(media_url=url, kind=common_pb2.MEDIA_KIND_VIDEO)
    )
    info = response.media_info
    assert (info.width, info.height, info.container, info.expected_frames) == (160, 96, "mkv", 6)
    assert info.duration == pytest.approx(3.0)
    assert inference.double.frames == []


async def test_text_served_as_mp4_is_invalid_media(decoder_service: Decoder, media_server: MediaServer) -> None:
    url = media_server.serve("/clip.mp4", b"<html>404 not found</html>" * 10)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await analyze(decoder_service, media_url=url, kind=common_pb2.MEDIA_KIND_VIDEO)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(info.value) == "invalid_media"
    assert "not a supported image, animated or video format" in (info.value.details() or "")
    assert (
        decoder_service.metrics.registry.get_sample_value(
            "facemint_media_decoder_invalid_media_total", {"kind": "video"}
        )
        == 1
    )


async def test_image_over_the_byte_cap_is_payload_too_large(
    start_decoder: StartDecoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    decoder = await start_decoder(limits=LimitSettings(image_max_bytes=1000))
    url = media_server.serve("/big.bmp", save_image(tmp_path / "big.bmp", halves(64, 64), "BMP"))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await decoder.stub.ProbeMedia(pb.ProbeMediaRequest(media_url=url, kind=common_pb2.MEDIA_KIND_IMAGE))
    assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert error_code(info.value) == "payload_too_large"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": common_pb2.MEDIA_KIND_VIDEO}, "media_url is required"),
        ({"media_url": "http://127.0.0.1/a"}, "kind must be"),
        (
            {"media_url": "http://127.0.0.1/a", "kind": common_pb2.MEDIA_KIND_VIDEO, "sample_rate": 31},
            "between 1 and 30",
        ),
        ({"media_url": "http://127.0.0.1/a", "kind": common_pb2.MEDIA_KIND_VIDEO, "start_time": -1}, "non-negative"),
        (
            {"media_url": "http://127.0.0.1/a", "kind": common_pb2.MEDIA_KIND_VIDEO, "start_time": 3, "end_time": 2},
            "greater",
        ),
        ({"media_url": "ftp://127.0.0.1/a", "kind": common_pb2.MEDIA_KIND_VIDEO}, "scheme 'ftp' is not allowed"),
    ],
)
async def test_malformed_requests_are_invalid_request(
    decoder_service: Decoder, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await analyze(decoder_service, **fields)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(info.value) == "invalid_request"
    assert message in (info.value.details() or "")


async def test_inference_failure_fails_the_request_as_internal_error(
    decoder_service: Decoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    inference.double.fail_with = grpc.StatusCode.INTERNAL
    url = media_server.serve("/clip.mp4", video(tmp_path / "clip.mp4", VideoSpec()))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await analyze(decoder_service, media_url=url, kind=common_pb2.MEDIA_KIND_VIDEO)
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert error_code(info.value) == "internal_error"
    assert list(decoder_service.spool.iterdir()) == []


async def test_readiness_follows_inference_health(decoder_service: Decoder, inference: Inference) -> None:
    await decoder_service.app.check_inference()
    await inference.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    with pytest.raises(RuntimeError, match="NOT_SERVING"):
        await decoder_service.app.check_inference()


async def test_concurrent_requests_are_all_served(
    start_decoder: StartDecoder, inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    decoder = await start_decoder(decode=DecodeSettings(spool_dir=tmp_path / "spool", workers=1, max_concurrent_jobs=2))
    url = media_server.serve("/clip.mp4", video(tmp_path / "clip.mp4", VideoSpec()))
    results = await asyncio.gather(
        *(analyze(decoder, media_url=url, kind=common_pb2.MEDIA_KIND_VIDEO, sample_rate=5) for _ in range(5))
    )
    assert [len(frames) for _, frames in results] == [10] * 5


async def _read_started(stream: asyncio.StreamReader) -> dict[str, object]:
    while True:
        line = await stream.readline()
        if not line:
            raise AssertionError("the service exited before it started")
        record = json.loads(line)
        if record.get("message") == "started":
            return dict(record)


async def test_service_process_starts_serves_and_stops_on_sigterm(
    inference: Inference, media_server: MediaServer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "FACEMINT_MEDIA_DECODER_INFERENCE__TARGET": inference.target,
        "FACEMINT_MEDIA_DECODER_FETCH__ALLOW_CIDRS": '["127.0.0.1/32"]',
        "FACEMINT_MEDIA_DECODER_DECODE__SPOOL_DIR": str(tmp_path / "spool"),
        "FACEMINT_MEDIA_DECODER_SHUTDOWN_GRACE_SECONDS": "3",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "facemint_media_decoder", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        started = await asyncio.wait_for(_read_started(process.stdout), 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{started['http_port']}") as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            url = media_server.serve("/a.png", save_image(tmp_path / "a.png", halves(64, 32), "PNG"))
            async with grpc.aio.insecure_channel(f"127.0.0.1:{started['grpc_port']}") as channel:
                stub = media_decoder_pb2_grpc.MediaDecoderServiceStub(channel)
                items = [
                    i
                    async for i in stub.AnalyzeMedia(
                        pb.AnalyzeMediaRequest(media_url=url, kind=common_pb2.MEDIA_KIND_IMAGE)
                    )
                ]
            assert [i.WhichOneof("item") for i in items] == ["media_info", "frame"]
            exposition = (await client.get("/metrics")).text
            assert 'facemint_media_decoder_frames_decoded_total{kind="image"} 1.0' in exposition
            assert 'facemint_media_decoder_fetched_bytes_total{kind="image"}' in exposition
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_missing_inference_target_stops_start_up_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_MEDIA_DECODER_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "facemint_media_decoder", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"FACEMINT_MEDIA_DECODER_INFERENCE__TARGET: Field required" in stderr


async def test_client_cancelling_mid_stream_releases_the_job(
    decoder_service: Decoder, media_server: MediaServer, tmp_path: Path
) -> None:
    url = media_server.serve("/clip.mp4", video(tmp_path / "clip.mp4", VideoSpec(frames=120)))
    call = decoder_service.stub.AnalyzeMedia(
        pb.AnalyzeMediaRequest(media_url=url, kind=common_pb2.MEDIA_KIND_VIDEO, sample_rate=30)
    )
    stream = call.__aiter__()
    assert (await anext(stream)).WhichOneof("item") == "media_info"
    assert (await anext(stream)).WhichOneof("item") == "frame"
    call.cancel()
    registry = decoder_service.metrics.registry
    for _ in range(100):
        if registry.get_sample_value("facemint_media_decoder_active_jobs") == 0 and not any(
            decoder_service.spool.iterdir()
        ):
            break
        await asyncio.sleep(0.05)
    assert registry.get_sample_value("facemint_media_decoder_active_jobs") == 0
    assert list(decoder_service.spool.iterdir()) == []


def test_settings_come_from_the_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEMINT_MEDIA_DECODER_INFERENCE__TARGET", "inference:50051")
    monkeypatch.setenv("FACEMINT_MEDIA_DECODER_FETCH__ALLOW_CIDRS", '["127.0.0.1/32", "10.0.0.0/8"]')
    monkeypatch.setenv("FACEMINT_MEDIA_DECODER_FETCH__HTTPS_ONLY", "true")
    monkeypatch.setenv("FACEMINT_MEDIA_DECODER_DECODE__WORKERS", "3")
    settings = MediaDecoderSettings()  # type: ignore[call-arg]
    assert settings.inference.target == "inference:50051"
    assert settings.inference.frames_per_batch == 4
    assert settings.decode.workers == 3
    policy = settings.fetch.policy()
    assert [str(n) for n in policy.allow] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert (policy.https_only, policy.max_redirects) == (True, 5)
    limits = settings.limits
    assert (limits.video_max_bytes, limits.image_max_bytes, limits.animated_max_bytes) == (2 << 30, 50 << 20, 200 << 20)
    assert (limits.max_side, limits.max_pixels, limits.animated_max_side) == (7680, 7680 * 4320, 4096)


async def test_a_host_slower_than_the_callers_deadline_is_invalid_media_not_a_deadline(
    start_decoder: StartDecoder, media_server: MediaServer
) -> None:
    decoder = await start_decoder(
        fetch=FetchSettings(
            allow_cidrs=["127.0.0.1/32"], read_timeout_seconds=30, total_timeout_seconds=60, deadline_reserve_seconds=1
        )
    )
    url = media_server.serve("/slow.jpg", Route(hang=True))
    call = decoder.stub.AnalyzeMedia(pb.AnalyzeMediaRequest(media_url=url, kind=common_pb2.MEDIA_KIND_IMAGE), timeout=3)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        [item async for item in call]
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
    assert error_code(info.value) == "invalid_media"
    assert "did not deliver it within the" in (info.value.details() or "")
