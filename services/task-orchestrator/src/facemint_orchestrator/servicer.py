"""The TaskService gRPC API."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc

from facemint.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from facemint_core.errors import InvalidRequest
from facemint_orchestrator.quota import read_usage
from facemint_orchestrator.store import TERMINAL, TaskRow, TaskStore
from facemint_orchestrator.worker import Worker, cancel_task

log = logging.getLogger(__name__)


class TaskService(orchestrator_pb2_grpc.TaskServiceServicer):
    """Create, read, list and cancel tasks."""

    def __init__(self, store: TaskStore, worker: Worker, max_wait_seconds: float) -> None:
        self.store = store
        self.worker = worker
        self.max_wait_seconds = max_wait_seconds

    async def CreateTask(  # noqa: N802 - gRPC method name
        self, request: orchestrator_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Task:
        """Insert a queued task and enqueue its job; a repeated creation id returns the task it stored."""
        if not request.account_id or not request.spec.media_url or not request.spec.type:
            raise InvalidRequest("account_id, spec.type and spec.media_url are required")
        estimate = self.worker.estimate_seconds(self.worker.estimate_frames(request.spec))
        row, created = await self.store.create(
            request.account_id,
            request.spec,
            estimate,
            request.request_id,
            request.creation_id,
            self.worker.settings.creation_id_ttl_seconds,
            request.limits if request.HasField("limits") else None,
        )
        if created:
            await self._enqueue(row)
        return row.to_proto()

    async def _enqueue(self, row: TaskRow) -> None:
        """Publish a new task's job; when NATS cannot take it, leave it to the outbox sweep (ADR 9).

        The task is durably queued either way, so the caller gets it rather than an error that would make it
        create the task again.
        """
        task_id = row.record["task_id"]
        if not self.worker.nc.is_connected:
            log.warning("task stored, job left to the sweep: NATS is disconnected", extra={"task_id": task_id})
            return
        try:
            await self.worker.publish_job(task_id, row.record["account_id"], row.record["type"])
        except Exception as exc:
            log.warning("task stored, job left to the sweep: %s", exc, extra={"task_id": task_id})

    async def GetTask(  # noqa: N802
        self, request: orchestrator_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Task:
        """One task of the caller's account; with ``wait_seconds``, once it is terminal or the wait is over."""
        wait = request.wait_seconds
        if not 0 <= wait <= self.max_wait_seconds:
            raise InvalidRequest(f"wait_seconds must be within [0, {self.max_wait_seconds:g}], got {wait:g}")
        if wait == 0:
            return (await self.store.get_owned(request.account_id, request.task_id)).to_proto()
        with self.worker.completions.watch(request.task_id) as finished:
            row = await self.store.get_owned(request.account_id, request.task_id)
            if row.status in TERMINAL:
                return row.to_proto()
            with contextlib.suppress(TimeoutError):
                done = await asyncio.wait_for(finished, wait)
                if done is not None:  # the terminal row, from the worker that stored it (ownership checked above)
                    return done.to_proto()
        return (await self.store.get_owned(request.account_id, request.task_id)).to_proto()

    async def ListTasks(  # noqa: N802
        self, request: orchestrator_pb2.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.ListTasksResponse:
        """A page of the caller's tasks."""
        rows, cursor = await self.store.list_page(
            request.account_id, request.status, request.type, request.created_after, request.limit or 20, request.cursor
        )
        return orchestrator_pb2.ListTasksResponse(tasks=[r.to_proto() for r in rows], next_cursor=cursor)

    async def CancelTask(  # noqa: N802
        self, request: orchestrator_pb2.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Task:
        """Cancel a queued or running task."""
        return (await cancel_task(self.worker, request.account_id, request.task_id)).to_proto()

    async def GetUsage(  # noqa: N802
        self, request: orchestrator_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Usage:
        """The account's queued and running tasks and its metered usage this month."""
        if not request.account_id:
            raise InvalidRequest("account_id is required")
        return (await read_usage(self.store.pool, request.account_id)).to_proto()
