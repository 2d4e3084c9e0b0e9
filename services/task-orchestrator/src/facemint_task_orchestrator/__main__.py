"""Entry point: ``facemint-task-orchestrator`` (or ``python -m facemint_task_orchestrator``)."""

from __future__ import annotations

import asyncio
import contextlib

from facemint.library.v1 import library_pb2_grpc
from facemint.media_decoder.v1 import media_decoder_pb2_grpc
from facemint.orchestrator.v1 import orchestrator_pb2_grpc
from facemint_core import streams
from facemint_core.grpcutil import open_channel, start_grpc_server
from facemint_core.jetstream import PullWorker, ensure_pull_consumer, stream_check
from facemint_core.lifecycle import ServiceRuntime, open_database, open_nats, run_service
from facemint_core.settings import load_settings
from facemint_task_orchestrator.cancellation import Cancellation
from facemint_task_orchestrator.completions import TERMINAL_EVENTS_SUBJECT, Completions
from facemint_task_orchestrator.estimates import Estimator
from facemint_task_orchestrator.events import TaskEvents
from facemint_task_orchestrator.jobs import JobRunner
from facemint_task_orchestrator.servicer import TaskService
from facemint_task_orchestrator.settings import OrchestratorSettings
from facemint_task_orchestrator.store import TaskStore
from facemint_task_orchestrator.sweep import OutboxSweep

CONSUMERS = {"orchestrator-detect": streams.JOBS_SUBJECT, "orchestrator-detect-image": streams.IMAGE_JOBS_SUBJECT}
"""The durable consumer of each lane's subject (the video and GIF lane keeps the name it had before lanes)."""


async def setup(runtime: ServiceRuntime) -> None:
    """Open the pool, NATS and channels, start the worker, the sweep and the gRPC server."""
    settings = runtime.settings
    assert isinstance(settings, OrchestratorSettings)
    pool = await open_database(runtime, settings.database, "task-orchestrator" if settings.apply_migrations else None)
    sweeper: OutboxSweep | None = None

    async def catch_up() -> None:
        """NATS is back: enqueue the tasks stored while it was away now, not after REQUEUE_AFTER_SECONDS."""
        if sweeper is not None:
            await sweeper.once(requeue_after_seconds=0)

    nc = await open_nats(runtime, settings.nats, on_reconnect=catch_up)
    js = nc.jetstream()
    await streams.ensure_jobs_stream(js, settings.nats.stream_replicas)
    await streams.ensure_events_stream(js, settings.nats.stream_replicas)
    wcfg = settings.worker
    for consumer, subject in CONSUMERS.items():
        await ensure_pull_consumer(
            js,
            streams.JOBS_STREAM,
            consumer,
            filter_subject=subject,
            ack_wait_seconds=wcfg.ack_wait_seconds,
            max_deliver=wcfg.max_attempts + 2,
        )

    decoder_channel = open_channel(settings.media_decoder_target)
    library_channel = open_channel(settings.library_target)

    async def close_channels(_: float) -> None:
        await decoder_channel.close()
        await library_channel.close()

    runtime.on_stop("channels", close_channels)
    store = TaskStore(pool)
    completions = Completions()
    estimator = Estimator(settings.estimate)
    events = TaskEvents(store, nc, js, completions)
    cancellation = Cancellation(store, nc, events)
    runner = JobRunner(
        wcfg,
        settings.tracking,
        store,
        events,
        cancellation,
        estimator,
        media_decoder_pb2_grpc.MediaDecoderServiceStub(decoder_channel),
        library_pb2_grpc.LibraryServiceStub(library_channel),
    )
    sweeper = OutboxSweep(store, events, wcfg)
    await nc.subscribe(streams.CANCEL_SUBJECT, cb=cancellation.on_notice)
    await nc.subscribe(TERMINAL_EVENTS_SUBJECT, cb=completions.on_event)
    # Each lane fetches up to the slots it may use plus ``waiting_jobs``; the fair scheduler picks among them.
    windows = {
        streams.JOBS_SUBJECT: wcfg.concurrency,
        streams.IMAGE_JOBS_SUBJECT: wcfg.concurrency + wcfg.image_concurrency,
    }
    pullers = [
        PullWorker(
            js,
            streams.JOBS_STREAM,
            consumer,
            runner.handle,
            concurrency=windows[subject] + wcfg.waiting_jobs,
            ack_wait_seconds=wcfg.ack_wait_seconds,
            max_deliver=wcfg.max_attempts + 2,
            on_poison=runner.on_poison,
            backoff_base_seconds=wcfg.backoff_base_seconds,
        )
        for consumer, subject in CONSUMERS.items()
    ]
    for puller in pullers:
        puller.start()
    sweep = asyncio.create_task(sweeper.forever())

    async def stop_work(grace: float) -> None:
        sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweep
        runner.scheduler.close()  # jobs still waiting for a slot go back to the stream at once
        await asyncio.gather(*(puller.stop(grace) for puller in pullers))

    runtime.readiness.add("jobs stream", stream_check(nc, js, streams.JOBS_STREAM))
    await start_grpc_server(
        runtime,
        lambda server: orchestrator_pb2_grpc.add_TaskServiceServicer_to_server(
            TaskService(settings, store, estimator, events, completions, cancellation), server
        ),
        ["facemint.orchestrator.v1.TaskService"],
    )
    # Registered after the gRPC server, so it runs before it on shutdown: stop taking jobs, finish or hand back.
    runtime.on_stop("jobs", stop_work)


def main() -> None:
    """Run the orchestrator until SIGTERM."""
    run_service("task-orchestrator", load_settings(OrchestratorSettings), setup)


if __name__ == "__main__":
    main()
