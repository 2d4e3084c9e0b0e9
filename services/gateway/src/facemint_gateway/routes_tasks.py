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
from facemint_core.vocab import MEDIA_KINDS, STATUS_NAMES, STATUSES, TASK_STATUSES, TASK_TYPES
from facemint_gateway.http import account_id, created, json_body, ok, request_id
from facemint_gateway.idempotency import creation_id
from facemint_gateway.routes_account import caller
from facemint_gateway.services import services
from facemint_gateway.validation import list_limit, validate_detection_task


async def create_detection_task(request: Request) -> Response:
    """POST /v1/create-detection-task (the creation id makes the RPC safe to repeat, see ADR 9)."""
    svc = services(request)
    body = await json_body(request, svc.settings.max_body_bytes)
    spec = validate_detection_task(body, svc.settings.metadata_max_bytes, svc.settings.allow_http_callbacks)
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
        {
            "task_id": task.task_id,
            "status": STATUS_NAMES[task.status],
            "created_at": iso(task.created_at.ToDatetime(UTC)),
            "estimated_seconds": task.estimated_seconds,
        },
        f"/v1/task/{task.task_id}",
    )


def _wait_seconds(request: Request, limit: float) -> float:
    """The optional ``wait`` query parameter: seconds to hold the answer until the task is terminal."""
    raw = request.query_params.get("wait", "")
    if not raw:
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= limit:  # also false for NaN
        raise InvalidRequest(f"'wait' must be a number of seconds from 0 to {limit:g}, got {raw!r}")
    return wait


async def get_task(request: Request) -> Response:
    """GET /v1/task/{task_id}[?wait=seconds] (``wait``: long poll, answered as soon as the task is terminal)."""
    svc = services(request)
    account, task_id = account_id(request), request.path_params["task_id"]
    wait = _wait_seconds(request, svc.settings.max_task_wait_seconds)
    view = svc.terminal_tasks.get(account, task_id)
    if view is None:
        task = await svc.call(
            svc.tasks.GetTask,
            orchestrator_pb2.GetTaskRequest(account_id=account, task_id=task_id, wait_seconds=wait),
            timeout=svc.settings.rpc_timeout_seconds + wait,
        )
        view = public_task(task, raw_result=True)
        svc.terminal_tasks.put(account, task, view)
    return ok(request, view)


async def list_tasks(request: Request) -> Response:
    """GET /v1/tasks?status=&type=&created_after=&limit=&cursor=&include=result.

    Items are summaries (``result_summary`` instead of ``result``) unless ``include=result`` asks for the results.
    """
    svc = services(request)
    q = request.query_params
    status, task_type, created_after = q.get("status", ""), q.get("type", ""), q.get("created_after", "")
    include = q.get("include", "")
    if include not in ("", "result"):
        raise InvalidRequest("'include' must be 'result' (or absent for summaries)")
    if status and status not in TASK_STATUSES:
        raise InvalidRequest(f"'status' must be one of {', '.join(TASK_STATUSES)}")
    if task_type and task_type not in TASK_TYPES:
        raise InvalidRequest(f"'type' must be one of {', '.join(TASK_TYPES)}")
    query = orchestrator_pb2.ListTasksRequest(
        account_id=account_id(request),
        status=STATUSES.get(status, orchestrator_pb2.TASK_STATUS_UNSPECIFIED),
        kind=MEDIA_KINDS.get(task_type, common_pb2.MEDIA_KIND_UNSPECIFIED),
        limit=list_limit(q.get("limit")),
        cursor=q.get("cursor", ""),
    )
    if created_after:
        try:
            query.created_after.FromDatetime(parse_iso(created_after))
        except ValueError:
            raise InvalidRequest("'created_after' must be an ISO-8601 timestamp") from None
    page = await svc.call(svc.tasks.ListTasks, query)
    tasks = [public_task(t, full=include == "result") for t in page.tasks]
    return ok(request, {"tasks": tasks, "next_cursor": page.next_cursor or None})


async def cancel_task(request: Request) -> Response:
    """POST /v1/task/{task_id}/cancel."""
    svc = services(request)
    task = await svc.call(
        svc.tasks.CancelTask,
        orchestrator_pb2.CancelTaskRequest(account_id=account_id(request), task_id=request.path_params["task_id"]),
    )
    return ok(request, {"task_id": task.task_id, "status": STATUS_NAMES[task.status]})


def routes() -> list[BaseRoute]:
    """The task routes."""
    return [
        Route("/v1/create-detection-task", create_detection_task, methods=["POST"]),
        Route("/v1/task/{task_id}", get_task, methods=["GET"]),
        Route("/v1/tasks", list_tasks, methods=["GET"]),
        Route("/v1/task/{task_id}/cancel", cancel_task, methods=["POST"]),
    ]
