"""The WebhookService gRPC API: the delivery log, redelivery, and the account's signing secret."""

from __future__ import annotations

import grpc

from facemint.webhook.v1 import webhook_pb2, webhook_pb2_grpc
from facemint_core.errors import InvalidRequest
from facemint_core.vocab import MAX_WEBHOOK_SECRET_GRACE_SECONDS
from facemint_webhook_dispatcher.schedule import draw_delays
from facemint_webhook_dispatcher.scheduler import Scheduler
from facemint_webhook_dispatcher.settings import WebhookSettings
from facemint_webhook_dispatcher.signing import generate_secret
from facemint_webhook_dispatcher.store import DeliveryStore


def _require(**fields: str) -> None:
    missing = [name for name, value in fields.items() if not value]
    if missing:
        raise InvalidRequest(f"missing {', '.join(missing)}")


class WebhookService(webhook_pb2_grpc.WebhookServiceServicer):  # type: ignore[misc]  # generated code is not followed
    """Reads the delivery log, schedules redeliveries, reads and rotates secrets."""

    def __init__(self, settings: WebhookSettings, store: DeliveryStore, scheduler: Scheduler) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler

    async def ListDeliveries(  # noqa: N802 - gRPC method name
        self, request: webhook_pb2.ListDeliveriesRequest, context: grpc.aio.ServicerContext
    ) -> webhook_pb2.ListDeliveriesResponse:
        """Every delivery of one of the caller's tasks, with its attempts."""
        _require(account_id=request.account_id, task_id=request.task_id)
        deliveries = await self.store.list_for_task(request.account_id, request.task_id)
        return webhook_pb2.ListDeliveriesResponse(deliveries=deliveries)

    async def Redeliver(  # noqa: N802
        self, request: webhook_pb2.RedeliverRequest, context: grpc.aio.ServicerContext
    ) -> webhook_pb2.Delivery:
        """Send a task's webhook again (see DeliveryStore.redeliver)."""
        _require(account_id=request.account_id, task_id=request.task_id)
        delivery = await self.store.redeliver(request.account_id, request.task_id, draw_delays(self.settings.schedule))
        self.scheduler.wake()
        return delivery

    async def GetWebhookSecret(  # noqa: N802
        self, request: webhook_pb2.GetWebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> webhook_pb2.WebhookSecret:
        """The account's signing secret(s)."""
        _require(account_id=request.account_id)
        return await self.store.get_secret(request.account_id)

    async def RotateWebhookSecret(  # noqa: N802
        self, request: webhook_pb2.RotateWebhookSecretRequest, context: grpc.aio.ServicerContext
    ) -> webhook_pb2.WebhookSecret:
        """Generate a new secret; the old one keeps signing for the grace period."""
        _require(account_id=request.account_id)
        grace = request.grace_seconds if request.HasField("grace_seconds") else self.settings.rotation_grace_seconds
        if not 0 <= grace <= MAX_WEBHOOK_SECRET_GRACE_SECONDS:
            raise InvalidRequest(f"'grace_seconds' must be from 0 to {MAX_WEBHOOK_SECRET_GRACE_SECONDS}")
        return await self.store.rotate_secret(request.account_id, generate_secret(), grace)
