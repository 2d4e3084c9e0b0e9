"""Task routes: create a detection task, read it, list tasks, cancel."""

from __future__ import annotations

from datetime import UTC

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.errors import InvalidRequest
from facemint_core.taskview import public_task
from facemint_core.timeutil import iso, parse_iso
from facemint_core.vocab import MEDIA_KINDS, STATUS_NAMES, STATUSES
from facemint_gateway.contract.base import parse
from facemint_gateway.contract.tasks import (
    CancelledTask,
    CreateDetectionTask,
    TaskCreated,
    TaskList,
    TaskListQuery,
    TaskQuery,
    TaskReply,
)
from facemint_gateway.http import account_id, created, ok, read_body, request_id
from facemint_gateway.idempotency import creation_id
from facemint_gateway.routes_account import caller
from facemint_gateway.services import services


async def create_detection_task(request: Request) -> Response:
    """POST /v1/create-detection-task (the creation id makes the RPC safe to repeat, see ADR 9)."""
    svc = services(request)
    settings = svc.settings
    context = {"metadata_max_bytes": settings.metadata_max_bytes, "allow_http_callbacks": settings.allow_http_callbacks}
    spec = (await read_body(request, CreateDetectionTask, settings.max_body_bytes, context=context)).task_spec()
    account = caller(request)
    if spec["recognize"]:  # 404 now rather than a failed task later (a library deleted meanwhile still fails it)
        await svc.call(
            svc.library.GetLibrary,
            library_pb2.GetLibraryRequest(account_id=account_id(request), library_id=spec["library_id"]),
        )
    task = await svc.call(
        svc.tasks.CreateTask,
        orchestrator_pb2.CreateTaskRequest(
            account_id=account_id(request),
            request_id=request_id(request),
            spec=orchestrator_pb2.TaskSpec(**spec),
            creation_id=creation_id(request.scope),
            limits=orchestrator_pb2.TaskLimits(
                concurrent_tasks=account.limits.concurrent_tasks,
                monthly_minutes=account.limits.monthly_minutes,
                plan=account.plan,
                retry_after_seconds=svc.settings.accounts.task_retry_after_seconds,
            ),
        ),
    )
    return created(
        request,
        TaskCreated,
        {
            "task_id": task.task_id,
            "status": STATUS_NAMES[task.status],
            "created_at": iso(task.created_at.ToDatetime(UTC)),
            "estimated_seconds": task.estimated_seconds,
        },
        f"/v1/task/{task.task_id}",
    )


async def get_task(request: Request) -> Response:
    """GET /v1/task/{task_id}[?wait=seconds] (``wait``: long poll, answered as soon as the task is terminal)."""
    svc = services(request)
    account, task_id = account_id(request), request.path_params["task_id"]
    context = {"max_wait_seconds": svc.settings.max_task_wait_seconds}
    wait = parse(TaskQuery, dict(request.query_params), context).wait
    view = svc.terminal_tasks.get(account, task_id)
    if view is None:
        task = await svc.call(
            svc.tasks.GetTask,
            orchestrator_pb2.GetTaskRequest(account_id=account, task_id=task_id, wait_seconds=wait),
            timeout=svc.settings.rpc_timeout_seconds + wait,
        )
        view = public_task(task, raw_result=True)
        svc.terminal_tasks.put(account, task, view)
    return ok(request, TaskReply, view)


async def list_tasks(request: Request) -> Response:
    """GET /v1/tasks?status=&type=&created_after=&limit=&cursor=&include=result.

    Items are summaries (``result_summary`` instead of ``result``) unless ``include=result`` asks for the results.
    """
    svc = services(request)
    q = parse(TaskListQuery, dict(request.query_params))
    query = orchestrator_pb2.ListTasksRequest(
        account_id=account_id(request),
        status=STATUSES[q.status] if q.status else orchestrator_pb2.TASK_STATUS_UNSPECIFIED,
        kind=MEDIA_KINDS[q.type] if q.type else common_pb2.MEDIA_KIND_UNSPECIFIED,
        limit=q.limit,
        cursor=q.cursor,
    )
    if q.created_after:
        try:
            query.created_after.FromDatetime(parse_iso(q.created_after))
        except ValueError:
            raise InvalidRequest("'created_after' must be an ISO-8601 timestamp") from None
    page = await svc.call(svc.tasks.ListTasks, query)
    tasks = [public_task(t, full=q.include == "result") for t in page.tasks]
    return ok(request, TaskList, {"tasks": tasks, "next_cursor": page.next_cursor or None})


async def cancel_task(request: Request) -> Response:
    """POST /v1/task/{task_id}/cancel."""
    svc = services(request)
    task = await svc.call(
        svc.tasks.CancelTask,
        orchestrator_pb2.CancelTaskRequest(account_id=account_id(request), task_id=request.path_params["task_id"]),
    )
    return ok(request, CancelledTask, {"task_id": task.task_id, "status": STATUS_NAMES[task.status]})


def routes() -> list[BaseRoute]:
    """The task routes."""
    return [
        Route("/v1/create-detection-task", create_detection_task, methods=["POST"]),
        Route("/v1/task/{task_id}", get_task, methods=["GET"]),
        Route("/v1/tasks", list_tasks, methods=["GET"]),
        Route("/v1/task/{task_id}/cancel", cancel_task, methods=["POST"]),
    ]
