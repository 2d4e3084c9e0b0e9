"""The outbox sweep: republishes terminal events whose publish did not complete, re-enqueues queued tasks whose job
may never have reached JetStream, and refreshes the queue-depth gauge."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Gauge

from facemint_core import tracing
from facemint_task_orchestrator.events import TaskEvents
from facemint_task_orchestrator.settings import WorkerSettings
from facemint_task_orchestrator.store import TaskStore

log = logging.getLogger(__name__)

QUEUE_DEPTH = Gauge("facemint_task_orchestrator_queue_depth", "Tasks by active status", ["status"])


class OutboxSweep:
    """One sweep on demand, or one every ``sweep_interval_seconds``."""

    def __init__(self, store: TaskStore, events: TaskEvents, settings: WorkerSettings) -> None:
        self.store = store
        self.events = events
        self.settings = settings

    async def once(self, requeue_after_seconds: float | None = None) -> None:
        """Republish missing terminal events, re-enqueue stale queued tasks, refresh the queue-depth gauge.

        Args:
            requeue_after_seconds: How long a task must have been queued to be re-enqueued (default: the setting;
                0 when NATS just came back, so that tasks stored while it was away are enqueued at once).
        """
        if requeue_after_seconds is None:
            requeue_after_seconds = self.settings.requeue_after_seconds
        for done in await self.store.unpublished_terminal():
            with tracing.resumed(done.traceparent):  # the event continues the task's trace
                await self.events.finish(done)
        for task_id in await self.store.stale_queued(requeue_after_seconds):
            queued = await self.store.get(task_id)
            if queued is not None and queued.status == "queued":
                with tracing.resumed(queued.traceparent):
                    await self.events.publish_job(queued)
                await self.store.touch(task_id)
        for status, n in (await self.store.count_by_status()).items():
            QUEUE_DEPTH.labels(status).set(n)

    async def forever(self) -> None:
        """Run the sweep periodically."""
        while True:
            try:
                await self.once()
            except Exception:
                log.exception("sweep failed")
            await asyncio.sleep(self.settings.sweep_interval_seconds)
