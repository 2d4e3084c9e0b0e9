"""The task state machine and its races, on a real PostgreSQL and NATS JetStream.

The media-decoder is a scripted gRPC server: these tests need to hold an analysis at a chosen point (to cancel it, to
let a second delivery of its job meet it, to time it out), which the real decoder cannot be told to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import grpc
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2_grpc
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core import streams
from facemint_core.errors import Conflict
from facemint_core.grpcutil import open_channel
from facemint_core.jetstream import Retry
from facemint_local.servers import NatsServer
from facemint_task_orchestrator.cancellation import Cancellation
from facemint_task_orchestrator.completions import Completions
from facemint_task_orchestrator.estimates import Estimator
from facemint_task_orchestrator.events import TaskEvents
from facemint_task_orchestrator.jobs import JobRunner
from facemint_task_orchestrator.settings import EstimateSettings, TrackingSettings, WorkerSettings
from facemint_task_orchestrator.store import TaskRow, TaskStore
from facemint_task_orchestrator.sweep import OutboxSweep

pytestmark = pytest.mark.integration

ACCOUNT = "acct_lifecycle"
FACE = common_pb2.Face(bbox=common_pb2.BBox(x=10, y=20, width=50, height=60), confidence=0.9)


class ScriptedDecoder(media_decoder_pb2_grpc.MediaDecoderServiceServicer):
    """Answers ``AnalyzeMedia`` with one frame of one face, after ``release`` is set (set at first)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.release.set()
        self.calls = 0
        self.entered = asyncio.Event()

    async def AnalyzeMedia(  # noqa: N802 - gRPC method name
        self, request: media_decoder_pb2.AnalyzeMediaRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[media_decoder_pb2.AnalyzeMediaResponse]:
        """Media info, then (once released) one frame."""
        self.calls += 1
        self.entered.set()
        yield media_decoder_pb2.AnalyzeMediaResponse(
            media_info=media_decoder_pb2.MediaInfo(width=640, height=480, expected_frames=1)
        )
        await self.release.wait()
        yield media_decoder_pb2.AnalyzeMediaResponse(frame=media_decoder_pb2.FrameResult(index=0, faces=[FACE]))

    async def ProbeMedia(  # noqa: N802 - gRPC method name
        self, request: media_decoder_pb2.ProbeMediaRequest, context: grpc.aio.ServicerContext
    ) -> media_decoder_pb2.ProbeMediaResponse:
        """Not used by the orchestrator."""
        raise NotImplementedError


@dataclass
class Orchestrator:
    """The orchestrator's parts, wired as ``__main__`` wires them."""

    store: TaskStore
    events: TaskEvents
    cancellation: Cancellation
    runner: JobRunner
    sweep: OutboxSweep
    decoder: ScriptedDecoder
    js: JetStreamContext
    pool: asyncpg.Pool

    async def create(self, kind: common_pb2.MediaKind.ValueType = common_pb2.MEDIA_KIND_IMAGE) -> TaskRow:
        spec = orchestrator_pb2.TaskSpec(kind=kind, media_url="http://127.0.0.1:9/a.jpg", sample_rate=1)
        row, created = await self.store.create(ACCOUNT, spec, 1, "req_1", "", 60)
        assert created
        return row

    async def status(self, task_id: str) -> str:
        return str(await self.pool.fetchval("SELECT status FROM tasks WHERE task_id = $1", task_id))

    async def events_of(self, task_id: str) -> list[orchestrator_pb2.TaskEvent]:
        """The terminal events of a task stored in the events stream."""
        info = await self.js.stream_info(streams.EVENTS_STREAM)
        found: list[orchestrator_pb2.TaskEvent] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
            raw = await self.js.get_msg(streams.EVENTS_STREAM, seq)
            event = orchestrator_pb2.TaskEvent.FromString(raw.data or b"")
            if event.task_id == task_id:
                found.append(event)
        return found

    async def jobs_of(self, task_id: str) -> int:
        """Jobs of a task waiting in the work-queue stream."""
        info = await self.js.stream_info(streams.JOBS_STREAM)
        count = 0
        for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
            raw = await self.js.get_msg(streams.JOBS_STREAM, seq)
            count += orchestrator_pb2.TaskJob.FromString(raw.data or b"").task_id == task_id
        return count


class Job:
    """A job message as the PullWorker hands it to the runner."""

    def __init__(self, task_id: str) -> None:
        self.data = orchestrator_pb2.TaskJob(task_id=task_id, account_id=ACCOUNT).SerializeToString()


@pytest.fixture
async def orchestrator(fresh_database: str, nats_server: NatsServer) -> AsyncIterator[Orchestrator]:
    nc: NatsClient = await nats.connect(nats_server.url)
    js = nc.jetstream()
    for stream in (streams.EVENTS_STREAM, streams.JOBS_STREAM):  # each test counts its own messages
        try:
            await js.delete_stream(stream)
        except nats.js.errors.NotFoundError:
            pass
    await streams.ensure_jobs_stream(js)
    await streams.ensure_events_stream(js)
    decoder = ScriptedDecoder()
    server = grpc.aio.server()
    media_decoder_pb2_grpc.add_MediaDecoderServiceServicer_to_server(decoder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = open_channel(f"127.0.0.1:{port}")
    pool = await asyncpg.create_pool(fresh_database, min_size=1, max_size=8)
    settings = WorkerSettings(task_timeout_seconds=5, max_attempts=3, backoff_base_seconds=0)
    store = TaskStore(pool)
    events = TaskEvents(store, nc, js, Completions())
    cancellation = Cancellation(store, nc, events)
    await nc.subscribe(streams.CANCEL_SUBJECT, cb=cancellation.on_notice)
    runner = JobRunner(
        settings,
        TrackingSettings(),
        store,
        events,
        cancellation,
        Estimator(EstimateSettings()),
        media_decoder_pb2_grpc.MediaDecoderServiceStub(channel),
        library_pb2_grpc.LibraryServiceStub(channel),
    )
    try:
        yield Orchestrator(store, events, cancellation, runner, OutboxSweep(store, events, settings), decoder, js, pool)
    finally:
        runner.scheduler.close()
        await channel.close()
        await server.stop(0)
        await pool.close()
        await nc.close()


async def test_a_job_runs_its_task_queued_running_succeeded_with_one_event(orchestrator: Orchestrator) -> None:
    row = await orchestrator.create()
    assert row.status == "queued" and row.attempts == 0
    await orchestrator.runner.handle(Job(row.task_id))  # type: ignore[arg-type]
    done = await orchestrator.store.get(row.task_id)
    assert done is not None and done.status == "succeeded" and done.attempts == 1
    assert done.result_json is not None and '"bbox":[10,20,50,60]' in done.result_json
    task = done.to_proto()
    assert task.status == orchestrator_pb2.TASK_STATUS_SUCCEEDED and task.media.width == 640
    assert not task.media.HasField("duration") and task.HasField("started_at") and task.HasField("completed_at")
    [event] = await orchestrator.events_of(row.task_id)
    assert event.status == orchestrator_pb2.TASK_STATUS_SUCCEEDED and event.event == "task.succeeded"
    assert event.occurred_at == task.completed_at and event.task.json.startswith(b'{"task_id":')


async def test_every_transition_out_of_a_terminal_state_is_refused(orchestrator: Orchestrator) -> None:
    store = orchestrator.store
    for end in ("succeeded", "failed", "cancelled"):
        row = await orchestrator.create()
        assert await store.start(row.task_id) is not None
        if end == "succeeded":
            assert await store.succeed(row.task_id, {"frames": []}, 1, 0.0) is not None
        elif end == "failed":
            assert await store.fail(row.task_id, "invalid_media", "no") is not None
        else:
            assert await store.cancel(row.task_id) is not None
        before = await store.get(row.task_id)
        # a terminal state written twice, or overwritten by another: nothing changes
        assert await store.succeed(row.task_id, {"other": 1}, 2, 1.0) is None
        assert await store.fail(row.task_id, "internal_error", "late") is None
        assert await store.cancel(row.task_id) is None
        assert await store.start(row.task_id) is None
        assert await store.get(row.task_id) == before


async def test_a_queued_task_can_fail_or_be_cancelled_but_not_succeed(orchestrator: Orchestrator) -> None:
    store = orchestrator.store
    failed, cancelled = await orchestrator.create(), await orchestrator.create()
    assert await store.succeed(failed.task_id, {}, 1, 0.0) is None  # only a running task succeeds
    assert (await store.fail(failed.task_id, "internal_error", "poison")) is not None
    assert (await store.cancel(cancelled.task_id)) is not None
    assert await orchestrator.status(failed.task_id) == "failed"
    assert await orchestrator.status(cancelled.task_id) == "cancelled"


async def test_cancel_and_finish_racing_end_the_task_once_with_one_event(orchestrator: Orchestrator) -> None:
    for _ in range(10):
        row = await orchestrator.create()
        await orchestrator.store.start(row.task_id)
        cancelled, succeeded = await asyncio.gather(
            orchestrator.store.cancel(row.task_id), orchestrator.store.succeed(row.task_id, {}, 1, 0.0)
        )
        assert (cancelled is None) != (succeeded is None)
        winner = cancelled or succeeded
        assert winner is not None and await orchestrator.status(row.task_id) == winner.status
        await asyncio.gather(orchestrator.events.finish(cancelled), orchestrator.events.finish(succeeded))
        assert [e.status for e in await orchestrator.events_of(row.task_id)] == [winner.to_proto().status]


async def test_cancel_stops_the_running_analysis_and_a_late_cancel_is_a_conflict(orchestrator: Orchestrator) -> None:
    orchestrator.decoder.release.clear()
    row = await orchestrator.create()
    run = asyncio.create_task(orchestrator.runner.handle(Job(row.task_id)))  # type: ignore[arg-type]
    await asyncio.wait_for(orchestrator.decoder.entered.wait(), 5)
    cancelled = await orchestrator.cancellation.cancel(ACCOUNT, row.task_id)
    assert cancelled.status == "cancelled"
    await asyncio.wait_for(run, 5)  # the notice stopped the analysis: the job ends without a second transition
    assert await orchestrator.status(row.task_id) == "cancelled"
    assert [e.event for e in await orchestrator.events_of(row.task_id)] == ["task.cancelled"]
    with pytest.raises(Conflict, match="already cancelled"):
        await orchestrator.cancellation.cancel(ACCOUNT, row.task_id)


async def test_a_job_delivered_twice_at_once_ends_its_task_once(orchestrator: Orchestrator) -> None:
    orchestrator.decoder.release.clear()
    row = await orchestrator.create()
    first = asyncio.create_task(orchestrator.runner.handle(Job(row.task_id)))  # type: ignore[arg-type]
    second = asyncio.create_task(orchestrator.runner.handle(Job(row.task_id)))  # type: ignore[arg-type]
    while orchestrator.decoder.calls < 2:
        await asyncio.sleep(0.01)
    orchestrator.decoder.release.set()
    await asyncio.wait_for(asyncio.gather(first, second), 10)
    done = await orchestrator.store.get(row.task_id)
    assert done is not None and done.status == "succeeded" and done.attempts == 2
    assert len(await orchestrator.events_of(row.task_id)) == 1


async def test_a_job_redelivered_after_its_task_ended_does_nothing(orchestrator: Orchestrator) -> None:
    row = await orchestrator.create()
    await orchestrator.runner.handle(Job(row.task_id))  # type: ignore[arg-type]
    await orchestrator.runner.handle(Job(row.task_id))  # type: ignore[arg-type]
    assert orchestrator.decoder.calls == 1
    done = await orchestrator.store.get(row.task_id)
    assert done is not None and done.attempts == 1 and len(await orchestrator.events_of(row.task_id)) == 1


async def test_a_job_redelivered_after_a_crash_mid_task_restarts_and_finishes_it(orchestrator: Orchestrator) -> None:
    row = await orchestrator.create()
    crashed = await orchestrator.store.start(row.task_id)  # the replica that took it died here
    assert crashed is not None and crashed.status == "running"
    await orchestrator.runner.handle(Job(row.task_id))  # type: ignore[arg-type]
    done = await orchestrator.store.get(row.task_id)
    assert done is not None and done.status == "succeeded" and done.attempts == 2
    assert len(await orchestrator.events_of(row.task_id)) == 1


async def test_the_sweep_republishes_an_unpublished_terminal_event_once(orchestrator: Orchestrator) -> None:
    row = await orchestrator.create()
    await orchestrator.store.start(row.task_id)
    assert await orchestrator.store.succeed(row.task_id, {}, 1, 0.0) is not None  # the replica died before publishing
    assert await orchestrator.events_of(row.task_id) == []
    await orchestrator.sweep.once()
    await orchestrator.sweep.once()
    assert [e.event for e in await orchestrator.events_of(row.task_id)] == ["task.succeeded"]
    assert await orchestrator.store.unpublished_terminal() == []


async def test_the_sweep_requeues_a_task_whose_job_never_reached_the_stream(orchestrator: Orchestrator) -> None:
    row = await orchestrator.create()  # stored while NATS was away: no job published
    await orchestrator.sweep.once()  # younger than requeue_after_seconds: left alone
    assert await orchestrator.jobs_of(row.task_id) == 0
    await orchestrator.sweep.once(requeue_after_seconds=0)
    assert await orchestrator.jobs_of(row.task_id) == 1
    await orchestrator.sweep.once(requeue_after_seconds=0)  # de-duplicated by task id
    assert await orchestrator.jobs_of(row.task_id) == 1


async def test_an_analysis_past_the_task_timeout_fails_the_task(orchestrator: Orchestrator) -> None:
    orchestrator.decoder.release.clear()
    orchestrator.runner.settings = orchestrator.runner.settings.model_copy(update={"task_timeout_seconds": 0.3})
    row = await orchestrator.create()
    await asyncio.wait_for(orchestrator.runner.handle(Job(row.task_id)), 10)  # type: ignore[arg-type]
    done = await orchestrator.store.get(row.task_id)
    assert done is not None and done.status == "failed" and done.error_code == "internal_error"
    assert done.error_message is not None and "exceeded its 0 s limit" in done.error_message
    [event] = await orchestrator.events_of(row.task_id)
    assert event.status == orchestrator_pb2.TASK_STATUS_FAILED


async def test_a_transient_failure_is_retried_then_fails_after_max_attempts(orchestrator: Orchestrator) -> None:
    row = await orchestrator.create()
    await orchestrator.pool.execute(
        "UPDATE tasks SET spec = jsonb_set(spec, '{media_url}', '\"http://127.0.0.1:1/x\"') WHERE task_id = $1",
        row.task_id,
    )
    async with open_channel("127.0.0.1:1") as nowhere:  # nothing listens: UNAVAILABLE, a transient failure
        orchestrator.runner.decoder = media_decoder_pb2_grpc.MediaDecoderServiceStub(nowhere)
        for attempt in (1, 2):
            with pytest.raises(Retry):
                await orchestrator.runner.handle(Job(row.task_id))  # type: ignore[arg-type]
            assert await orchestrator.status(row.task_id) == "running", attempt
        await orchestrator.runner.handle(Job(row.task_id))  # type: ignore[arg-type]
    done = await orchestrator.store.get(row.task_id)
    assert done is not None and done.status == "failed" and done.attempts == 3
    assert done.error_message is not None and done.error_message.startswith("gave up after 3 attempts")
