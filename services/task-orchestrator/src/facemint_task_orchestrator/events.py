"""Jobs and terminal events on JetStream.

A new task's job goes to its lane's subject, de-duplicated by task id. A task that reached a terminal state wakes
the long polls waiting on it here, then its event is published once (de-duplicated by task id and status) and the
row is marked published; a publish that fails is retried by the outbox sweep (:mod:`facemint_task_orchestrator.sweep`).
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from prometheus_client import Counter, Histogram

from facemint.common.v1 import common_pb2
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core import streams
from facemint_core.jetstream import publish
from facemint_core.metrics import LATENCY_BUCKETS
from facemint_core.taskview import public_task, render_json
from facemint_core.vocab import MEDIA_KIND_NAMES
from facemint_task_orchestrator.completions import Completions
from facemint_task_orchestrator.store import TaskRow, TaskStore

log = logging.getLogger(__name__)

TASKS = Counter("facemint_task_orchestrator_tasks_total", "Tasks that reached a terminal state", ["status", "type"])
LATENCY = Histogram(
    "facemint_task_orchestrator_task_latency_seconds",
    "Time from a task's creation to its terminal state (queue and run, what a client waits), by outcome",
    ["type", "outcome"],
    buckets=LATENCY_BUCKETS,
)


class TaskEvents:
    """Publishes jobs and terminal events."""

    def __init__(self, store: TaskStore, nc: NatsClient, js: JetStreamContext, completions: Completions) -> None:
        self.store = store
        self.nc = nc
        self.js = js
        self.completions = completions

    async def publish_job(self, row: TaskRow) -> None:
        """Enqueue a task on its lane's subject (de-duplicated by task id)."""
        job = orchestrator_pb2.TaskJob(task_id=row.task_id, account_id=row.account_id)
        subject = streams.job_subject(MEDIA_KIND_NAMES[row.kind])
        await publish(self.js, subject, job.SerializeToString(), msg_id=row.task_id)

    async def enqueue(self, row: TaskRow) -> None:
        """Publish a new task's job; when NATS cannot take it, leave it to the outbox sweep (ADR 9).

        The task is durably queued either way, so the caller gets it rather than an error that would make it
        create the task again.
        """
        if not self.nc.is_connected:
            log.warning("task stored, job left to the sweep: NATS is disconnected", extra={"task_id": row.task_id})
            return
        try:
            await self.publish_job(row)
        except Exception as exc:
            log.warning("task stored, job left to the sweep: %s", exc, extra={"task_id": row.task_id})

    async def publish_event(self, row: TaskRow) -> None:
        """Publish the terminal event of a task, once (de-duplicated by task id and status)."""
        task = row.to_proto()
        event = orchestrator_pb2.TaskEvent(
            event=f"task.{row.status}",
            task_id=task.task_id,
            account_id=task.account_id,
            status=task.status,
            callback_url=task.spec.callback_url,
            task=common_pb2.JsonDocument(json=render_json(public_task(task, raw_result=True), orjson.dumps)),
            occurred_at=task.completed_at,
        )
        await publish(
            self.js, streams.event_subject(row.status), event.SerializeToString(), f"{task.task_id}:{row.status}"
        )
        await self.store.mark_published(task.task_id)
        TASKS.labels(row.status, MEDIA_KIND_NAMES[row.kind]).inc()

    async def finish(self, row: TaskRow | None) -> None:
        """Wake local long polls, then publish the event of a task that just reached a terminal state (the sweep
        retries a failed publish). ``row`` is what a guarded transition returned: None when it lost its race, and
        then nothing happens."""
        if row is None:
            return
        if row.completed_at is not None:  # both instants from PostgreSQL's clock
            LATENCY.labels(MEDIA_KIND_NAMES[row.kind], row.status).observe(
                (row.completed_at - row.created_at).total_seconds()
            )
        self.completions.notify(row.task_id, row)
        await asyncio.sleep(0)  # let the woken long polls answer before the event is built
        try:
            await self.publish_event(row)
        except Exception:
            log.exception("event publish failed; the outbox sweep will retry", extra={"task_id": row.task_id})
