"""Generate the Grafana dashboards in ``deploy/helm/facemint/files/dashboards/``.

``python -m deploy.render`` writes them; ``python -m deploy.validate`` checks that the committed JSON equals what
this module generates, that every panel's PromQL parses (through ``promtool check rules``) and that every metric a
dashboard queries is part of the metrics contract in docs/operations.md. The chart renders each file into a
ConfigMap labelled for the Grafana sidecar.

Queries use three Grafana variables: ``$datasource`` (a Prometheus data source), ``$namespace`` (the namespaces
Facemint runs in) and, on the services dashboard, ``$service`` (the metric prefix of one gRPC service).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from deploy import COMPONENTS, DASHBOARDS_DIR

Panel = dict[str, Any]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"


@dataclass
class Query:
    """One PromQL target of a panel."""

    expr: str
    legend: str = ""


@dataclass
class Layout:
    """Places panels left to right on a 24-column grid, rows top to bottom."""

    y: int = 0
    x: int = 0
    row_height: int = 0
    next_id: int = 1
    panels: list[Panel] = field(default_factory=list)

    def row(self, title: str) -> None:
        """Start a new collapsible row."""
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "id": self._id(),
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def add(self, panel: Panel, width: int, height: int = 8) -> None:
        """Add a panel of the given size after the previous one, wrapping at 24 columns."""
        if self.x + width > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.panels.append(panel)
        self.x += width
        self.row_height = max(self.row_height, height)

    def _newline(self) -> None:
        self.y += self.row_height
        self.x = 0
        self.row_height = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def _targets(queries: list[Query]) -> list[dict[str, Any]]:
    return [
        {"datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend or "__auto", "refId": chr(ord("A") + i)}
        for i, q in enumerate(queries)
    ]


def timeseries(title: str, queries: list[Query], unit: str, description: str = "", stack: bool = False) -> Panel:
    """A time series panel."""
    custom: dict[str, Any] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stack:
        custom["stacking"] = {"mode": "normal", "group": "A"}
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(
    title: str, query: Query, unit: str, description: str = "", thresholds: list[tuple[str, float]] | None = None
) -> Panel:
    """A single-value panel: green, then each (color, from value) of ``thresholds``."""
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for color, value in thresholds or []]
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets([query]),
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value"},
    }


def quantiles(metric: str, by: str = "", selector: str = NS, qs: tuple[float, ...] = (0.5, 0.95)) -> list[Query]:
    """histogram_quantile queries of a ``*_bucket`` metric, one per quantile."""
    group = f"{by}, le" if by else "le"
    out = []
    for q in qs:
        legend = f"p{round(q * 100)}" + (f" {{{{{by}}}}}" if by else "")
        out.append(Query(f"histogram_quantile({q}, sum by ({group}) (rate({metric}{{{selector}}}[{RATE}])))", legend))
    return out


def datasource_variable() -> dict[str, Any]:
    """The Prometheus data source picker."""
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "refresh": 1,
    }


def namespace_variable() -> dict[str, Any]:
    """The namespaces that run Facemint (any with a scraped Facemint target)."""
    return {
        "name": "namespace",
        "label": "Namespace",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": 'label_values(up{job=~"facemint-.+"}, namespace)', "refId": "namespace"},
        "definition": 'label_values(up{job=~"facemint-.+"}, namespace)',
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {},
        "refresh": 2,
        "sort": 1,
        "hide": 0,
    }


def dashboard(uid: str, title: str, description: str, panels: list[Panel], variables: list[dict[str, Any]]) -> Panel:
    """A complete dashboard document."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["facemint"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def overview() -> Panel:
    """The platform overview: API, tasks, inference, media and webhooks."""
    g = "facemint_gateway_http_requests_total"
    t = "facemint_task_orchestrator_tasks_total"
    w = "facemint_webhook_dispatcher_deliveries_total"
    lay = Layout()
    lay.row("Availability")
    lay.add(
        stat(
            "Targets up",
            Query(f'sum(up{{job=~"facemint-.+", {NS}}})'),
            "none",
            "Scraped Facemint instances that answer.",
        ),
        width=4,
        height=4,
    )
    lay.add(
        stat(
            "Targets down",
            Query(f'count(up{{job=~"facemint-.+", {NS}}} == 0) or vector(0)'),
            "none",
            "Scraped Facemint instances that do not answer (alert: FacemintServiceDown).",
            thresholds=[("red", 1)],
        ),
        width=4,
        height=4,
    )
    lay.add(
        stat(
            "API requests/s",
            Query(f"sum(rate({g}{{{NS}}}[{RATE}]))"),
            "reqps",
            "Requests the gateway answered.",
        ),
        width=4,
        height=4,
    )
    lay.add(
        stat(
            "API 5xx ratio",
            Query(f'sum(rate({g}{{{NS}, status=~"5.."}}[{RATE}])) / sum(rate({g}{{{NS}}}[{RATE}]))'),
            "percentunit",
            "Share of API requests answered with a 5xx status (alert above 5%).",
            thresholds=[("orange", 0.01), ("red", 0.05)],
        ),
        width=4,
        height=4,
    )
    lay.add(
        stat(
            "Queued tasks",
            Query(f'max(facemint_task_orchestrator_queue_depth{{{NS}, status="queued"}})'),
            "none",
            "Tasks accepted and not yet running.",
            thresholds=[("orange", 50), ("red", 100)],
        ),
        width=4,
        height=4,
    )
    lay.add(
        stat(
            "Webhook success ratio",
            Query(f'sum(rate({w}{{{NS}, outcome="delivered"}}[{RATE}])) / sum(rate({w}{{{NS}}}[{RATE}]))'),
            "percentunit",
            "Share of webhook delivery attempts answered with a 2xx within 10 s.",
        ),
        width=4,
        height=4,
    )

    lay.row("Gateway (public API)")
    lay.add(
        timeseries(
            "Requests by status class",
            [
                Query(
                    f"sum by (class) (label_replace(rate({g}{{{NS}}}[{RATE}]), "
                    '"class", "${1}xx", "status", "(.).."))',
                    "{{class}}",
                )
            ],
            "reqps",
            stack=True,
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Error ratio (5xx)",
            [
                Query(
                    f'sum(rate({g}{{{NS}, status=~"5.."}}[{RATE}])) / sum(rate({g}{{{NS}}}[{RATE}]))',
                    "5xx ratio",
                )
            ],
            "percentunit",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Latency",
            quantiles("facemint_gateway_http_request_seconds_bucket", qs=(0.5, 0.95, 0.99)),
            "s",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Requests by route",
            [Query(f"sum by (method, route) (rate({g}{{{NS}}}[{RATE}]))", "{{method}} {{route}}")],
            "reqps",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Rate-limited requests",
            [Query(f"sum(rate(facemint_gateway_rate_limited_total{{{NS}}}[{RATE}]))", "429 rate_limited")],
            "reqps",
            "Requests refused by the per-key rate limit.",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "p95 latency by route",
            [
                Query(
                    "histogram_quantile(0.95, sum by (route, le) "
                    f"(rate(facemint_gateway_http_request_seconds_bucket{{{NS}}}[{RATE}])))",
                    "{{route}}",
                )
            ],
            "s",
        ),
        width=8,
    )

    lay.row("Tasks")
    lay.add(
        timeseries(
            "Task throughput by status",
            [Query(f"sum by (status) (rate({t}{{{NS}}}[{RATE}]))", "{{status}}")],
            "ops",
            "Tasks reaching a terminal status (succeeded, failed, cancelled) per second.",
            stack=True,
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Finished tasks by type",
            [Query(f"sum by (type) (rate({t}{{{NS}}}[{RATE}]))", "{{type}}")],
            "ops",
            stack=True,
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Queue depth",
            [
                Query(
                    f"max by (status) (facemint_task_orchestrator_queue_depth{{{NS}}})",
                    "{{status}}",
                )
            ],
            "none",
            "Tasks by active status: queued (waiting for a worker) and running "
            "(alerts: FacemintTaskQueueGrowing, FacemintTasksStuckQueued).",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Task duration",
            quantiles("facemint_task_orchestrator_task_seconds_bucket", by="type"),
            "s",
            "From acceptance to a terminal status.",
        ),
        width=12,
    )
    lay.add(
        timeseries(
            "Task failure ratio",
            [
                Query(
                    f'sum(rate({t}{{{NS}, status="failed"}}[{RATE}])) / '
                    f'sum(rate({t}{{{NS}, status=~"succeeded|failed"}}[{RATE}]))',
                    "failed / finished",
                )
            ],
            "percentunit",
        ),
        width=12,
    )

    lay.row("Media and inference")
    lay.add(
        timeseries(
            "Inference latency by model",
            quantiles("facemint_inference_model_seconds_bucket", by="model"),
            "s",
            "One runner call (a batch) per model.",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Inference calls by model",
            [
                Query(
                    f"sum by (model) (rate(facemint_inference_model_seconds_count{{{NS}}}[{RATE}]))",
                    "{{model}}",
                )
            ],
            "ops",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Decoder to inference batch latency",
            quantiles("facemint_media_decoder_inference_batch_seconds_bucket"),
            "s",
            "One AnalyzeFrames call as the media-decoder sees it (network and batching included).",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Library search latency",
            quantiles("facemint_library_search_seconds_bucket"),
            "s",
            "One Search request (all its faces): vector search and joint assignment.",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Media fetch errors by reason",
            [
                Query(
                    f"sum by (reason) (rate(facemint_media_decoder_fetch_errors_total{{{NS}}}[{RATE}]))",
                    "{{reason}}",
                )
            ],
            "ops",
            stack=True,
        ),
        width=8,
    )

    lay.row("Webhooks")
    lay.add(
        timeseries(
            "Delivery attempts by outcome",
            [Query(f"sum by (outcome) (rate({w}{{{NS}}}[{RATE}]))", "{{outcome}}")],
            "ops",
            stack=True,
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Delivery success ratio",
            [
                Query(
                    f'sum(rate({w}{{{NS}, outcome="delivered"}}[{RATE}])) / sum(rate({w}{{{NS}}}[{RATE}]))',
                    "delivered",
                )
            ],
            "percentunit",
        ),
        width=8,
    )
    lay.add(
        timeseries("Delivery latency", quantiles("facemint_webhook_dispatcher_delivery_seconds_bucket"), "s"),
        width=8,
    )
    lay.add(
        timeseries(
            "Pending deliveries",
            [Query(f"max(facemint_webhook_dispatcher_backlog_deliveries{{{NS}}})", "pending")],
            "none",
            "Deliveries waiting for an attempt or in flight.",
        ),
        width=12,
    )
    lay.add(
        timeseries(
            "Event to first attempt",
            quantiles("facemint_webhook_dispatcher_lag_seconds_bucket"),
            "s",
            "From a task's terminal state to the first attempt of its webhook.",
        ),
        width=12,
    )
    return dashboard(
        "facemint-overview",
        "Facemint / Platform overview",
        "Request rate, errors and latency at the gateway; task throughput, queue and duration; inference latency; "
        "media fetch errors; webhook delivery.",
        lay.panels,
        [datasource_variable(), namespace_variable()],
    )


def services() -> Panel:
    """gRPC traffic of one internal service at a time, and every service's targets."""
    grpc_services = [c for c in COMPONENTS if c.grpc]
    options = [{"text": c.name, "value": c.metric_prefix, "selected": i == 0} for i, c in enumerate(grpc_services)]
    service_variable = {
        "name": "service",
        "label": "Service",
        "type": "custom",
        "query": ",".join(f"{c.name} : {c.metric_prefix}" for c in grpc_services),
        "options": options,
        "current": {"text": grpc_services[0].name, "value": grpc_services[0].metric_prefix},
        "includeAll": False,
        "multi": False,
        "hide": 0,
    }
    req = "${service}_grpc_requests_total"
    lay = Layout()
    lay.row("Targets")
    lay.add(
        timeseries(
            "Instances up by service",
            [Query(f'sum by (job) (up{{job=~"facemint-.+", {NS}}})', "{{job}}")],
            "none",
        ),
        width=24,
        height=6,
    )
    lay.row("gRPC server of the selected service")
    lay.add(
        timeseries(
            "Requests by method",
            [Query(f"sum by (method) (rate({req}{{{NS}}}[{RATE}]))", "{{method}}")],
            "reqps",
            stack=True,
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Requests by code",
            [Query(f"sum by (code) (rate({req}{{{NS}}}[{RATE}]))", "{{code}}")],
            "reqps",
            stack=True,
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "Error ratio by method",
            [
                Query(
                    f'sum by (method) (rate({req}{{{NS}, code!="OK"}}[{RATE}])) '
                    f"/ sum by (method) (rate({req}{{{NS}}}[{RATE}]))",
                    "{{method}}",
                )
            ],
            "percentunit",
        ),
        width=8,
    )
    lay.add(
        timeseries(
            "p95 latency by method",
            quantiles("${service}_grpc_request_seconds_bucket", by="method", qs=(0.95,)),
            "s",
        ),
        width=12,
    )
    lay.add(
        timeseries("Latency (all methods)", quantiles("${service}_grpc_request_seconds_bucket", qs=(0.5, 0.99)), "s"),
        width=12,
    )
    return dashboard(
        "facemint-services",
        "Facemint / Services (gRPC)",
        "Rate, errors and latency of the gRPC server of one internal service.",
        lay.panels,
        [datasource_variable(), namespace_variable(), service_variable],
    )


DASHBOARDS = {"facemint-overview.json": overview, "facemint-services.json": services}


def render_dashboards() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def write_dashboards() -> list[str]:
    """Write every dashboard into the chart; returns the names written."""
    DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render_dashboards().items():
        (DASHBOARDS_DIR / name).write_text(text)
    return sorted(DASHBOARDS)
