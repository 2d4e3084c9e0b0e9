"""Send sampled frames to the inference service in batches and get their faces back, in order.

Frames travel as raw BGR24 (``width * height * 3`` bytes), except a complete JPEG still image, which travels
as its file (the inference service decodes it). A batch holds at most ``frames_per_batch`` frames and
fits in one gRPC message; a single frame too large for a message (an 8K frame is 99.5 MB) travels as a JPEG
(``PIXEL_FORMAT_ENCODED``) instead. Each batch is one unary ``AnalyzeFrames`` call (retried by the channel on
``UNAVAILABLE``); up to ``pipeline_depth`` calls are in flight while the next frames decode, and results are
yielded strictly in frame order.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator

import cv2
import grpc

from facemint.common.v1 import common_pb2
from facemint.inference.v1 import inference_pb2, inference_pb2_grpc
from facemint_core.errors import (
    FacemintError,
    InternalError,
    InvalidMedia,
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
)
from facemint_core.grpcutil import PRIORITY_METADATA
from facemint_media_decoder.decode import DecodedFrame, EncodedFrame
from facemint_media_decoder.metrics import DecoderMetrics

MESSAGE_OVERHEAD_BYTES = 64 * 1024
"""Room left in a gRPC message for everything but pixel bytes (fields, options)."""


def to_wire(frame: DecodedFrame | EncodedFrame, max_frame_bytes: int, jpeg_quality: int) -> inference_pb2.Frame:
    """Build the inference ``Frame`` of a sampled frame: an undecoded image file as it is, else raw BGR24, or a
    JPEG when the pixels exceed ``max_frame_bytes``."""
    if isinstance(frame, EncodedFrame):
        data, pixel_format = frame.data, inference_pb2.PIXEL_FORMAT_ENCODED
        width, height = frame.width, frame.height
    elif frame.image.nbytes <= max_frame_bytes:
        height, width = frame.image.shape[:2]
        data = frame.image.tobytes()
        pixel_format = inference_pb2.PIXEL_FORMAT_BGR24
    else:
        height, width = frame.image.shape[:2]
        ok, encoded = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise InternalError(f"cannot encode a {width}x{height} frame as JPEG")
        data = encoded.tobytes()
        pixel_format = inference_pb2.PIXEL_FORMAT_ENCODED
    return inference_pb2.Frame(
        data=data, format=pixel_format, width=width, height=height, timestamp=frame.timestamp, index=frame.index
    )


class InferenceClient:
    """Batches frames to ``InferenceService.AnalyzeFrames``."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        frames_per_batch: int,
        max_message_bytes: int,
        timeout: float,
        pipeline_depth: int,
        metrics: DecoderMetrics,
    ) -> None:
        """Create a client.

        Args:
            channel: A channel to the inference service.
            frames_per_batch: Frames per call at most.
            max_message_bytes: The gRPC message limit both sides use.
            timeout: Deadline of one call, seconds.
            pipeline_depth: Calls in flight at once.
            metrics: Where call latencies are recorded.
        """
        self._stub = inference_pb2_grpc.InferenceServiceStub(channel)
        self._frames_per_batch = frames_per_batch
        self.max_batch_bytes = max_message_bytes - MESSAGE_OVERHEAD_BYTES
        self._timeout = timeout
        self._depth = pipeline_depth
        self._metrics = metrics

    async def _call(
        self, request: inference_pb2.AnalyzeFramesRequest, metadata: list[tuple[str, str]]
    ) -> inference_pb2.AnalyzeFramesResponse:
        started = time.perf_counter()
        try:
            response: inference_pb2.AnalyzeFramesResponse = await self._stub.AnalyzeFrames(
                request, timeout=self._timeout, metadata=metadata
            )
        except (ServiceUnavailable, RateLimited) as exc:  # down, past its deadline or a message over the limit
            raise ServiceUnavailable(f"the inference service is unavailable: {exc.message}") from None
        except InvalidRequest as exc:  # options are validated upstream: the frame is bad
            raise InvalidMedia(f"the image cannot be decoded: {exc.message}") from None
        except FacemintError as exc:
            raise InternalError(f"the inference service failed: {exc.message}") from None
        finally:
            self._metrics.inference_batch_seconds.observe(time.perf_counter() - started)
        if len(response.frames) != len(request.frames):
            raise InternalError(
                f"the inference service answered {len(response.frames)} results for {len(request.frames)} frames"
            )
        return response

    async def analyze(
        self, frames: AsyncIterator[inference_pb2.Frame], options: common_pb2.AnalyzeOptions, known_total: int = 0
    ) -> AsyncGenerator[tuple[int, float, inference_pb2.FrameFaces], None]:
        """Analyse frames in order. ``known_total``: how many frames the media has, when that is exact (a still
        image: 1); the last batch then leaves with its last frame, without waiting for the iterator to end, and a
        still's frame is marked interactive, to be analysed before the frames of videos and animations.

        Yields:
            ``(index, timestamp, faces)`` for every frame, in the order the frames arrived.
        """
        pending: deque[tuple[list[tuple[int, float]], asyncio.Task[inference_pb2.AnalyzeFramesResponse]]] = deque()
        batch: list[inference_pb2.Frame] = []
        batch_bytes = received = 0
        metadata = [PRIORITY_METADATA] if known_total == 1 else []

        def send() -> None:
            request = inference_pb2.AnalyzeFramesRequest(frames=batch, options=options)
            meta = [(f.index, f.timestamp) for f in batch]
            pending.append((meta, asyncio.create_task(self._call(request, metadata))))

        try:
            async for frame in frames:
                size = len(frame.data)
                if batch and (len(batch) >= self._frames_per_batch or batch_bytes + size > self.max_batch_bytes):
                    send()
                    batch, batch_bytes = [], 0
                    while len(pending) >= self._depth:
                        meta, task = pending.popleft()
                        for (index, timestamp), faces in zip(meta, (await task).frames, strict=True):
                            yield index, timestamp, faces
                batch.append(frame)
                batch_bytes += size
                received += 1
                if received == known_total:
                    send()
                    batch, batch_bytes = [], 0
            if batch:
                send()
                batch = []
            while pending:
                meta, task = pending.popleft()
                for (index, timestamp), faces in zip(meta, (await task).frames, strict=True):
                    yield index, timestamp, faces
        finally:
            tasks = [task for _, task in pending]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
