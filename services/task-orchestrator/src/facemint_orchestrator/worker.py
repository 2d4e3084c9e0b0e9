"""The job worker: runs one detection task from start to a terminal state.

A job is a TaskJob on the work-queue stream. The worker moves the task to ``running``, streams the media through the
media-decoder (which calls inference), searches identities, assembles the result and stores it. Failures of the
media or of the request (invalid media, too large, no faces) end the task as ``failed`` at once; transient failures
are retried with backoff until ``max_attempts``, then the task fails with ``internal_error``. Every terminal
transition publishes one event (an outbox sweep republishes any event whose publish did not complete).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any

import grpc
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge, Histogram

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2, library_pb2_grpc
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core import streams, tracing
from facemint_core.errors import (
    Conflict,
    FacemintError,
    Forbidden,
    InvalidMedia,
    InvalidRequest,
    NoFacesDetected,
    NotFound,
    PayloadTooLarge,
    from_rpc_error,
)
from facemint_core.grpcutil import call_metadata
from facemint_core.jetstream import Retry, backoff_delay, publish
from facemint_core.logging import task_id_var
from facemint_core.metrics import LATENCY_BUCKETS
from facemint_core.taskview import public_task, render_json
from facemint_orchestrator.assemble import Tracker, analysed_seconds, build_result
from facemint_orchestrator.completions import Completions
from facemint_orchestrator.scheduling import FairScheduler
from facemint_orchestrator.settings import OrchestratorSettings
from facemint_orchestrator.store import TERMINAL, TaskRow, TaskStore

log = logging.getLogger(__name__)

TASKS = Counter("facemint_task_orchestrator_tasks_total", "Tasks that reached a terminal state", ["status", "type"])
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
QUEUE_DEPTH = Gauge("facemint_task_orchestrator_queue_depth", "Tasks by active status", ["status"])
FRAMES = Counter("facemint_task_orchestrator_frames_total", "Sampled frames analysed")
RETRIES = Counter("facemint_task_orchestrator_retries_total", "Transient failures retried")
WAITING = Gauge("facemint_task_orchestrator_waiting_jobs", "Fetched jobs waiting for a worker slot (fair scheduling)")

PERMANENT = (InvalidMedia, PayloadTooLarge, NoFacesDetected, InvalidRequest, Forbidden, NotFound)
KINDS = {
    "image": media_decoder_pb2.MEDIA_KIND_IMAGE,
    "video": media_decoder_pb2.MEDIA_KIND_VIDEO,
    "gif": media_decoder_pb2.MEDIA_KIND_ANIMATED,
}


class Throughput:
    """Exponentially weighted seconds per analysed frame, for ``estimated_seconds``."""

    def __init__(self, initial: float) -> None:
        self.seconds_per_frame = initial

    def observe(self, seconds: float, frames: int) -> None:
        """Fold in one finished task."""
        if frames > 0:
            self.seconds_per_frame = 0.8 * self.seconds_per_frame + 0.2 * (seconds / frames)


class UserCancelled(Exception):
    """The task was cancelled through the API while it ran."""


class Worker:
    """Runs detection jobs and publishes terminal events."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        store: TaskStore,
        nc: NatsClient,
        js: JetStreamContext,
        decoder: media_decoder_pb2_grpc.MediaDecoderServiceStub,
        library: library_pb2_grpc.LibraryServiceStub,
        completions: Completions,
    ) -> None:
        self.settings = settings
        self.completions = completions
        self.store = store
        self.nc = nc
        self.js = js
        self.decoder = decoder
        self.library = library
        self.throughput = Throughput(settings.estimate.seconds_per_frame)
        self.scheduler = FairScheduler(settings.worker.concurrency, settings.worker.image_concurrency)
        WAITING.set_function(lambda: self.scheduler.waiting)
        self.running: dict[str, asyncio.Task[Any]] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.cancelled: set[str] = set()

    # -- estimates ---------------------------------------------------------------------------------------------

    def estimate_frames(self, spec: orchestrator_pb2.TaskSpec, duration: float | None = None) -> int:
        """Sampled frames a task is expected to analyse."""
        if spec.type == "image":
            return 1
        if spec.type == "gif" and duration is None:
            return self.settings.estimate.assumed_animated_frames
        if duration is None:
            start = spec.start_time if spec.HasField("start_time") else 0.0
            end = spec.end_time if spec.HasField("end_time") else start + self.settings.estimate.assumed_video_seconds
            duration = max(0.0, end - start)
        return max(1, math.ceil(float(duration) * int(spec.sample_rate)))

    def estimate_seconds(self, frames: int) -> int:
        """Seconds a task of ``frames`` sampled frames should take at the measured throughput."""
        return max(1, math.ceil(self.settings.estimate.overhead_seconds + frames * self.throughput.seconds_per_frame))

    # -- events --------------------------------------------------------------------------------------------------

    async def publish_job(self, task_id: str, account_id: str, task_type: str) -> None:
        """Enqueue a task on its lane's subject (de-duplicated by task id)."""
        job = orchestrator_pb2.TaskJob(task_id=task_id, account_id=account_id)
        await publish(self.js, streams.job_subject(task_type), job.SerializeToString(), msg_id=task_id)

    async def publish_event(self, row: TaskRow) -> None:
        """Publish the terminal event of a task, once (de-duplicated by task id and status)."""
        task = row.to_proto()
        event = orchestrator_pb2.TaskEvent(
            event=f"task.{task.status}",
            task_id=task.task_id,
            account_id=task.account_id,
            status=task.status,
            callback_url=task.spec.callback_url,
            task_json=render_json(public_task(task, raw_result=True), orjson.dumps).decode(),
            occurred_at=task.completed_at,
        )
        await publish(
            self.js, streams.event_subject(task.status), event.SerializeToString(), f"{task.task_id}:{task.status}"
        )
        await self.store.mark_published(task.task_id)
        TASKS.labels(task.status, task.spec.type).inc()

    async def finish(self, row: TaskRow | None) -> None:
        """Wake local long polls, then publish the event of a task that just reached a terminal state (the sweep
        retries a failed publish)."""
        if row is None:
            return
        self.completions.notify(row.record["task_id"], row)
        await asyncio.sleep(0)  # let the woken long polls answer before the event is built
        try:
            await self.publish_event(row)
        except Exception:
            log.exception("event publish failed; the outbox sweep will retry", extra={"task_id": row.record["task_id"]})

    # -- cancellation --------------------------------------------------------------------------------------------

    async def on_cancel_notice(self, msg: Msg) -> None:
        """A task was cancelled through the API: stop its analysis if it runs here."""
        task_id = msg.data.decode()
        running = self.running.get(task_id)
        if running is not None:
            self.cancelled.add(task_id)
            running.cancel()

    # -- the job ---------------------------------------------------------------------------------------------

    async def handle(self, msg: Msg) -> None:
        """Handle one job message (the PullWorker acks when this returns): wait for a fair slot, run the task."""
        job = orchestrator_pb2.TaskJob.FromString(msg.data)
        task_id_var.set(job.task_id)
        queued = await self.store.get(job.task_id)
        if queued is None:
            log.warning("job for an unknown task dropped")
            return
        if queued.status in TERMINAL:  # a redelivery, or cancelled while queued: no slot needed
            return
        async with self.scheduler.slot(queued.record["account_id"], image=queued.record["type"] == "image"):
            await self._run(job)

    async def _run(self, job: orchestrator_pb2.TaskJob) -> None:
        row = await self.store.start(job.task_id)
        if row is None:  # terminal meanwhile (a cancellation while the job waited for its slot)
            return
        attempt = int(row.record["attempts"])
        task_type = row.record["type"]
        log.info("task started", extra={"attempt": attempt, "type": task_type})
        if attempt == 1:
            queued_for = row.record["started_at"] - row.record["created_at"]
            QUEUE_SECONDS.labels(task_type).observe(queued_for.total_seconds())
        started = time.monotonic()

        def ran(outcome: str) -> None:
            TASK_SECONDS.labels(task_type, outcome).observe(time.monotonic() - started)

        analysis = asyncio.create_task(self._analyse(row))
        self.running[job.task_id] = analysis
        try:
            result, frames, analysed = await asyncio.wait_for(analysis, self.settings.worker.task_timeout_seconds)
        except asyncio.CancelledError:
            if job.task_id in self.cancelled:
                ran("cancelled")
                log.info("task cancelled while running")
                return
            raise
        except UserCancelled:
            ran("cancelled")
            return
        except TimeoutError:
            ran("failed")
            limit = self.settings.worker.task_timeout_seconds
            await self.finish(
                await self.store.fail(job.task_id, "internal_error", f"task exceeded its {limit:.0f} s limit")
            )
            return
        except PERMANENT as exc:
            ran("failed")
            await self.finish(await self.store.fail(job.task_id, exc.code, exc.message))
            return
        except Exception as exc:
            reason = exc.message if isinstance(exc, FacemintError) else f"{type(exc).__name__}: {exc}"
            if attempt >= self.settings.worker.max_attempts:
                ran("failed")
                message = f"gave up after {attempt} attempts: {reason}"
                await self.finish(await self.store.fail(job.task_id, "internal_error", message))
                return
            RETRIES.inc()
            log.warning("transient failure, retrying", extra={"attempt": attempt, "reason": reason})
            raise Retry(reason, backoff_delay(attempt, self.settings.worker.backoff_base_seconds)) from None
        finally:
            self.running.pop(job.task_id, None)
            self.cancelled.discard(job.task_id)
        elapsed = time.monotonic() - started
        self.throughput.observe(elapsed, frames)
        TASK_SECONDS.labels(task_type, "succeeded").observe(elapsed)
        await self.finish(await self.store.succeed(job.task_id, result, frames, analysed))
        log.info("task succeeded", extra={"seconds": round(elapsed, 3), "frames": frames})

    async def on_poison(self, msg: Msg, reason: str) -> None:
        """The job could not be handled even after redeliveries: fail its task with a clear error."""
        job = orchestrator_pb2.TaskJob.FromString(msg.data)
        await self.finish(
            await self.store.fail(job.task_id, "internal_error", f"task could not be processed: {reason}")
        )

    async def _analyse(self, row: TaskRow) -> tuple[dict[str, Any], int, float]:
        """Analyse a task's media: its result, the number of sampled frames and the span they cover (billed)."""
        spec = row.spec
        task_id = row.record["task_id"]
        request = media_decoder_pb2.AnalyzeMediaRequest(
            task_id=task_id,
            media_url=spec.media_url,
            kind=KINDS[spec.type],
            sample_rate=spec.sample_rate,
            options=common_pb2.AnalyzeOptions(
                min_face_size=spec.min_face_size,
                confidence_threshold=spec.confidence_threshold,
                attributes=list(spec.attributes),
                want_embeddings=spec.recognize or spec.type != "image",
            ),
        )
        for name in ("start_time", "end_time"):
            if spec.HasField(name):
                setattr(request, name, getattr(spec, name))
        frames: list[tuple[float, list[common_pb2.Face]]] = []
        last_progress = time.monotonic()
        media_write: asyncio.Task[None] | None = None
        try:
            stream = self.decoder.AnalyzeMedia(
                request, timeout=self.settings.worker.task_timeout_seconds, metadata=call_metadata()
            )
            async for item in stream:
                if item.HasField("media_info"):
                    info = item.media_info
                    duration = round(info.duration, 3) if spec.type != "image" else None
                    media = {"url": spec.media_url, "duration": duration, "width": info.width, "height": info.height}
                    expected = info.expected_frames or self.estimate_frames(spec, info.duration)
                    # Written while the frames are analysed, not before: off the latency of short tasks.
                    media_write = asyncio.create_task(
                        self.store.set_media(task_id, media, expected, self.estimate_seconds(expected))
                    )
                    continue
                frames.append((item.frame.timestamp, list(item.frame.faces)))
                FRAMES.inc()
                if spec.type == "image":  # a still has one frame: go on without waiting for its stream's end
                    self._finish_in_background(stream)
                    break
                if time.monotonic() - last_progress >= self.settings.worker.progress_interval_seconds:
                    last_progress = time.monotonic()
                    if await self.store.progress(task_id, len(frames)) == "cancelled":
                        raise UserCancelled()
        except BaseException as exc:
            if media_write is not None:  # settled before the task can reach a terminal state
                await asyncio.gather(media_write, return_exceptions=True)
            if isinstance(exc, grpc.aio.AioRpcError):
                raise from_rpc_error(exc) from None
            raise
        if media_write is not None:
            await media_write
        if not frames:
            raise InvalidMedia("the media contains no decodable frame in the requested range")
        analysed = 0.0
        if spec.type != "image":  # an image bills a flat second
            end_time = spec.end_time if spec.HasField("end_time") else None
            analysed = analysed_seconds([timestamp for timestamp, _ in frames], spec.sample_rate, end_time)
        if not any(faces for _, faces in frames):
            await self.store.set_analysed(task_id, analysed)  # no_faces_detected is billed too
            raise NoFacesDetected(
                f"no face met the thresholds (min_face_size={spec.min_face_size}, "
                f"confidence_threshold={spec.confidence_threshold})"
            )
        matches = await self._recognise(row, frames) if spec.recognize else None
        tracking = self.settings.tracking
        tracker = Tracker(tracking.min_iou, tracking.min_similarity, tracking.max_gap_samples)
        return build_result(frames, list(spec.attributes), tracker, matches), len(frames), analysed

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
                account_id=row.record["account_id"],
                library_id=spec.library_id,
                top_k=spec.top_k,
                groups=[library_pb2.QueryGroup(embeddings=[f.embedding for f in frames[i][1]]) for i in chunk],
            )
            try:
                response = await self.library.Search(request, timeout=60, metadata=call_metadata())
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc) from None
            for i, group in zip(chunk, response.groups, strict=True):
                out[i] = [list(face.matches) for face in group.faces]
        return out

    # -- the outbox sweep ---------------------------------------------------------------------------------------

    async def sweep_once(self, requeue_after_seconds: float | None = None) -> None:
        """Republish missing terminal events, re-enqueue stale queued tasks, refresh the queue-depth gauge.

        Args:
            requeue_after_seconds: How long a task must have been queued to be re-enqueued (default: the setting;
                0 when NATS just came back, so that tasks stored while it was away are enqueued at once).
        """
        if requeue_after_seconds is None:
            requeue_after_seconds = self.settings.worker.requeue_after_seconds
        for done in await self.store.unpublished_terminal():
            with tracing.resumed(done.record["traceparent"]):  # the event continues the task's trace
                await self.finish(done)
        for task_id in await self.store.stale_queued(requeue_after_seconds):
            queued = await self.store.get(task_id)
            if queued is not None and queued.status == "queued":
                with tracing.resumed(queued.record["traceparent"]):
                    await self.publish_job(task_id, queued.record["account_id"], queued.record["type"])
                await self.store.touch(task_id)
        for status, n in (await self.store.count_by_status()).items():
            QUEUE_DEPTH.labels(status).set(n)

    async def sweep_forever(self) -> None:
        """Run the sweep periodically."""
        while True:
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(self.settings.worker.sweep_interval_seconds)


async def _read_to_end(stream: Any) -> None:
    try:
        async for _ in stream:
            pass
    except grpc.aio.AioRpcError as exc:
        log.warning("media stream failed after its last frame", extra={"code": exc.code().name})


async def cancel_task(worker: Worker, account_id: str, task_id: str) -> TaskRow:
    """Cancel a queued or running task; Conflict (409) when already terminal."""
    current = await worker.store.get_owned(account_id, task_id)
    row = await worker.store.cancel(task_id)
    if row is None:
        raise Conflict(f"task {task_id} is already {current.status} and cannot be cancelled")
    with contextlib.suppress(Exception):
        await worker.nc.publish(streams.CANCEL_SUBJECT, task_id.encode())
    await worker.finish(row)
    return row
