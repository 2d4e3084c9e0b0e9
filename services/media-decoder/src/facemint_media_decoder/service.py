"""The ``MediaDecoderService`` gRPC API: fetch, probe, decode and sample media, and return faces, never pixels.

``AnalyzeMedia`` streams one ``MediaInfo`` first, then one ``FrameResult`` per sampled frame in index order
(frames below ``resume_from_index`` are skipped without being analysed or sent). ``ProbeMedia`` fetches and probes
only. Errors are :mod:`facemint_core.errors` exceptions; the core gRPC interceptor turns them into a status plus
the public error code in the trailing metadata.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from facemint.common.v1 import common_pb2
from facemint.inference.v1 import inference_pb2
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc
from facemint_core.errors import InvalidMedia, InvalidRequest
from facemint_core.grpcutil import open_channel, start_grpc_server
from facemint_core.lifecycle import ServiceRuntime
from facemint_core.logging import task_id_var
from facemint_core.netsafe import SafeHttpClient
from facemint_core.tracing import set_attributes, span
from facemint_media_decoder.decode import MediaDecoder, Probe
from facemint_media_decoder.fetch import Fetched, fetch_to_spool
from facemint_media_decoder.inference import InferenceClient, to_wire
from facemint_media_decoder.metrics import DecoderMetrics
from facemint_media_decoder.pool import DecodePool
from facemint_media_decoder.sampling import SamplingWindow
from facemint_media_decoder.settings import MediaDecoderSettings
from facemint_media_decoder.sniff import Kind

log = logging.getLogger(__name__)

SERVICE_NAME = media_decoder_pb2.DESCRIPTOR.services_by_name["MediaDecoderService"].full_name
DEFAULT_SAMPLE_RATE = 2
MAX_SAMPLE_RATE = 30

_KINDS = {
    common_pb2.MEDIA_KIND_IMAGE: Kind.IMAGE,
    common_pb2.MEDIA_KIND_VIDEO: Kind.VIDEO,
    common_pb2.MEDIA_KIND_ANIMATED: Kind.ANIMATED,
}


def _kind(value: common_pb2.MediaKind.ValueType) -> Kind:
    kind = _KINDS.get(value)
    if kind is None:
        raise InvalidRequest("kind must be image, video or animated")
    return kind


def _url(value: str) -> str:
    if not value.strip():
        raise InvalidRequest("media_url is required")
    return value.strip()


def sampling_window(request: media_decoder_pb2.AnalyzeMediaRequest) -> SamplingWindow:
    """Validate the request's sampling fields and return the window (defaults: 0 s, end of media, 2 fps)."""
    rate = request.sample_rate or DEFAULT_SAMPLE_RATE
    if not 1 <= rate <= MAX_SAMPLE_RATE:
        raise InvalidRequest(f"sample_rate must be between 1 and {MAX_SAMPLE_RATE}, got {rate}")
    start = request.start_time if request.HasField("start_time") else 0.0
    end = request.end_time if request.HasField("end_time") else None
    if not math.isfinite(start) or start < 0:
        raise InvalidRequest(f"start_time must be a non-negative number of seconds, got {start}")
    if end is not None and (not math.isfinite(end) or end <= start):
        raise InvalidRequest(f"end_time must be greater than start_time ({start}), got {end}")
    return SamplingWindow(start=start, end=end, rate=float(rate))


def media_info(probe: Probe, fetched: Fetched, window: SamplingWindow) -> media_decoder_pb2.MediaInfo:
    """The ``MediaInfo`` message of a probed file (counting expected frames can take a moment: run it off-loop)."""
    return media_decoder_pb2.MediaInfo(
        duration=probe.duration,
        width=probe.width,
        height=probe.height,
        container=probe.container,
        expected_frames=probe.expected_frames(window),
        size_bytes=fetched.size_bytes,
    )


@dataclass(frozen=True)
class _Job:
    fetched: Fetched
    probe: Probe
    info: media_decoder_pb2.MediaInfo


class MediaDecoderServicer(media_decoder_pb2_grpc.MediaDecoderServiceServicer):  # type: ignore[misc]
    """Implements ``facemint.media_decoder.v1.MediaDecoderService``."""

    def __init__(
        self,
        settings: MediaDecoderSettings,
        http: SafeHttpClient,
        pool: DecodePool,
        inference: InferenceClient,
        metrics: DecoderMetrics,
    ) -> None:
        """Wire the servicer to its clients, pool and metrics."""
        self._settings = settings
        self._http = http
        self._pool = pool
        self._inference = inference
        self._metrics = metrics
        self._decoder = MediaDecoder(settings.decode_limits())

    @asynccontextmanager
    async def _job(
        self, url: str, kind: Kind, window: SamplingWindow, context: grpc.aio.ServicerContext | None = None
    ) -> AsyncIterator[_Job]:
        """Admit, fetch and probe one media file (its ``MediaInfo`` for ``window`` computed in the same worker step);
        the spool file is removed when the block ends. With the call's ``context``, the fetch ends
        ``deadline_reserve_seconds`` before the caller's deadline (as ``invalid_media``)."""
        remaining = context.time_remaining() if context is not None else None
        budget = None if remaining is None else remaining - self._settings.fetch.deadline_reserve_seconds
        async with self._pool.job():
            self._metrics.active_jobs.inc()
            try:
                async with fetch_to_spool(
                    self._http,
                    url,
                    kind=kind,
                    max_bytes=self._settings.limits.max_bytes(kind),
                    spool_dir=self._settings.decode.spool_dir,
                    metrics=self._metrics,
                    retry_seconds=self._settings.fetch.retry_seconds,
                    budget_seconds=budget,
                ) as fetched:
                    started = time.perf_counter()

                    def probe_and_describe() -> tuple[Probe, media_decoder_pb2.MediaInfo]:
                        probe = self._decoder.probe(fetched.path, kind)
                        return probe, media_info(probe, fetched, window)

                    try:
                        with span("media.probe", {"facemint.media.kind": kind.value}):
                            probe, info = await self._pool.run(probe_and_describe)
                    except InvalidMedia:
                        self._metrics.invalid_media.labels(kind.value).inc()
                        raise
                    finally:
                        self._metrics.decode_seconds.labels(kind.value, "probe").observe(time.perf_counter() - started)
                    yield _Job(fetched, probe, info)
            finally:
                self._metrics.active_jobs.dec()

    async def ProbeMedia(  # noqa: N802 - gRPC method name
        self, request: media_decoder_pb2.ProbeMediaRequest, context: grpc.aio.ServicerContext
    ) -> media_decoder_pb2.ProbeMediaResponse:
        """Fetch and probe a media URL."""
        kind = _kind(request.kind)
        async with self._job(_url(request.media_url), kind, SamplingWindow(rate=DEFAULT_SAMPLE_RATE)) as job:
            return media_decoder_pb2.ProbeMediaResponse(media_info=job.info)

    async def AnalyzeMedia(  # noqa: N802 - gRPC method name
        self, request: media_decoder_pb2.AnalyzeMediaRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[media_decoder_pb2.AnalyzeMediaResponse]:
        """Fetch, decode, sample and analyse a media URL; stream ``MediaInfo`` and then each frame's faces."""
        if request.task_id:
            task_id_var.set(request.task_id)
        kind = _kind(request.kind)
        url = _url(request.media_url)
        window = sampling_window(request)
        if request.resume_from_index < 0:
            raise InvalidRequest("resume_from_index must not be negative")
        async with self._job(url, kind, window, context) as job:
            info = job.info
            log.info(
                "media probed",
                extra={"container": info.container, "animated": job.probe.sniffed.animated, "width": info.width,
                       "height": info.height, "duration": info.duration, "expected_frames": info.expected_frames},
            )  # fmt: skip
            yield media_decoder_pb2.AnalyzeMediaResponse(media_info=info)
            max_frame_bytes = self._inference.max_batch_bytes
            quality = self._settings.inference.jpeg_quality

            def wire_frames() -> Iterator[inference_pb2.Frame]:
                sampled = self._decoder.frames(
                    job.fetched.path, job.probe, window, request.resume_from_index, encoded_up_to=max_frame_bytes
                )
                for frame in sampled:
                    yield to_wire(frame, max_frame_bytes, quality)

            frames = self._pool.iterate(wire_frames, self._settings.decode.read_ahead_frames)
            known_total = 1 if kind is Kind.IMAGE else 0  # a still has exactly one frame
            # One span for decoding and analysing the frames: they overlap (decode ahead, inference calls in flight).
            decoded = 0
            options = common_pb2.AnalyzeOptions()
            options.CopyFrom(request.options)
            options.single_pass = kind is not Kind.IMAGE  # the second pass is for a photo that should hold a face
            analyses = self._inference.analyze(frames, options, known_total)
            try:
                with span("media.decode", {"facemint.media.kind": kind.value}) as current:
                    async with frames, aclosing(analyses) as results:
                        async for index, timestamp, faces in results:
                            decoded += 1
                            self._metrics.frames_decoded.labels(kind.value).inc()
                            yield media_decoder_pb2.AnalyzeMediaResponse(
                                frame=media_decoder_pb2.FrameResult(index=index, timestamp=timestamp, faces=faces.faces)
                            )
                    set_attributes(current, {"facemint.media.frames": decoded})
            except InvalidMedia:
                self._metrics.invalid_media.labels(kind.value).inc()
                raise
            finally:
                self._metrics.decode_seconds.labels(kind.value, "frames").observe(frames.busy_seconds)


class MediaDecoderApp:
    """The service's long-lived parts: HTTP client, decode pool, inference channel and the servicer."""

    def __init__(self, settings: MediaDecoderSettings, metrics: DecoderMetrics) -> None:
        """Create every part (no I/O happens until a request arrives)."""
        settings.decode.spool_dir.mkdir(parents=True, exist_ok=True)
        self.channel = open_channel(settings.inference.target, settings.inference.max_message_bytes)
        self.http = SafeHttpClient(settings.fetch.policy())
        self.pool = DecodePool(settings.decode.workers, settings.decode.max_concurrent_jobs)
        inference = InferenceClient(
            self.channel,
            frames_per_batch=settings.inference.frames_per_batch,
            max_message_bytes=settings.inference.max_message_bytes,
            timeout=settings.inference.timeout_seconds,
            pipeline_depth=settings.inference.pipeline_depth,
            metrics=metrics,
        )
        self.servicer = MediaDecoderServicer(settings, self.http, self.pool, inference, metrics)

    def register(self, server: grpc.aio.Server) -> None:
        """Add the servicer to a gRPC server."""
        media_decoder_pb2_grpc.add_MediaDecoderServiceServicer_to_server(self.servicer, server)

    async def check_inference(self) -> None:
        """Readiness: the inference service answers gRPC health with SERVING."""
        response = await health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=2.0)
        if response.status != health_pb2.HealthCheckResponse.SERVING:
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
            raise RuntimeError(f"inference health is {status}")

    async def close(self, _grace: float = 0.0) -> None:
        """Stop the pool and close the HTTP client and the inference channel."""
        self.pool.shutdown()
        await self.http.aclose()
        await self.channel.close()


async def setup(runtime: ServiceRuntime, settings: MediaDecoderSettings) -> None:
    """Start the media-decoder: readiness on inference health, the gRPC server, and its stop hooks."""
    app = MediaDecoderApp(settings, DecoderMetrics())
    runtime.readiness.add("inference", app.check_inference)
    runtime.on_stop("media-decoder", app.close)  # registered first, so it runs after the gRPC server has drained
    await start_grpc_server(runtime, app.register, [SERVICE_NAME])
