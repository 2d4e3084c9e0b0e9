"""The job runner: runs one detection task from start to a terminal state.

A job is a TaskJob on the work-queue stream. The runner waits for a fair slot, moves the task to ``running``,
streams the media through the media-decoder (which calls inference), searches identities, assembles the result and
stores it. Failures of the media or of the request (invalid media, too large, no faces) end the task as ``failed`` at
once; transient failures are retried with backoff until ``max_attempts``, then the task fails with
``internal_error``. Every terminal transition goes through :meth:`TaskEvents.finish`, which publishes its event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from nats.aio.msg import Msg
from prometheus_client import Counter, Gauge, Histogram

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2, library_pb2_grpc
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.errors import (
    FacemintError,
    Forbidden,
    InvalidMedia,
    InvalidRequest,
    NoFacesDetected,
    NotFound,
    PayloadTooLarge,
)
from facemint_core.jetstream import Retry, backoff_delay
from facemint_core.logging import task_id_var
from facemint_core.metrics import LATENCY_BUCKETS
from facemint_core.vocab import MEDIA_KIND_NAMES
from facemint_task_orchestrator.assemble import Tracker, analysed_seconds, build_result
from facemint_task_orchestrator.cancellation import Cancellation, UserCancelled
from facemint_task_orchestrator.estimates import Estimator
from facemint_task_orchestrator.events import TaskEvents
from facemint_task_orchestrator.scheduling import FairScheduler
from facemint_task_orchestrator.settings import TrackingSettings, WorkerSettings
from facemint_task_orchestrator.store import TaskRow, TaskStore

log = logging.getLogger(__name__)

TASK_SECONDS = Histogram(
    "facemint_task_orchestrator_task_seconds",
    "Run time of tasks that ended while running, from their start, by outcome (succeeded, failed, cancelled)",
    ["type", "outcome"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_SECONDS = Histogram(
    "facemint_task_orchestrator_queue_seconds",
    "Time from a task's creation to its first start",
    ["type"],
    buckets=LATENCY_BUCKETS,
)
FRAMES = Counter("facemint_task_orchestrator_frames_total", "Sampled frames analysed")
RETRIES = Counter("facemint_task_orchestrator_retries_total", "Transient failures retried")
WAITING = Gauge("facemint_task_orchestrator_waiting_jobs", "Fetched jobs waiting for a worker slot (fair scheduling)")

PERMANENT = (InvalidMedia, PayloadTooLarge, NoFacesDetected, InvalidRequest, Forbidden, NotFound)


class JobRunner:
    """Runs detection jobs (the PullWorkers' handler)."""

    def __init__(
        self,
        settings: WorkerSettings,
        tracking: TrackingSettings,
        store: TaskStore,
        events: TaskEvents,
        cancellation: Cancellation,
        estimator: Estimator,
        decoder: media_decoder_pb2_grpc.MediaDecoderServiceStub,
        library: library_pb2_grpc.LibraryServiceStub,
    ) -> None:
        self.settings = settings
        self.tracking = tracking
        self.store = store
        self.events = events
        self.cancellation = cancellation
        self.estimator = estimator
        self.decoder = decoder
        self.library = library
        self.scheduler = FairScheduler(settings.concurrency, settings.image_concurrency)
        WAITING.set_function(lambda: self.scheduler.waiting)
        self._closing: set[asyncio.Task[None]] = set()

    async def handle(self, msg: Msg) -> None:
        """Handle one job message (the PullWorker acks when this returns): wait for a fair slot, run the task."""
        job = orchestrator_pb2.TaskJob.FromString(msg.data)
        task_id_var.set(job.task_id)
        queued = await self.store.get(job.task_id)
        if queued is None:
            log.warning("job for an unknown task dropped")
            return
        if queued.terminal:  # a redelivery, or cancelled while queued: no slot needed
            return
        async with self.scheduler.slot(queued.account_id, image=queued.kind == common_pb2.MEDIA_KIND_IMAGE):
            await self._run(job)

    async def _run(self, job: orchestrator_pb2.TaskJob) -> None:
        row = await self.store.start(job.task_id)
        if row is None:  # terminal meanwhile (a cancellation while the job waited for its slot)
            return
        attempt = row.attempts
        task_type = MEDIA_KIND_NAMES[row.kind]
        log.info("task started", extra={"attempt": attempt, "type": task_type})
        if attempt == 1 and row.started_at is not None:
            QUEUE_SECONDS.labels(task_type).observe((row.started_at - row.created_at).total_seconds())
        started = time.monotonic()

        def ran(outcome: str) -> None:
            TASK_SECONDS.labels(task_type, outcome).observe(time.monotonic() - started)

        analysis = asyncio.create_task(self._analyse(row))
        try:
            with self.cancellation.running(job.task_id, analysis):
                try:
                    result, frames, analysed = await asyncio.wait_for(analysis, self.settings.task_timeout_seconds)
                except asyncio.CancelledError:
                    if self.cancellation.stopped_here(job.task_id):
                        ran("cancelled")
                        log.info("task cancelled while running")
                        return
                    raise
        except UserCancelled:
            ran("cancelled")
            return
        except TimeoutError:
            ran("failed")
            limit = self.settings.task_timeout_seconds
            await self.events.finish(
                await self.store.fail(job.task_id, "internal_error", f"task exceeded its {limit:.0f} s limit")
            )
            return
        except PERMANENT as exc:
            ran("failed")
            await self.events.finish(await self.store.fail(job.task_id, exc.code, exc.message))
            return
        except Exception as exc:
            reason = exc.message if isinstance(exc, FacemintError) else f"{type(exc).__name__}: {exc}"
            if attempt >= self.settings.max_attempts:
                ran("failed")
                message = f"gave up after {attempt} attempts: {reason}"
                await self.events.finish(await self.store.fail(job.task_id, "internal_error", message))
                return
            RETRIES.inc()
            log.warning("transient failure, retrying", extra={"attempt": attempt, "reason": reason})
            raise Retry(reason, backoff_delay(attempt, self.settings.backoff_base_seconds)) from None
        elapsed = time.monotonic() - started
        self.estimator.observe(elapsed, frames)
        TASK_SECONDS.labels(task_type, "succeeded").observe(elapsed)
        await self.events.finish(await self.store.succeed(job.task_id, result, frames, analysed))
        log.info("task succeeded", extra={"seconds": round(elapsed, 3), "frames": frames})

    async def on_poison(self, msg: Msg, reason: str) -> None:
        """The job could not be handled even after redeliveries: fail its task with a clear error."""
        job = orchestrator_pb2.TaskJob.FromString(msg.data)
        await self.events.finish(
            await self.store.fail(job.task_id, "internal_error", f"task could not be processed: {reason}")
        )

    async def _analyse(self, row: TaskRow) -> tuple[dict[str, Any], int, float]:
        """Analyse a task's media: its result, the number of sampled frames and the span they cover (billed)."""
        spec = row.spec
        task_id = row.task_id
        image = spec.kind == common_pb2.MEDIA_KIND_IMAGE
        request = media_decoder_pb2.AnalyzeMediaRequest(
            task_id=task_id,
            media_url=spec.media_url,
            kind=spec.kind,
            sample_rate=spec.sample_rate,
            options=common_pb2.AnalyzeOptions(
                min_face_size=spec.min_face_size,
                confidence_threshold=spec.confidence_threshold,
                attributes=list(spec.attributes),
                want_embeddings=spec.recognize or not image,
            ),
        )
        for name in ("start_time", "end_time"):
            if spec.HasField(name):
                setattr(request, name, getattr(spec, name))
        frames: list[tuple[float, list[common_pb2.Face]]] = []
        last_progress = time.monotonic()
        media_write: asyncio.Task[None] | None = None
        try:
            stream = self.decoder.AnalyzeMedia(request, timeout=self.settings.task_timeout_seconds)
            async for item in stream:
                if item.HasField("media_info"):
                    info = item.media_info
                    duration = round(info.duration, 3) if not image else None
                    media = {"url": spec.media_url, "duration": duration, "width": info.width, "height": info.height}
                    expected = info.expected_frames or self.estimator.frames(spec, info.duration)
                    # Written while the frames are analysed, not before: off the latency of short tasks.
                    media_write = asyncio.create_task(
                        self.store.set_media(task_id, media, expected, self.estimator.seconds(expected))
                    )
                    continue
                frames.append((item.frame.timestamp, list(item.frame.faces)))
                FRAMES.inc()
                if image:  # a still has one frame: go on without waiting for its stream's end
                    self._finish_in_background(stream)
                    break
                if time.monotonic() - last_progress >= self.settings.progress_interval_seconds:
                    last_progress = time.monotonic()
                    if await self.store.progress(task_id, len(frames)) == "cancelled":
                        raise UserCancelled()
        except BaseException:
            if media_write is not None:  # settled before the task can reach a terminal state
                await asyncio.gather(media_write, return_exceptions=True)
            raise
        if media_write is not None:
            await media_write
        if not frames:
            raise InvalidMedia("the media contains no decodable frame in the requested range")
        analysed = 0.0
        if not image:  # an image bills a flat second
            end_time = spec.end_time if spec.HasField("end_time") else None
            analysed = analysed_seconds([timestamp for timestamp, _ in frames], spec.sample_rate, end_time)
        if not any(faces for _, faces in frames):
            await self.store.set_analysed(task_id, analysed)  # no_faces_detected is billed too
            raise NoFacesDetected(
                f"no face met the thresholds (min_face_size={spec.min_face_size}, "
                f"confidence_threshold={spec.confidence_threshold:.6g})"  # float32 on the wire: 0.99, not 0.99000000953
            )
        matches = await self._recognise(row, frames) if spec.recognize else None
        tracking = self.tracking
        tracker = Tracker(tracking.min_iou, tracking.min_similarity, tracking.max_gap_samples)
        result = build_result(frames, list(spec.attributes), tracker, matches)
        if spec.HasField("metadata"):  # "echoed back in the result" (the API reference); also kept at the top level
            result["metadata"] = json.loads(spec.metadata.json, parse_constant=lambda _: None)  # NaN of old rows
        return result, len(frames), analysed

    def _finish_in_background(self, stream: Any) -> None:
        """Read a media stream whose frames have all arrived to its end, off the task's path."""
        task = asyncio.create_task(_read_to_end(stream))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _recognise(
        self, row: TaskRow, frames: list[tuple[float, list[common_pb2.Face]]]
    ) -> list[list[list[library_pb2.Match]]]:
        spec = row.spec
        out: list[list[list[library_pb2.Match]]] = [[[] for _ in faces] for _, faces in frames]
        with_faces = [i for i, (_, faces) in enumerate(frames) if faces]
        for start in range(0, len(with_faces), 64):
            chunk = with_faces[start : start + 64]
            request = library_pb2.SearchRequest(
                account_id=row.account_id,
                library_id=spec.library_id,
                top_k=spec.top_k,
                groups=[library_pb2.QueryGroup(embeddings=[f.embedding for f in frames[i][1]]) for i in chunk],
            )
            response = await self.library.Search(request, timeout=60)
            for i, group in zip(chunk, response.groups, strict=True):
                out[i] = [list(face.matches) for face in group.faces]
        return out


async def _read_to_end(stream: Any) -> None:
    try:
        async for _ in stream:
            pass
    except FacemintError as exc:
        log.warning("media stream failed after its last frame", extra={"code": exc.code})
