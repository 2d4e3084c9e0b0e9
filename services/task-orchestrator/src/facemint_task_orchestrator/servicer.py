"""The TaskService gRPC API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC

import grpc

from facemint.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from facemint_core.errors import InvalidRequest
from facemint_core.vocab import MEDIA_KIND_NAMES, STATUS_NAMES
from facemint_task_orchestrator.cancellation import Cancellation
from facemint_task_orchestrator.completions import Completions
from facemint_task_orchestrator.estimates import Estimator
from facemint_task_orchestrator.events import TaskEvents
from facemint_task_orchestrator.quota import read_usage
from facemint_task_orchestrator.settings import OrchestratorSettings
from facemint_task_orchestrator.store import TaskStore

log = logging.getLogger(__name__)


class TaskService(orchestrator_pb2_grpc.TaskServiceServicer):
    """Create, read, list and cancel tasks."""

    def __init__(
        self,
        settings: OrchestratorSettings,
        store: TaskStore,
        estimator: Estimator,
        events: TaskEvents,
        completions: Completions,
        cancellation: Cancellation,
    ) -> None:
        self.settings = settings
        self.store = store
        self.estimator = estimator
        self.events = events
        self.completions = completions
        self.cancellation = cancellation

    async def CreateTask(  # noqa: N802 - gRPC method name
        self, request: orchestrator_pb2.CreateTaskRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Task:
        """Insert a queued task and enqueue its job; a repeated creation id returns the task it stored."""
        if not request.account_id or not request.spec.media_url or request.spec.kind not in MEDIA_KIND_NAMES:
            raise InvalidRequest("account_id, spec.kind and spec.media_url are required")
        estimate = self.estimator.seconds(self.estimator.frames(request.spec))
        row, created = await self.store.create(
            request.account_id,
            request.spec,
            estimate,
            request.request_id,
            request.creation_id,
            self.settings.creation_id_ttl_seconds,
            request.limits if request.HasField("limits") else None,
        )
        if created:
            await self.events.enqueue(row)
        return row.to_proto()

    async def GetTask(  # noqa: N802
        self, request: orchestrator_pb2.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Task:
        """One task of the caller's account; with ``wait_seconds``, once it is terminal or the wait is over."""
        wait = request.wait_seconds
        if not 0 <= wait <= self.settings.max_wait_seconds:
            raise InvalidRequest(f"wait_seconds must be within [0, {self.settings.max_wait_seconds:g}], got {wait:g}")
        if wait == 0:
            return (await self.store.get_owned(request.account_id, request.task_id)).to_proto()
        with self.completions.watch(request.task_id) as finished:
            row = await self.store.get_owned(request.account_id, request.task_id)
            if row.terminal:
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
            request.account_id,
            STATUS_NAMES.get(request.status),
            MEDIA_KIND_NAMES.get(request.kind),
            request.created_after.ToDatetime(UTC) if request.HasField("created_after") else None,
            request.limit or 20,
            request.cursor,
        )
        return orchestrator_pb2.ListTasksResponse(tasks=[r.to_proto() for r in rows], next_cursor=cursor)

    async def CancelTask(  # noqa: N802
        self, request: orchestrator_pb2.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Task:
        """Cancel a queued or running task."""
        return (await self.cancellation.cancel(request.account_id, request.task_id)).to_proto()

    async def GetUsage(  # noqa: N802
        self, request: orchestrator_pb2.GetUsageRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Usage:
        """The account's queued and running tasks and its metered usage this month."""
        if not request.account_id:
            raise InvalidRequest("account_id is required")
        return (await read_usage(self.store.pool, request.account_id)).to_proto()
