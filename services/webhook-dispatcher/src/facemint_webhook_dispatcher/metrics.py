"""Prometheus metrics of the webhook dispatcher."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from facemint_core.metrics import LATENCY_BUCKETS

_PREFIX = "facemint_webhook_dispatcher"

DELIVERIES = Counter(
    f"{_PREFIX}_deliveries_total",
    "Delivery attempts by outcome: delivered, gone, retry (failed, another attempt is scheduled), failed (given up)",
    ["outcome"],
)
DELIVERY_SECONDS = Histogram(
    f"{_PREFIX}_delivery_seconds", "Latency of one delivery attempt's HTTP request", buckets=LATENCY_BUCKETS
)
BACKLOG = Gauge(f"{_PREFIX}_backlog_deliveries", "Deliveries waiting for an attempt or in flight")
OLDEST_PENDING_AGE = Gauge(
    f"{_PREFIX}_oldest_pending_age_seconds",
    "Age of the oldest pending delivery, from its task's terminal state (0 when none is pending)",
)
LAG_SECONDS = Histogram(
    f"{_PREFIX}_lag_seconds",
    "Time from a task's terminal state to the first attempt of its webhook",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
EVENTS = Counter(f"{_PREFIX}_events_total", "Task events consumed, by what was done with them", ["action"])
