"""The scheduler loop: claims due deliveries, POSTs them, records each attempt and schedules the next one.

Outcomes of an attempt:

- any 2xx within the timeout: ``delivered``;
- 410 Gone: ``gone``, no further attempts;
- a refusal by the outbound policy (scheme, blocked address): ``failed`` at once, retrying cannot help;
- anything else (other statuses, redirects, timeouts, connection errors): another attempt after the stored
  backoff delay, until ``max_attempts``, then ``failed``.

The loop wakes up when an event inserts a delivery or a redelivery is requested, when an attempt finishes while
more deliveries are due than there were free slots, and at least every poll interval (retries that fall due).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlsplit

from opentelemetry.trace import Span, SpanKind

from facemint_core import tracing
from facemint_core.logging import task_id_var
from facemint_core.timeutil import utcnow
from facemint_webhook_dispatcher import metrics
from facemint_webhook_dispatcher.outbound import PostOutcome, WebhookSender
from facemint_webhook_dispatcher.settings import WebhookSettings
from facemint_webhook_dispatcher.signing import delivery_headers
from facemint_webhook_dispatcher.store import DELIVERED, FAILED, GONE, PENDING, Claim, DeliveryStore

log = logging.getLogger(__name__)


def decide(outcome: PostOutcome, number: int, max_attempts: int) -> str:
    """The delivery's state after an attempt with this outcome."""
    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        return DELIVERED
    if code == 410:
        return GONE
    if outcome.permanent or number >= max_attempts:
        return FAILED
    return PENDING


class Scheduler:
    """Runs delivery attempts, at most ``concurrency`` at a time."""

    def __init__(self, settings: WebhookSettings, store: DeliveryStore, sender: WebhookSender) -> None:
        self.settings = settings
        self.store = store
        self.sender = sender
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._backlog = False
        self._maintained_at = 0.0

    def wake(self) -> None:
        """Look for due deliveries now (a delivery was inserted or made due)."""
        self._wake.set()

    def start(self) -> None:
        """Start the loop in the background."""
        self._loop_task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        poll = self.settings.poll_interval_seconds
        while not self._stopping:
            self._wake.clear()
            try:
                free = self.settings.concurrency - len(self._inflight)
                if free > 0:
                    await self._claim(free)
                if time.monotonic() - self._maintained_at >= poll:
                    await self._maintain()
            except Exception:
                log.exception("claiming due deliveries failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll)

    async def _claim(self, limit: int) -> None:
        claims = await self.store.claim(limit, self.settings.lease_seconds)
        for claim in claims:
            task = asyncio.create_task(self._attempt(claim))
            self._inflight.add(task)
            task.add_done_callback(self._done)
        # More may be due than there were free slots: claim again as soon as an attempt finishes.
        self._backlog = len(claims) == limit

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        if self._backlog:
            self._wake.set()

    async def _maintain(self) -> None:
        """Give up deliveries whose last attempt was interrupted, and refresh the backlog gauges."""
        self._maintained_at = time.monotonic()
        exhausted = await self.store.expire_interrupted()
        if exhausted:
            metrics.DELIVERIES.labels(FAILED).inc(exhausted)
        count, oldest_age = await self.store.backlog()
        metrics.BACKLOG.set(count)
        metrics.OLDEST_PENDING_AGE.set(oldest_age)

    async def _attempt(self, claim: Claim) -> None:
        task_id_var.set(claim.task_id)
        attributes = {
            "facemint.task_id": claim.task_id,
            "facemint.delivery_id": claim.delivery_id,
            "facemint.webhook.attempt": claim.number,
            "server.address": urlsplit(claim.url).hostname or "",
        }
        try:
            with tracing.span("webhook attempt", attributes, parent=tracing.context_from_traceparent(claim.traceparent),
                              kind=SpanKind.CLIENT) as span:  # fmt: skip
                await self._deliver(claim, span)
        except Exception:
            log.exception("webhook attempt not completed (e.g. the database is down); retried when its lease ends")

    async def _deliver(self, claim: Claim, span: Span | None) -> None:
        if claim.number == 1 and claim.original:
            metrics.LAG_SECONDS.observe(max(0.0, (utcnow() - claim.event_at).total_seconds()))
        headers = delivery_headers(
            event=claim.event,
            delivery_id=claim.delivery_id,
            timestamp=int(time.time()),
            body=claim.payload,
            secret=claim.secret,
            previous_secret=claim.previous_secret,
        )
        outcome = await self.sender.post(claim.url, claim.payload, headers)
        metrics.DELIVERY_SECONDS.observe(outcome.latency)
        state = decide(outcome, claim.number, claim.max_attempts)
        tracing.set_attributes(span, {"http.response.status_code": outcome.status_code or 0,
                                      "facemint.webhook.state": state, "error.type": outcome.error})  # fmt: skip
        recorded = await self.store.finish(claim, state, outcome.status_code, outcome.latency, outcome.error)
        if not recorded:
            log.warning("attempt outcome not recorded: its lease was taken over", extra={"attempt": claim.number})
            return
        metrics.DELIVERIES.labels("retry" if state == PENDING else state).inc()
        log.info(
            "webhook attempt",
            extra={
                "delivery_id": claim.delivery_id,
                "attempt": claim.number,
                "status_code": outcome.status_code,
                "error": outcome.error,
                "state": state,
            },
        )

    async def stop(self, grace: float) -> None:
        """Stop claiming; give in-flight attempts ``grace`` seconds, then cancel them (their lease recovers them)."""
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
