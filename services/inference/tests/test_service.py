"""The gRPC service end to end: real server on port 0, real models, real photos; errors; readiness."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facemint.common.v1 import common_pb2
from facemint.inference.v1 import inference_pb2, inference_pb2_grpc
from facemint_core.lifecycle import ServiceRuntime
from facemint_inference.__main__ import setup
from facemint_inference.engine import Engine
from facemint_inference.packs import CANONICAL_FACE, PACKS
from facemint_inference.pipeline import ATTRIBUTES
from facemint_inference.settings import InferenceSettings
from facemint_local.testmedia import T1, bgr, read

_names = itertools.count()


@dataclass
class Service:
    """A running inference service and a client of it."""

    runtime: ServiceRuntime
    engine: Engine
    channel: grpc.aio.Channel
    stub: inference_pb2_grpc.InferenceServiceStub


async def start(settings: InferenceSettings, wait_ready: bool) -> Service:
    """Start the service as ``main`` would (a unique name keeps its metrics apart from other instances)."""
    runtime = ServiceRuntime(f"inference-test-{next(_names)}", settings)
    engine = await setup(runtime)
    for _ in range(600):
        if engine.ready or not wait_ready:
            break
        await asyncio.sleep(0.05)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{runtime.grpc_port}")
    return Service(runtime, engine, channel, inference_pb2_grpc.InferenceServiceStub(channel))


async def stop(service: Service) -> None:
    """Close the client and shut the service down."""
    await service.channel.close()
    await service.runtime.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def service(runner_kind: str, model_dir: Path) -> AsyncIterator[Service]:
    """The open pack served over gRPC with every model loaded."""
    settings = InferenceSettings(runner=runner_kind, model_dir=model_dir, max_frames_per_request=4)  # type: ignore[arg-type]
    running = await start(settings, wait_ready=True)
    assert running.engine.ready, running.engine.problem
    yield running
    await stop(running)


def encoded_t1(index: int = 0) -> inference_pb2.Frame:
    """t1.jpg as an encoded frame."""
    data = read(T1)
    return inference_pb2.Frame(data=data, format=inference_pb2.PIXEL_FORMAT_ENCODED, index=index, timestamp=index / 2)


def raw_t1(index: int = 0) -> inference_pb2.Frame:
    """t1.jpg as packed BGR24."""
    image = bgr(T1)
    return inference_pb2.Frame(
        data=image.tobytes(),
        format=inference_pb2.PIXEL_FORMAT_BGR24,
        width=image.shape[1],
        height=image.shape[0],
        index=index,
        timestamp=index / 2,
    )


async def test_encoded_and_raw_frames_give_the_same_faces(service: Service) -> None:
    request = inference_pb2.AnalyzeFramesRequest(frames=[encoded_t1(7), raw_t1(8)])
    response = await service.stub.AnalyzeFrames(request)
    assert [(f.index, f.timestamp) for f in response.frames] == [(7, 3.5), (8, 4.0)]
    encoded, raw = response.frames
    assert len(encoded.faces) == len(raw.faces) == 6
    for a, b in zip(encoded.faces, raw.faces, strict=True):
        assert a.bbox.x == pytest.approx(b.bbox.x, abs=1) and a.bbox.width == pytest.approx(b.bbox.width, abs=1)
        assert len(a.keypoints) == 5
        assert not a.HasField("embedding") and not a.attributes.HasField("age")


async def test_only_requested_attributes_are_set(service: Service) -> None:
    options = common_pb2.AnalyzeOptions(attributes=["age", "pose"])
    response = await service.stub.AnalyzeFrames(inference_pb2.AnalyzeFramesRequest(frames=[raw_t1()], options=options))
    for face in response.frames[0].faces:
        attrs = face.attributes
        assert attrs.HasField("age") and attrs.HasField("pose")
        for name in ("gender", "emotion", "glasses", "mask", "quality"):
            assert not attrs.HasField(name), name
        assert len(attrs.landmarks) == 0 and not face.HasField("embedding")


async def test_everything_requested(service: Service) -> None:
    options = common_pb2.AnalyzeOptions(attributes=sorted(ATTRIBUTES), want_embeddings=True)
    response = await service.stub.AnalyzeFrames(inference_pb2.AnalyzeFramesRequest(frames=[raw_t1()], options=options))
    faces = response.frames[0].faces
    assert len(faces) == 6
    for face in faces:
        assert len(face.attributes.landmarks) == 106
        assert face.attributes.emotion in ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful")
        assert 0 <= face.attributes.quality <= 1 and 0 <= face.attributes.age <= 100
        assert face.HasField("attributes") and face.attributes.HasField("mask") and face.attributes.HasField("glasses")
        assert len(face.embedding.values) == 128 and face.embedding.model_id == "sface-2021dec"
        assert face.embedding.raw_norm > 0


async def test_the_largest_face_fallback_reaches_the_pipeline(service: Service) -> None:
    image = bgr(T1)[:400, :400]  # t1.jpg's faces are 60-110 px wide, all below a floor of 200 px
    frame = inference_pb2.Frame(
        data=image.tobytes(), format=inference_pb2.PIXEL_FORMAT_BGR24, width=image.shape[1], height=image.shape[0]
    )
    counts = []
    for fallback in (False, True):
        options = common_pb2.AnalyzeOptions(min_face_size=200, largest_face_fallback=fallback)
        response = await service.stub.AnalyzeFrames(inference_pb2.AnalyzeFramesRequest(frames=[frame], options=options))
        counts.append(len(response.frames[0].faces))
    assert counts == [0, 1]


async def test_stream_answers_each_batch_in_order(service: Service) -> None:
    async def requests() -> AsyncIterator[inference_pb2.AnalyzeFramesRequest]:
        for index in range(3):
            yield inference_pb2.AnalyzeFramesRequest(frames=[encoded_t1(index)])

    responses = [r async for r in service.stub.AnalyzeFrameStream(requests())]
    assert [r.frames[0].index for r in responses] == [0, 1, 2]
    assert all(len(r.frames[0].faces) == 6 for r in responses)


async def test_model_info_describes_the_pack(service: Service) -> None:
    info = await service.stub.GetModelInfo(inference_pb2.GetModelInfoRequest())
    assert (info.pack, info.embedding_model_id, info.embedding_model_version, info.embedding_dim) == (
        "open",
        "sface-2021dec",
        "1",
        128,
    )
    assert info.runner == service.engine.runner.kind
    assert {m.role for m in info.models} == {"detector", "embedding", "landmarks", "age", "gender", "emotion", "mask"}


BAD_REQUESTS: dict[str, tuple[list[inference_pb2.Frame], dict[str, Any], str]] = {
    "empty data": ([inference_pb2.Frame(format=inference_pb2.PIXEL_FORMAT_ENCODED)], {}, "empty data"),
    "undecodable": (
        [inference_pb2.Frame(data=b"not an image", format=inference_pb2.PIXEL_FORMAT_ENCODED)],
        {},
        "cannot decode",
    ),
    "wrong length": (
        [inference_pb2.Frame(data=b"\0" * 100, format=inference_pb2.PIXEL_FORMAT_BGR24, width=10, height=10)],
        {},
        "needs 300 bytes, got 100",
    ),
    "no dimensions": ([inference_pb2.Frame(data=b"\0" * 3, format=inference_pb2.PIXEL_FORMAT_BGR24)], {}, "width"),
    "no format": ([inference_pb2.Frame(data=b"\0" * 3)], {}, "unsupported pixel format"),
    "too large": (
        [inference_pb2.Frame(data=b"\0" * 3, format=inference_pb2.PIXEL_FORMAT_BGR24, width=8000, height=5000)],
        {},
        "exceeds the limit",
    ),
    "unknown attribute": ([], {"attributes": ["age", "beard"]}, "unknown attribute(s) ['beard']"),
    "bad threshold": ([], {"confidence_threshold": 1.5}, "confidence_threshold"),
    "too many frames": ([inference_pb2.Frame()] * 5, {}, "5 frames in one request; the limit is 4"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
async def test_bad_input_is_invalid_argument_naming_the_problem(service: Service, case: str) -> None:
    frames, options, message = BAD_REQUESTS[case]
    request = inference_pb2.AnalyzeFramesRequest(frames=frames, options=common_pb2.AnalyzeOptions(**options))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.stub.AnalyzeFrames(request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (caught.value.details() or "")


async def assert_not_ready(service: Service, reason: str) -> None:
    """Not ready with ``reason`` in /readyz and gRPC health; analysis is UNAVAILABLE; model info still works."""
    report = await service.runtime.readiness.evaluate()
    assert not report.ready
    assert reason in report.checks["models"]
    health = health_pb2_grpc.HealthStub(service.channel)
    answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await service.stub.AnalyzeFrames(inference_pb2.AnalyzeFramesRequest(frames=[encoded_t1()]))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason in (caught.value.details() or "")
    assert (await service.stub.GetModelInfo(inference_pb2.GetModelInfoRequest())).pack == "open"


async def test_missing_model_makes_the_service_not_ready_instead_of_crashing(tmp_path: Path) -> None:
    service = await start(InferenceSettings(model_dir=tmp_path, model_retry_seconds=0.1), wait_ready=False)
    try:
        await asyncio.sleep(0.3)
        await assert_not_ready(service, "is missing (run `make models`)")
    finally:
        await stop(service)


async def test_corrupt_model_makes_the_service_not_ready_and_a_repaired_one_recovers(
    tmp_path: Path, model_dir: Path
) -> None:
    models = tmp_path / "models"
    for spec in PACKS["open"].specs(model_dir):
        link = models / spec.path.relative_to(model_dir)
        link.parent.mkdir(parents=True)
        link.symlink_to(spec.path)
    (models / CANONICAL_FACE).symlink_to(model_dir / CANONICAL_FACE)
    corrupt = models / "sface" / "1" / "model.onnx"
    corrupt.unlink()
    corrupt.write_bytes(b"this is not an ONNX graph")
    service = await start(InferenceSettings(model_dir=models, model_retry_seconds=0.2), wait_ready=False)
    try:
        await asyncio.sleep(1.0)
        await assert_not_ready(service, "sface: cannot load")
        corrupt.unlink()
        corrupt.symlink_to(model_dir / "sface" / "1" / "model.onnx")
        for _ in range(200):
            if service.engine.ready:
                break
            await asyncio.sleep(0.1)
        assert (await service.runtime.readiness.evaluate()).ready
    finally:
        await stop(service)
