"""Webhook deliveries of a task, redelivery, and the account's signing secret."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from facemint_core.vocab import MAX_WEBHOOK_SECRET_GRACE_SECONDS
from facemint_gateway.contract.base import Reply, ReplyModel, RequestModel, Timestamp


class RotateWebhookSecret(RequestModel):
    """The body of ``POST /v1/webhook-secret/rotate`` (may be empty)."""

    grace_seconds: int | None = Field(
        None,
        ge=0,
        le=MAX_WEBHOOK_SECRET_GRACE_SECONDS,
        description="How long deliveries are also signed with the old secret.",
    )

    examples = [{"grace_seconds": 86400}]


class DeliveryAttempt(ReplyModel):
    """One HTTP attempt of a delivery."""

    number: int
    attempted_at: Timestamp
    status_code: int | None = Field(description="The receiver's status; null when no answer came.")
    latency_seconds: float | None
    error: str | None


class Delivery(ReplyModel):
    """A webhook delivery of a task and its attempts."""

    delivery_id: str
    event: str
    url: str
    state: Literal["pending", "delivered", "failed", "gone"] = Field(
        description="gone: the receiver answered 410, no further attempts."
    )
    redelivery_of: str | None
    max_attempts: int
    next_attempt_at: Timestamp | None
    created_at: Timestamp
    completed_at: Timestamp | None
    attempts: list[DeliveryAttempt]

    examples = [
        {"delivery_id": "dlv_01J9ZC9A1B", "event": "task.succeeded", "url": "https://your-site.example/cb",
         "state": "delivered", "redelivery_of": None, "max_attempts": 9, "next_attempt_at": None,
         "created_at": "2026-04-21T09:30:02Z", "completed_at": "2026-04-21T09:30:02Z",
         "attempts": [{"number": 1, "attempted_at": "2026-04-21T09:30:02Z", "status_code": 200,
                       "latency_seconds": 0.0841, "error": None}]}
    ]  # fmt: skip


class Deliveries(Reply):
    """``GET /v1/task/{task_id}/deliveries``."""

    task_id: str
    deliveries: list[Delivery]

    examples = [{"request_id": "req_7f2b1a4c8d", "task_id": "task_0195e3ab6f4a7c2d", "deliveries": Delivery.examples}]


class Redelivery(Reply):
    """``202`` of ``POST /v1/task/{task_id}/redeliver``: the new delivery, queued."""

    task_id: str
    delivery: Delivery

    examples = [
        {"request_id": "req_7f2b1a4c8d", "task_id": "task_0195e3ab6f4a7c2d",
         "delivery": {**Delivery.examples[0], "delivery_id": "dlv_01J9ZD0C2D", "state": "pending",
                      "redelivery_of": "dlv_01J9ZC9A1B", "next_attempt_at": "2026-04-21T11:00:00Z",
                      "completed_at": None, "attempts": []}}
    ]  # fmt: skip


class WebhookSecret(Reply):
    """The account's signing secret and, during a rotation, the previous one."""

    webhook_secret: str
    previous_webhook_secret: str | None
    previous_expires_at: Timestamp | None
    rotated_at: Timestamp | None

    examples = [
        {"request_id": "req_7f2b1a4c8d", "webhook_secret": "whsec_5b1e0c4f9a7d4e2b8c6a3f1d0e9b7c5a",
         "previous_webhook_secret": None, "previous_expires_at": None, "rotated_at": None}
    ]  # fmt: skip
