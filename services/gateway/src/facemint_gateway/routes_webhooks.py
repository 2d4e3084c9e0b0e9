"""Webhook routes: a task's delivery log and redelivery, the account's signing secret and its rotation."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint.webhook.v1 import webhook_pb2
from facemint_gateway.contract import webhooks as contract
from facemint_gateway.http import account_id, ok, read_body
from facemint_gateway.services import services


def delivery_view(delivery: webhook_pb2.Delivery) -> dict[str, Any]:
    """The public JSON of one delivery and its attempts."""
    return {
        "delivery_id": delivery.delivery_id,
        "event": delivery.event,
        "url": delivery.url,
        "state": delivery.state,
        "redelivery_of": delivery.redelivery_of or None,
        "max_attempts": delivery.max_attempts,
        "next_attempt_at": delivery.next_attempt_at or None,
        "created_at": delivery.created_at,
        "completed_at": delivery.completed_at or None,
        "attempts": [
            {
                "number": a.number,
                "attempted_at": a.attempted_at,
                "status_code": a.status_code or None,
                "latency_seconds": round(a.latency_seconds, 4) if a.latency_seconds else None,
                "error": a.error or None,
            }
            for a in delivery.attempts
        ],
    }


def secret_view(secret: webhook_pb2.WebhookSecret) -> dict[str, Any]:
    """The public JSON of the account's signing secrets."""
    return {
        "webhook_secret": secret.secret,
        "previous_webhook_secret": secret.previous_secret or None,
        "previous_expires_at": secret.previous_expires_at or None,
        "rotated_at": secret.rotated_at or None,
    }


async def check_task_owner(request: Request, task_id: str) -> None:
    """NotFound when the task does not exist, Forbidden when it is another account's (the task-orchestrator, which
    owns tasks, decides; the dispatcher sees deliveries only)."""
    svc = services(request)
    await svc.call(svc.tasks.GetTask, orchestrator_pb2.GetTaskRequest(account_id=account_id(request), task_id=task_id))


async def list_deliveries(request: Request) -> Response:
    """GET /v1/task/{task_id}/deliveries."""
    svc = services(request)
    task_id = request.path_params["task_id"]
    await check_task_owner(request, task_id)
    reply = await svc.call(
        svc.webhooks.ListDeliveries,
        webhook_pb2.ListDeliveriesRequest(account_id=account_id(request), task_id=task_id),
    )
    deliveries = [delivery_view(d) for d in reply.deliveries]
    return ok(request, contract.Deliveries, {"task_id": task_id, "deliveries": deliveries})


async def redeliver(request: Request) -> Response:
    """POST /v1/task/{task_id}/redeliver: queue the task's webhook again (202)."""
    svc = services(request)
    task_id = request.path_params["task_id"]
    await check_task_owner(request, task_id)
    delivery = await svc.call(
        svc.webhooks.Redeliver, webhook_pb2.RedeliverRequest(account_id=account_id(request), task_id=task_id)
    )
    return ok(request, contract.Redelivery, {"task_id": task_id, "delivery": delivery_view(delivery)}, status=202)


async def get_secret(request: Request) -> Response:
    """GET /v1/webhook-secret."""
    svc = services(request)
    secret = await svc.call(
        svc.webhooks.GetWebhookSecret, webhook_pb2.GetWebhookSecretRequest(account_id=account_id(request))
    )
    return ok(request, contract.WebhookSecret, secret_view(secret))


async def rotate_secret(request: Request) -> Response:
    """POST /v1/webhook-secret/rotate, with an optional body ``{"grace_seconds": N}``."""
    svc = services(request)
    rotate = webhook_pb2.RotateWebhookSecretRequest(account_id=account_id(request))
    if request.headers.get("content-length", "0") != "0" or "transfer-encoding" in request.headers:
        body = await read_body(request, contract.RotateWebhookSecret, svc.settings.max_body_bytes)
        if body.grace_seconds is not None:
            rotate.grace_seconds = body.grace_seconds
    secret = await svc.call(svc.webhooks.RotateWebhookSecret, rotate)
    return ok(request, contract.WebhookSecret, secret_view(secret))


def routes() -> list[BaseRoute]:
    """The webhook routes."""
    return [
        Route("/v1/task/{task_id}/deliveries", list_deliveries, methods=["GET"]),
        Route("/v1/task/{task_id}/redeliver", redeliver, methods=["POST"]),
        Route("/v1/webhook-secret", get_secret, methods=["GET"]),
        Route("/v1/webhook-secret/rotate", rotate_secret, methods=["POST"]),
    ]
