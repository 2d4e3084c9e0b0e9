"""Consumption of terminal task events: each event with a ``callback_url`` becomes one stored delivery.

The delivery row is inserted before the event is acknowledged, and the insert is idempotent per task and event, so
an event that JetStream delivers twice (a lost ack, a restart) still yields exactly one delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC

from nats.aio.msg import Msg

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.jetstream import Poison
from facemint_core.logging import task_id_var
from facemint_core.tracing import current_traceparent
from facemint_core.vocab import STATUS_NAMES, TERMINAL_STATUSES
from facemint_webhook_dispatcher import metrics
from facemint_webhook_dispatcher.schedule import draw_delays
from facemint_webhook_dispatcher.settings import ScheduleSettings
from facemint_webhook_dispatcher.store import DeliveryStore, NewDelivery, build_payload

log = logging.getLogger(__name__)


class EventHandler:
    """The PullWorker handler of ``facemint.events.task.*`` messages."""

    def __init__(self, store: DeliveryStore, schedule: ScheduleSettings, on_inserted: Callable[[], None]) -> None:
        self.store = store
        self.schedule = schedule
        self.on_inserted = on_inserted

    async def __call__(self, msg: Msg) -> None:
        """Store the delivery of one event (returning acks the message; Poison terminates a malformed one)."""
        try:
            event = orchestrator_pb2.TaskEvent.FromString(msg.data)
        except Exception as exc:
            raise Poison(f"undecodable TaskEvent: {exc}") from None
        task_id_var.set(event.task_id)
        if event.status not in TERMINAL_STATUSES or not event.callback_url:
            metrics.EVENTS.labels("skipped").inc()
            return
        try:
            payload = build_payload(event.event, event.task_id, STATUS_NAMES[event.status], event.task.json)
            event_at = event.occurred_at.ToDatetime(UTC) if event.HasField("occurred_at") else None
        except ValueError as exc:
            raise Poison(f"malformed TaskEvent of task {event.task_id}: {exc}") from None
        new = NewDelivery(
            account_id=event.account_id,
            task_id=event.task_id,
            event=event.event,
            url=event.callback_url,
            payload=payload,
            schedule_seconds=draw_delays(self.schedule),
            event_at=event_at,
            traceparent=current_traceparent(),
        )
        inserted = await self.store.insert(new)
        if inserted:
            metrics.EVENTS.labels("scheduled").inc()
            self.on_inserted()
        else:
            metrics.EVENTS.labels("duplicate").inc()
            log.info("event already has a delivery", extra={"event": event.event})
