"""NATS JetStream helpers: idempotent streams and consumers, de-duplicated publishing, a durable pull worker.

The worker's handler decides each message's fate by returning normally (ack) or raising
:class:`Retry` (nak with a delay), or :class:`Poison` (term: never redelivered). Any other exception is treated
as a retry with exponential backoff, until ``max_deliver`` is reached, when the message is termed and
``on_poison`` is called so that the owner can record the failure. Long work is kept alive with
``in_progress()`` heartbeats.

Messages carry the publisher's trace context in their headers (``traceparent``), and each message is handled inside a
consumer span that continues it. Each worker exports its consumer's state, read from JetStream every
``stats_interval_seconds``, as ``facemint_jetstream_consumer_{pending,ack_pending,redelivered}_messages`` and counts
the messages it terminates in ``facemint_jetstream_terminated_messages_total`` (labels ``stream`` and ``consumer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError, ServiceUnavailableError
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge

from facemint_core import tracing
from facemint_core.settings import NatsSettings

log = logging.getLogger(__name__)

_LABELS = ["stream", "consumer"]
CONSUMER_PENDING = Gauge(
    "facemint_jetstream_consumer_pending_messages",
    "Messages of the stream not yet delivered to the consumer (lag)",
    _LABELS,
)
CONSUMER_ACK_PENDING = Gauge(
    "facemint_jetstream_consumer_ack_pending_messages", "Messages delivered to the consumer and not yet acked", _LABELS
)
CONSUMER_REDELIVERED = Gauge(
    "facemint_jetstream_consumer_redelivered_messages",
    "Messages of the consumer delivered more than once and not yet acked",
    _LABELS,
)
TERMINATED = Counter(
    "facemint_jetstream_terminated_messages_total",
    "Poison messages terminated by this process (undecodable, or given up after max_deliver attempts)",
    _LABELS,
)


class Retry(Exception):
    """Handler outcome: the message should be redelivered after ``delay`` seconds."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class Poison(Exception):
    """Handler outcome: the message can never succeed; terminate it."""


def tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    """The TLS context ``settings`` ask for (server verified against ``tls_ca_file``), or None for plain TCP."""
    if settings.tls_ca_file is None:
        return None
    context = ssl.create_default_context(cafile=str(settings.tls_ca_file))
    if settings.tls_cert_file is not None:
        context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file or settings.tls_cert_file))
    return context


async def connect(
    settings: NatsSettings,
    name: str,
    *,
    on_disconnect: Callable[[], Awaitable[None]] | None = None,
    on_reconnect: Callable[[], Awaitable[None]] | None = None,
) -> NatsClient:
    """Connect to NATS, reconnecting forever in the background after a first successful connection.

    User and password, when the server wants them, travel in the URL (``nats://user:password@host:4222``).
    ``on_disconnect`` and ``on_reconnect`` run inside the client's reconnect loop: they must return quickly.
    """
    return await nats.connect(
        [url.strip() for url in settings.url.split(",")],
        name=f"facemint-{name}",
        connect_timeout=settings.connect_timeout_seconds,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        tls=tls_context(settings),
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
    )


def stream_check(nc: NatsClient, js: JetStreamContext, stream: str) -> Callable[[], Awaitable[None]]:
    """A readiness check that the stream exists; it fails at once while the connection is down instead of waiting
    for a request's timeout."""

    async def check() -> None:
        if not nc.is_connected:
            raise ConnectionError("NATS disconnected")
        await js.stream_info(stream)

    return check


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    work_queue: bool = False,
    max_age_seconds: float = 7 * 24 * 3600,
    duplicate_window_seconds: float = 3600,
    replicas: int = 1,
) -> None:
    """Create the stream, or update it in place when it exists (safe to call from every replica).

    An existing stream keeps its replica count when that is higher than ``replicas``: a restart with a default
    setting never shrinks a stream an operator replicated.
    """
    config = StreamConfig(
        name=name,
        subjects=subjects,
        retention=RetentionPolicy.WORK_QUEUE if work_queue else RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_seconds,
        duplicate_window=duplicate_window_seconds,
        num_replicas=replicas,
    )

    async def apply() -> None:
        try:
            info = await js.stream_info(name)
        except NotFoundError:
            await js.add_stream(config)
            return
        config.num_replicas = max(replicas, info.config.num_replicas or 1)
        await js.update_stream(config)

    await _while_electing(apply, f"stream {name}")


ELECTION_WAIT_SECONDS = 30.0
"""How long setup waits for JetStream's API to answer after a cluster node was lost (a new stream leader is elected
within seconds); a service that gave up at once would crash-loop under its supervisor meanwhile."""


async def _while_electing(call: Callable[[], Awaitable[None]], what: str) -> None:
    """Run a JetStream API call, again while the cluster answers with timeouts or "unavailable" (no leader yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ELECTION_WAIT_SECONDS
    while True:
        try:
            await call()
            return
        except (NatsTimeoutError, ServiceUnavailableError) as exc:
            if loop.time() >= deadline:
                raise
            log.warning("JetStream not answering for %s (%s); retrying", what, type(exc).__name__)
            await asyncio.sleep(1.0)


async def ensure_pull_consumer(
    js: JetStreamContext,
    stream: str,
    durable: str,
    *,
    filter_subject: str | None = None,
    ack_wait_seconds: float = 30.0,
    max_deliver: int = 5,
    max_ack_pending: int = 64,
) -> None:
    """Create a durable pull consumer with explicit ack, or leave an existing one as it is."""

    async def apply() -> None:
        try:
            await js.consumer_info(stream, durable)
            return
        except NotFoundError:
            pass
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                filter_subject=filter_subject,
                ack_wait=ack_wait_seconds,
                max_deliver=max_deliver,
                max_ack_pending=max_ack_pending,
            ),
        )

    await _while_electing(apply, f"consumer {durable}")


async def publish(js: JetStreamContext, subject: str, payload: bytes, msg_id: str) -> None:
    """Publish with ``Nats-Msg-Id`` so that a retried publish within the duplicate window is stored once, and with
    the current trace context."""
    await js.publish(subject, payload, headers=dict(tracing.inject({"Nats-Msg-Id": msg_id})))


Handler = Callable[[Msg], Awaitable[None]]


def backoff_delay(attempt: int, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff for the n-th delivery (1-based)."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))


class PullWorker:
    """A durable pull-consumer loop running up to ``concurrency`` handlers at a time."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        durable: str,
        handler: Handler,
        *,
        concurrency: int = 1,
        ack_wait_seconds: float = 30.0,
        max_deliver: int = 5,
        on_poison: Callable[[Msg, str], Awaitable[None]] | None = None,
        backoff_base_seconds: float = 1.0,
        stats_interval_seconds: float = 5.0,
    ) -> None:
        self.js = js
        self.stream = stream
        self.durable = durable
        self.handler = handler
        self.concurrency = concurrency
        self.ack_wait = ack_wait_seconds
        self.max_deliver = max_deliver
        self.on_poison = on_poison
        self.backoff_base = backoff_base_seconds
        self._stopping = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._sub: Any = None
        self.stats_interval = stats_interval_seconds
        self._stats_task: asyncio.Task[None] | None = None
        self._terminated = TERMINATED.labels(stream, durable)

    def start(self) -> None:
        """Start fetching, and exporting the consumer's state, in the background."""
        self._loop_task = asyncio.create_task(self._run())
        self._stats_task = asyncio.create_task(self._export_stats())

    async def _export_stats(self) -> None:
        labels = (self.stream, self.durable)
        while True:
            try:
                info = await self.js.consumer_info(self.stream, self.durable)
            except Exception as exc:  # noqa: BLE001 - NATS away: keep the last values, try again later
                log.debug("consumer info failed", extra={"consumer": self.durable, "error": str(exc)})
            else:
                CONSUMER_PENDING.labels(*labels).set(info.num_pending or 0)
                CONSUMER_ACK_PENDING.labels(*labels).set(info.num_ack_pending or 0)
                CONSUMER_REDELIVERED.labels(*labels).set(info.num_redelivered or 0)
            await asyncio.sleep(self.stats_interval)

    async def _run(self) -> None:
        sub = self._sub = await self.js.pull_subscribe_bind(self.durable, self.stream)
        while not self._stopping.is_set():
            await self._slots.acquire()
            if self._stopping.is_set():
                self._slots.release()
                break
            batch = 1
            while batch < self.concurrency and not self._slots.locked():
                await self._slots.acquire()  # a free slot: returns at once
                batch += 1
            msgs: list[Msg] = []
            try:
                msgs = await sub.fetch(batch, timeout=1.0)
            except (TimeoutError, NatsTimeoutError):
                pass
            except Exception:
                log.exception("fetch failed", extra={"consumer": self.durable})
                await asyncio.sleep(1.0)
            for _ in range(batch - len(msgs)):
                self._slots.release()
            for msg in msgs:
                task = asyncio.create_task(self._handle(msg))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _heartbeat(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(max(0.5, self.ack_wait / 3))
            with contextlib.suppress(Exception):
                await msg.in_progress()

    async def _handle(self, msg: Msg) -> None:
        delivered = msg.metadata.num_delivered or 1
        attributes = {"messaging.system": "nats", "messaging.destination.name": msg.subject,
                      "messaging.consumer.group.name": self.durable, "messaging.nats.delivery": delivered}  # fmt: skip
        with tracing.span(f"process {msg.subject}", attributes, parent=tracing.extract(msg.headers),
                          kind=SpanKind.CONSUMER):  # fmt: skip
            await self._settle(msg, delivered)

    async def _settle(self, msg: Msg, delivered: int) -> None:
        beat = asyncio.create_task(self._heartbeat(msg))
        try:
            await self.handler(msg)
        except Poison as exc:
            await self._poison(msg, str(exc))
        except Retry as exc:
            if delivered >= self.max_deliver:
                await self._poison(msg, f"gave up after {delivered} attempts: {exc}")
            else:
                await msg.nak(delay=exc.delay if exc.delay is not None else backoff_delay(delivered, self.backoff_base))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await msg.nak()
            raise
        except Exception as exc:
            log.exception("handler failed", extra={"consumer": self.durable, "delivery": delivered})
            if delivered >= self.max_deliver:
                await self._poison(msg, f"gave up after {delivered} attempts: {exc}")
            else:
                await msg.nak(delay=backoff_delay(delivered, self.backoff_base))
        else:
            await msg.ack()
        finally:
            beat.cancel()
            self._slots.release()

    async def _poison(self, msg: Msg, reason: str) -> None:
        log.error("terminating poison message", extra={"consumer": self.durable, "reason": reason})
        if self.on_poison is not None:
            await self.on_poison(msg, reason)
        await msg.term()
        self._terminated.inc()

    async def stop(self, grace: float) -> None:
        """Stop fetching; give in-flight handlers ``grace`` seconds, then cancel them (their messages are nak'ed)."""
        self._stopping.set()
        if self._stats_task is not None:
            self._stats_task.cancel()
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._loop_task
        if self._inflight:
            _, pending = await asyncio.wait(self._inflight, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2.0)
        if self._sub is not None:
            # An idle pull subscription would otherwise block the connection's drain.
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()


async def drain(nc: NatsClient, timeout: float = 5.0) -> None:
    """Drain a connection (flush publishes, let subscriptions finish, close); close it outright after ``timeout``."""
    try:
        await asyncio.wait_for(nc.drain(), timeout)
    except Exception:
        log.warning("NATS drain did not complete; closing the connection")
        with contextlib.suppress(Exception):
            await nc.close()
