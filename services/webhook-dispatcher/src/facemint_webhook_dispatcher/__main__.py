"""Entry point: ``facemint-webhook-dispatcher`` (or ``python -m facemint_webhook_dispatcher``)."""

from __future__ import annotations

from facemint.webhook.v1 import webhook_pb2_grpc
from facemint_core import streams
from facemint_core.grpcutil import start_grpc_server
from facemint_core.jetstream import PullWorker, ensure_pull_consumer, stream_check
from facemint_core.lifecycle import ServiceRuntime, open_database, open_nats, run_service
from facemint_core.settings import load_settings
from facemint_webhook_dispatcher.events import EventHandler
from facemint_webhook_dispatcher.outbound import WebhookSender
from facemint_webhook_dispatcher.scheduler import Scheduler
from facemint_webhook_dispatcher.servicer import WebhookService
from facemint_webhook_dispatcher.settings import WebhookSettings
from facemint_webhook_dispatcher.store import DeliveryStore

EVENTS_FILTER = "facemint.events.task.>"


async def setup(runtime: ServiceRuntime) -> None:
    """Open the pool and NATS, start the scheduler, the event consumer and the gRPC server."""
    settings = runtime.settings
    assert isinstance(settings, WebhookSettings)
    pool = await open_database(runtime, settings.database, "webhook-dispatcher" if settings.apply_migrations else None)
    nc = await open_nats(runtime, settings.nats)
    js = nc.jetstream()
    await streams.ensure_events_stream(js, settings.nats.stream_replicas)
    ecfg = settings.events
    await ensure_pull_consumer(
        js,
        streams.EVENTS_STREAM,
        ecfg.durable,
        filter_subject=EVENTS_FILTER,
        ack_wait_seconds=ecfg.ack_wait_seconds,
        max_deliver=ecfg.max_deliver,
        max_ack_pending=max(64, 4 * ecfg.concurrency),
    )

    store = DeliveryStore(pool)
    sender = WebhookSender(settings)
    scheduler = Scheduler(settings, store, sender)
    puller = PullWorker(
        js,
        streams.EVENTS_STREAM,
        ecfg.durable,
        EventHandler(store, settings.schedule, scheduler.wake),
        concurrency=ecfg.concurrency,
        ack_wait_seconds=ecfg.ack_wait_seconds,
        max_deliver=ecfg.max_deliver,
        backoff_base_seconds=ecfg.backoff_base_seconds,
    )

    runtime.readiness.add("events stream", stream_check(nc, js, streams.EVENTS_STREAM))
    await start_grpc_server(
        runtime,
        lambda server: webhook_pb2_grpc.add_WebhookServiceServicer_to_server(
            WebhookService(settings, store, scheduler), server
        ),
        ["facemint.webhook.v1.WebhookService"],
    )
    scheduler.start()
    puller.start()

    async def stop_work(grace: float) -> None:
        await puller.stop(grace / 2)
        await scheduler.stop(grace / 2)
        await sender.aclose()

    # Registered after the gRPC server, so it runs before it on shutdown: stop taking events, finish attempts.
    runtime.on_stop("dispatcher", stop_work)


def main() -> None:
    """Run the webhook dispatcher until SIGTERM."""
    run_service("webhook-dispatcher", load_settings(WebhookSettings), setup)


if __name__ == "__main__":
    main()
