"""The gRPC ``facemint.inference.v1.InferenceService``: AnalyzeFrames, AnalyzeFrameStream and GetModelInfo.

Errors are raised as ``facemint_core.errors`` exceptions; the shared interceptor maps them to status codes
(bad frames and options: INVALID_ARGUMENT; models not loaded: UNAVAILABLE).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np

from facemint.common.v1 import common_pb2
from facemint.inference.v1 import inference_pb2, inference_pb2_grpc
from facemint_core.errors import InvalidRequest
from facemint_core.grpcutil import PRIORITY_METADATA
from facemint_inference.engine import Engine
from facemint_inference.frames import decode_frames
from facemint_inference.pipeline import AnalyzeOptions, Face
from facemint_inference.priority import PriorityExecutor
from facemint_inference.settings import InferenceSettings

SERVICE_NAME = inference_pb2.DESCRIPTOR.services_by_name["InferenceService"].full_name


def options_from_proto(options: common_pb2.AnalyzeOptions) -> AnalyzeOptions:
    """Validate request options (raises InvalidRequest on unknown attributes or out-of-range values)."""
    return AnalyzeOptions.create(
        min_face_size=options.min_face_size,
        confidence_threshold=options.confidence_threshold if options.HasField("confidence_threshold") else None,
        attributes=list(options.attributes),
        want_embeddings=options.want_embeddings,
        single_pass=options.single_pass,
        largest_face_fallback=options.largest_face_fallback,
    )


def _add_points(field: Any, points: Any) -> None:
    """Append (x, y) rows to a repeated ``Point`` field (``add`` on plain floats: ~5x faster than building
    ``Point`` messages from numpy scalars, which matters for 106 landmarks per face)."""
    add = field.add
    for x, y in np.asarray(points, dtype=np.float64).tolist():
        add(x=x, y=y)


def face_to_proto(face: Face) -> common_pb2.Face:
    """Render one analysed face; only the computed outputs are set."""
    det = face.detection
    x1, y1, x2, y2 = (float(v) for v in det.box)
    message = common_pb2.Face(
        bbox=common_pb2.BBox(x=x1, y=y1, width=x2 - x1, height=y2 - y1),
        confidence=det.score,
    )
    _add_points(message.keypoints, det.keypoints)
    attrs = message.attributes
    if face.age is not None:
        attrs.age = face.age
    if face.gender is not None:
        attrs.gender = face.gender
    if face.emotion is not None:
        attrs.emotion = face.emotion
    if face.pose is not None:
        attrs.pose.CopyFrom(common_pb2.Pose(yaw=face.pose.yaw, pitch=face.pose.pitch, roll=face.pose.roll))
    if face.glasses is not None:
        attrs.glasses = face.glasses
    if face.mask is not None:
        attrs.mask = face.mask
    if face.quality is not None:
        attrs.quality = face.quality
    if face.landmarks is not None:
        _add_points(attrs.landmarks, face.landmarks)
    if face.embedding is not None:
        message.embedding.CopyFrom(
            common_pb2.Embedding(
                values=face.embedding.values.tolist(),
                model_id=face.embedding.model_id,
                model_version=face.embedding.model_version,
                raw_norm=face.embedding.raw_norm,
            )
        )
    return message


class InferenceServicer(inference_pb2_grpc.InferenceServiceServicer):  # type: ignore[misc]
    """Analyses frames with the engine's pipeline."""

    def __init__(self, engine: Engine, settings: InferenceSettings, executor: PriorityExecutor) -> None:
        """Serve ``engine``; frames are decoded in ``executor``, which also runs interactive calls first."""
        self._engine = engine
        self._settings = settings
        self._executor = executor

    async def _analyze(
        self, request: inference_pb2.AnalyzeFramesRequest, interactive: bool = False
    ) -> inference_pb2.AnalyzeFramesResponse:
        frames = list(request.frames)
        if len(frames) > self._settings.max_frames_per_request:
            raise InvalidRequest(
                f"{len(frames)} frames in one request; the limit is {self._settings.max_frames_per_request}"
            )
        options = options_from_proto(request.options)
        pipeline = self._engine.pipeline
        images = await asyncio.get_running_loop().run_in_executor(
            self._executor, decode_frames, frames, self._settings.max_frame_pixels
        )
        if interactive:
            results = await pipeline.analyze(images, options)
        else:  # frame by frame: an interactive call waits for one frame's model call at most, not a batch's
            results = [faces for image in images for faces in await pipeline.analyze([image], options)]
        return inference_pb2.AnalyzeFramesResponse(
            frames=[
                inference_pb2.FrameFaces(
                    index=frame.index, timestamp=frame.timestamp, faces=[face_to_proto(face) for face in faces]
                )
                for frame, faces in zip(frames, results, strict=True)
            ]
        )

    async def AnalyzeFrames(  # noqa: N802 - gRPC method name
        self, request: inference_pb2.AnalyzeFramesRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.AnalyzeFramesResponse:
        """Analyse a batch of frames (before background work when the caller marks it interactive)."""
        if any((key, value) == PRIORITY_METADATA for key, value in context.invocation_metadata() or ()):
            with self._executor.interactive():
                return await self._analyze(request, interactive=True)
        return await self._analyze(request)

    async def AnalyzeFrameStream(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[inference_pb2.AnalyzeFramesRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inference_pb2.AnalyzeFramesResponse]:
        """Analyse a stream of batches; one response per request, in order."""
        async for request in request_iterator:
            yield await self._analyze(request)

    async def GetModelInfo(  # noqa: N802 - gRPC method name
        self, request: inference_pb2.GetModelInfoRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.GetModelInfoResponse:
        """Describe the configured pack (whether or not its models are loaded yet)."""
        pack = self._engine.pack
        embedder = pack.embedder
        return inference_pb2.GetModelInfoResponse(
            pack=pack.name,
            runner=self._engine.runner.kind,
            embedding_model_id=embedder.model_id,
            embedding_model_version=embedder.model_version,
            embedding_dim=embedder.dim,
            models=[
                inference_pb2.ModelInfo(name=m.name, role=m.role, version=m.version, license=m.license)
                for m in pack.models
            ],
        )
