"""Generate the Grafana dashboards in ``deploy/helm/facemint/files/dashboards/`` with ``grafana-foundation-sdk``.

Each dashboard is a function that stacks rows of panels; each panel comes from one of the small functions below
(:func:`timeseries`, :func:`stat`, :func:`quantiles`, ...), so a panel's look is decided in one place.
``python -m deploy.render`` writes the JSON; ``python -m deploy.validate`` checks that the committed files equal what
this module generates, that every query parses (``promtool check rules``) and that every metric a query names is
exported by Facemint (docs/operations.md#metrics) or documented by Triton or postgres_exporter. The chart renders
each file into a ConfigMap labelled for the Grafana sidecar.

Queries use three Grafana variables: ``$datasource`` (a Prometheus data source), ``$namespace`` (the namespaces
Facemint runs in) and, on the services dashboard, ``$service`` (the metric prefix of one gRPC service).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.builders import stat as gstat
from grafana_foundation_sdk.builders import timeseries as gts
from grafana_foundation_sdk.builders.common import ReduceDataOptions, StackingConfig, VizLegendOptions
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

from deploy import COMPONENTS, DASHBOARDS_DIR
from deploy.slo import SLO, SLOS, WINDOWS

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
NS = 'namespace=~"$namespace"'
RATE = "$__rate_interval"
TRITON = f'job="facemint-triton", {NS}'


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel."""

    expr: str
    legend: str = ""


# ------------------------------------------------------------------------------------------------------------ panels


def _targets(queries: Iterable[Query]) -> list[prometheus.Dataquery]:
    return [
        prometheus.Dataquery()
        .expr(q.expr)
        .legend_format(q.legend or "__auto")
        .ref_id(chr(ord("A") + i))
        .datasource(DATASOURCE)
        for i, q in enumerate(queries)
    ]


def _thresholds(steps: list[tuple[str, float]]) -> gd.ThresholdsConfig:
    base = [Threshold(color="green", value=None)]
    return (
        gd.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps(base + [Threshold(color=color, value=value) for color, value in steps])
    )


def timeseries(
    title: str,
    queries: list[Query],
    unit: str,
    description: str = "",
    stack: bool = False,
    width: int = 8,
    height: int = 8,
) -> gts.Panel:
    """A time series panel, lines with a light fill; ``stack`` stacks the series."""
    panel = (
        gts.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets(queries))  # type: ignore[arg-type]
        .unit(unit)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .legend(VizLegendOptions().display_mode(common.LegendDisplayMode.LIST).placement(common.LegendPlacement.BOTTOM))
        .span(width)
        .height(height)
    )
    if stack:
        panel = panel.stacking(StackingConfig().mode(common.StackingMode.NORMAL).group("A"))
    return panel


def stat(
    title: str,
    query: Query,
    unit: str,
    description: str = "",
    thresholds: list[tuple[str, float]] | None = None,
    width: int = 4,
) -> gstat.Panel:
    """A single value: green, then each (color, from value) of ``thresholds``."""
    return (
        gstat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .targets(_targets([query]))  # type: ignore[arg-type]
        .unit(unit)
        .thresholds(_thresholds(thresholds or []))
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]))
        .span(width)
        .height(4)
    )


def quantiles(metric: str, by: str = "", selector: str = NS, qs: tuple[float, ...] = (0.5, 0.95)) -> list[Query]:
    """histogram_quantile queries of a ``*_bucket`` metric, one per quantile."""
    group = f"{by}, le" if by else "le"
    out = []
    for q in qs:
        legend = f"p{round(q * 100)}" + (f" {{{{{by}}}}}" if by else "")
        out.append(Query(f"histogram_quantile({q}, sum by ({group}) (rate({metric}{{{selector}}}[{RATE}])))", legend))
    return out


def ratio(numerator: str, denominator: str, by: str = "") -> str:
    """``sum(rate(numerator)) / sum(rate(denominator))`` over the rate interval, optionally ``by`` labels."""
    agg = f"sum by ({by})" if by else "sum"
    return f"{agg} (rate({numerator}[{RATE}])) / {agg} (rate({denominator}[{RATE}]))"


def triton_per_request(metric: str) -> Query:
    """Triton's cumulative microseconds per successful request, in seconds, by model."""
    return Query(
        f"{ratio(f'{metric}{{{TRITON}}}', f'nv_inference_request_success{{{TRITON}}}', 'model')} / 1e6", "{{model}}"
    )


# --------------------------------------------------------------------------------------------------------- variables


def datasource_variable() -> gd.DatasourceVariable:
    """The Prometheus data source picker."""
    return gd.DatasourceVariable("datasource").label("Data source").type("prometheus")


def namespace_variable() -> gd.QueryVariable:
    """The namespaces that run Facemint (any with a scraped Facemint target)."""
    definition = 'label_values(up{job=~"facemint-.+"}, namespace)'
    return (
        gd.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query({"query": definition, "refId": "namespace"})
        .include_all(True)
        .multi(True)
        .all_value(".*")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


# -------------------------------------------------------------------------------------------------------- dashboards

Row = tuple[str, list[Any]]


def dashboard(uid: str, title: str, description: str, rows: list[Row], variables: list[Any] | None = None) -> Any:
    """A dashboard of rows, each a title and its panels (laid out left to right, wrapping at 24 columns)."""
    builder = (
        gd.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["facemint"])
        .timezone("browser")
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .variables(variables or [datasource_variable(), namespace_variable()])
    )
    for title_, panels in rows:
        builder = builder.with_row(gd.Row(title_))
        for panel in panels:
            builder = builder.with_panel(panel)
    built = builder.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return built


def overview() -> Any:
    """The platform at a glance: availability, the API, tasks, inference and media, webhooks."""
    g = "facemint_gateway_http_requests_total"
    t = "facemint_task_orchestrator_tasks_total"
    w = "facemint_webhook_dispatcher_deliveries_total"
    availability = [
        stat("Targets up", Query(f'sum(up{{job=~"facemint-.+", {NS}}})'), "none", "Scraped instances that answer."),
        stat(
            "Targets down",
            Query(f'count(up{{job=~"facemint-.+", {NS}}} == 0) or vector(0)'),
            "none",
            "Scraped instances that do not answer (alert: FacemintServiceDown).",
            [("red", 1)],
        ),
        stat(
            "Instances not ready",
            Query(f'count(facemint_service_ready{{job=~"facemint-.+", {NS}}} == 0) or vector(0)'),
            "none",
            "Instances that answer but fail /readyz (alert: FacemintServiceNotReady).",
            [("red", 1)],
        ),
        stat("API requests/s", Query(f"sum(rate({g}{{{NS}}}[{RATE}]))"), "reqps", "Requests the gateway answered."),
        stat(
            "API 5xx ratio",
            Query(ratio(f'{g}{{{NS}, status=~"5.."}}', f"{g}{{{NS}}}")),
            "percentunit",
            "Share of API requests answered with a 5xx status (SLO: at most 0.1%).",
            [("orange", 0.001), ("red", 0.05)],
        ),
        stat(
            "Queued tasks",
            Query(f'max(facemint_task_orchestrator_queue_depth{{{NS}, status="queued"}})'),
            "none",
            "Tasks accepted and not yet running.",
            [("orange", 50), ("red", 100)],
        ),
    ]
    gateway = [
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
        timeseries(
            "Error ratio (5xx)", [Query(ratio(f'{g}{{{NS}, status=~"5.."}}', f"{g}{{{NS}}}"), "5xx")], "percentunit"
        ),
        timeseries("Latency", quantiles("facemint_gateway_http_request_seconds_bucket", qs=(0.5, 0.95, 0.99)), "s"),
        timeseries(
            "Requests by route",
            [Query(f"sum by (method, route) (rate({g}{{{NS}}}[{RATE}]))", "{{method}} {{route}}")],
            "reqps",
        ),
        timeseries(
            "Rate-limited requests",
            [Query(f"sum(rate(facemint_gateway_rate_limited_total{{{NS}}}[{RATE}]))", "429 rate_limited")],
            "reqps",
            "Requests refused by the per-key rate limit.",
        ),
        timeseries(
            "p95 latency by route",
            quantiles("facemint_gateway_http_request_seconds_bucket", by="route", qs=(0.95,)),
            "s",
        ),
    ]
    tasks = [
        timeseries(
            "Task throughput by status",
            [Query(f"sum by (status) (rate({t}{{{NS}}}[{RATE}]))", "{{status}}")],
            "ops",
            "Tasks reaching a terminal status per second.",
            stack=True,
        ),
        timeseries(
            "Finished tasks by type",
            [Query(f"sum by (type) (rate({t}{{{NS}}}[{RATE}]))", "{{type}}")],
            "ops",
            stack=True,
        ),
        timeseries(
            "Queue depth",
            [Query(f"max by (status) (facemint_task_orchestrator_queue_depth{{{NS}}})", "{{status}}")],
            "none",
            "Tasks by active status (alerts: FacemintTaskQueueGrowing, FacemintTasksStuckQueued).",
        ),
        timeseries(
            "Task duration",
            quantiles("facemint_task_orchestrator_task_seconds_bucket", by="type"),
            "s",
            "Run time of finished tasks, by type.",
            width=12,
        ),
        timeseries(
            "Task failure ratio",
            [Query(ratio(f'{t}{{{NS}, status="failed"}}', f'{t}{{{NS}, status=~"succeeded|failed"}}'), "failed")],
            "percentunit",
            width=12,
        ),
    ]
    media = [
        timeseries(
            "Inference latency by model",
            quantiles("facemint_inference_model_seconds_bucket", by="model"),
            "s",
            "One runner call (a batch) per model.",
        ),
        timeseries(
            "Decoder to inference batch latency",
            quantiles("facemint_media_decoder_inference_batch_seconds_bucket"),
            "s",
            "One AnalyzeFrames call as the media-decoder sees it (network and batching included).",
        ),
        timeseries(
            "Library search latency",
            quantiles("facemint_library_search_seconds_bucket"),
            "s",
            "One Search request (all its faces): vector search and joint assignment.",
        ),
        timeseries(
            "Media fetch errors by reason",
            [Query(f"sum by (reason) (rate(facemint_media_decoder_fetch_errors_total{{{NS}}}[{RATE}]))", "{{reason}}")],
            "ops",
            stack=True,
            width=12,
        ),
        timeseries(
            "Webhook attempts by outcome",
            [Query(f"sum by (outcome) (rate({w}{{{NS}}}[{RATE}]))", "{{outcome}}")],
            "ops",
            "More on the Webhooks dashboard.",
            stack=True,
            width=12,
        ),
    ]
    return dashboard(
        "facemint-overview",
        "Facemint / Platform overview",
        "Targets and readiness; request rate, errors and latency at the gateway; task throughput, queue and duration; "
        "inference, decoding and search latency; media fetch errors; webhook attempts.",
        [("Availability", availability), ("Gateway (public API)", gateway), ("Tasks", tasks), ("Media", media)],
    )


def _slo_row(slo: SLO) -> Row:
    def record(window: str) -> str:
        return f'slo:sli_error:ratio_rate{window}{{slo="{slo.name}", {NS}}}'

    budget = f"{slo.budget:g}"
    panels = [
        stat(
            "Good events, last day",
            Query(f"1 - max({record('1d')})"),
            "percentunit",
            f"Objective: {slo.objective:.1%} over 30 days.",
            width=4,
        ),
        stat(
            "Error budget left, 30 days",
            Query(f"1 - max(avg_over_time({record('1h')}[30d])) / {budget}"),
            "percentunit",
            "Share of the 30-day budget not yet spent (hourly error ratios averaged over 30 days).",
            width=4,
        ),
        timeseries(
            "Burn rate",
            [Query(f"max({record(w)}) / {budget}", w) for w in ("1h", "6h", "1d", "3d")],
            "none",
            "Error ratio / budget per window: 1 spends the budget in exactly 30 days. Pages at 14.4 (1h) and 6 (6h), "
            "tickets at 3 (1d) and 1 (3d), each confirmed by a shorter window.",
            width=8,
        ),
        timeseries(
            "Bad-event ratio",
            [Query(f"max({record(w)})", w) for w in WINDOWS[:3]] + [Query(f"vector({budget})", "budget")],
            "percentunit",
            width=8,
        ),
    ]
    return f"{slo.name}: {slo.title}", panels


def slos() -> Any:
    """Every SLO of deploy/slo.py: attainment, budget left, burn rates and the bad-event ratio per window."""
    return dashboard(
        "facemint-slo",
        "Facemint / SLOs",
        "The service level objectives of docs/operations.md#service-level-objectives, from the recording rules "
        "slo:sli_error:ratio_rate<window> of files/alerts/slo.rules.yml.",
        [_slo_row(slo) for slo in SLOS],
    )


def queues() -> Any:
    """JetStream consumers and the task queue."""
    consumer = f"{{{NS}}}"
    jetstream = [
        timeseries(
            "Lag (pending) by consumer",
            [
                Query(
                    f"max by (stream, consumer) (facemint_jetstream_consumer_pending_messages{consumer})",
                    "{{stream}} / {{consumer}}",
                )
            ],
            "none",
            "Messages published and not yet delivered (alert: FacemintJetStreamLagGrowing). KEDA scales on it.",
        ),
        timeseries(
            "Ack pending by consumer",
            [
                Query(
                    f"max by (stream, consumer) (facemint_jetstream_consumer_ack_pending_messages{consumer})",
                    "{{stream}} / {{consumer}}",
                )
            ],
            "none",
            "Messages delivered and being worked on.",
        ),
        timeseries(
            "Redelivered by consumer",
            [
                Query(
                    f"max by (stream, consumer) (facemint_jetstream_consumer_redelivered_messages{consumer})",
                    "{{stream}} / {{consumer}}",
                )
            ],
            "none",
            "Messages delivered more than once and not yet acked: work that fails and is retried.",
        ),
        timeseries(
            "Poison messages terminated",
            [
                Query(
                    "sum by (stream, consumer) "
                    f"(increase(facemint_jetstream_terminated_messages_total{consumer}[{RATE}]))",
                    "{{stream}} / {{consumer}}",
                )
            ],
            "none",
            "Alert: FacemintJetStreamPoisonMessages.",
            width=12,
        ),
        timeseries(
            "Jobs waiting for a worker slot",
            [Query(f"sum(facemint_task_orchestrator_waiting_jobs{{{NS}}})", "waiting")],
            "none",
            "Jobs fetched by the orchestrators and waiting for a slot (fair scheduling, ADR 12).",
            width=12,
        ),
    ]
    tasks = [
        timeseries(
            "Time in queue by type",
            quantiles("facemint_task_orchestrator_queue_seconds_bucket", by="type"),
            "s",
            "From a task's creation to a worker starting it.",
        ),
        timeseries(
            "Task duration by type and outcome",
            [
                Query(
                    "histogram_quantile(0.95, sum by (type, outcome, le) "
                    f"(rate(facemint_task_orchestrator_task_seconds_bucket{{{NS}}}[{RATE}])))",
                    "p95 {{type}} {{outcome}}",
                )
            ],
            "s",
        ),
        timeseries(
            "Queue depth",
            [Query(f"max by (status) (facemint_task_orchestrator_queue_depth{{{NS}}})", "{{status}}")],
            "none",
            "Tasks by active status, counted in PostgreSQL.",
        ),
    ]
    return dashboard(
        "facemint-queues",
        "Facemint / Queues",
        "JetStream consumers (lag, ack pending, redeliveries, poison messages) and the task queue (time in queue, "
        "duration, depth).",
        [("JetStream consumers", jetstream), ("Tasks", tasks)],
    )


def inference() -> Any:
    """Per model: Triton's queue time, compute time and batch size; the GPUs; Facemint's own runner latency."""
    triton = [
        timeseries(
            "Requests by model",
            [Query(f"sum by (model) (rate(nv_inference_request_success{{{TRITON}}}[{RATE}]))", "{{model}}")],
            "reqps",
            "Successful Triton inference requests.",
        ),
        timeseries(
            "Queue time by model",
            [triton_per_request("nv_inference_queue_duration_us")],
            "s",
            "Average wait in Triton's scheduler queue per request (alert: FacemintInferenceQueueTimeHigh).",
        ),
        timeseries(
            "Compute time by model",
            [triton_per_request("nv_inference_compute_infer_duration_us")],
            "s",
            "Average model execution time per request.",
        ),
        timeseries(
            "Batch size by model",
            [
                Query(
                    ratio(f"nv_inference_count{{{TRITON}}}", f"nv_inference_exec_count{{{TRITON}}}", "model"),
                    "{{model}}",
                )
            ],
            "none",
            "Inferences per execution: the dynamic batcher's average batch.",
        ),
        timeseries(
            "Failed requests by model",
            [Query(f"sum by (model) (rate(nv_inference_request_failure{{{TRITON}}}[{RATE}]))", "{{model}}")],
            "reqps",
        ),
        timeseries(
            "Pending requests by model",
            [Query(f"sum by (model) (nv_inference_pending_request_count{{{TRITON}}})", "{{model}}")],
            "none",
        ),
    ]
    gpus = [
        timeseries(
            "GPU utilisation",
            [Query(f"avg by (instance, gpu_uuid) (nv_gpu_utilization{{{TRITON}}})", "{{instance}} {{gpu_uuid}}")],
            "percentunit",
            "Alert: FacemintGpuUtilizationHigh (above 90% for 15 minutes).",
            width=12,
        ),
        timeseries(
            "GPU memory used",
            [
                Query(
                    f"max by (instance, gpu_uuid) (nv_gpu_memory_used_bytes{{{TRITON}}}) / "
                    f"max by (instance, gpu_uuid) (nv_gpu_memory_total_bytes{{{TRITON}}})",
                    "{{instance}} {{gpu_uuid}}",
                )
            ],
            "percentunit",
            "Alert: FacemintGpuMemoryHigh (above 90%).",
            width=12,
        ),
    ]
    runner = [
        timeseries(
            "Runner call latency by model",
            quantiles("facemint_inference_model_seconds_bucket", by="model"),
            "s",
            "One call (a batch) per model as the inference service sees it, on either runner.",
            width=12,
        ),
        timeseries(
            "Decoder to inference batch latency",
            quantiles("facemint_media_decoder_inference_batch_seconds_bucket"),
            "s",
            "One AnalyzeFrames call as the media-decoder sees it.",
            width=12,
        ),
    ]
    return dashboard(
        "facemint-inference",
        "Facemint / Inference and GPU",
        "Triton per model (requests, queue and compute time, batch size, failures), GPU utilisation and memory, and "
        "the inference service's own call latency.",
        [("Triton, per model", triton), ("GPUs", gpus), ("Inference service", runner)],
    )


def webhooks() -> Any:
    """Webhook delivery: attempts, latency, backlog, and the events feeding it."""
    w = "facemint_webhook_dispatcher_deliveries_total"
    delivery = [
        timeseries(
            "Attempts by outcome",
            [Query(f"sum by (outcome) (rate({w}{{{NS}}}[{RATE}]))", "{{outcome}}")],
            "ops",
            stack=True,
        ),
        timeseries(
            "Success ratio",
            [Query(ratio(f'{w}{{{NS}, outcome="delivered"}}', f"{w}{{{NS}}}"), "delivered")],
            "percentunit",
            "Attempts answered with a 2xx within 10 s (alert: FacemintWebhookDeliveryFailures).",
        ),
        timeseries("Attempt latency", quantiles("facemint_webhook_dispatcher_delivery_seconds_bucket"), "s"),
        timeseries(
            "Terminal state to first attempt",
            quantiles("facemint_webhook_dispatcher_lag_seconds_bucket", qs=(0.5, 0.99)),
            "s",
            "The webhook-latency SLO: 99% within 60 s.",
        ),
    ]
    backlog = [
        timeseries(
            "Backlog",
            [Query(f"max(facemint_webhook_dispatcher_backlog_deliveries{{{NS}}})", "pending deliveries")],
            "none",
            "Deliveries waiting for an attempt (due or backing off) or in flight.",
        ),
        timeseries(
            "Oldest pending delivery",
            [Query(f"max(facemint_webhook_dispatcher_oldest_pending_age_seconds{{{NS}}})", "age")],
            "s",
            "From its task's terminal state (alert: FacemintWebhookBacklogStuck beyond 26 hours).",
        ),
        timeseries(
            "Task events consumed",
            [Query(f"sum by (action) (rate(facemint_webhook_dispatcher_events_total{{{NS}}}[{RATE}]))", "{{action}}")],
            "ops",
        ),
    ]
    return dashboard(
        "facemint-webhooks",
        "Facemint / Webhooks",
        "Delivery attempts and their outcome and latency, the time from a task's end to its first attempt, the "
        "backlog and its oldest delivery.",
        [("Delivery", delivery), ("Backlog", backlog)],
    )


def services() -> Any:
    """gRPC traffic of one internal service at a time, and every service's targets."""
    grpc_services = [c for c in COMPONENTS if c.grpc]
    service_variable = (
        gd.CustomVariable("service")
        .label("Service")
        .values(",".join(f"{c.name} : {c.metric_prefix}" for c in grpc_services))
    )
    req = "${service}_grpc_requests_total"
    targets = [
        timeseries(
            "Instances up by service",
            [Query(f'sum by (job) (up{{job=~"facemint-.+", {NS}}})', "{{job}}")],
            "none",
            width=24,
            height=6,
        )
    ]
    grpc = [
        timeseries(
            "Requests by method",
            [Query(f"sum by (method) (rate({req}{{{NS}}}[{RATE}]))", "{{method}}")],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Requests by code",
            [Query(f"sum by (code) (rate({req}{{{NS}}}[{RATE}]))", "{{code}}")],
            "reqps",
            stack=True,
        ),
        timeseries(
            "Error ratio by method",
            [Query(ratio(f'{req}{{{NS}, code!="OK"}}', f"{req}{{{NS}}}", "method"), "{{method}}")],
            "percentunit",
        ),
        timeseries(
            "p95 latency by method",
            quantiles("${service}_grpc_request_seconds_bucket", by="method", qs=(0.95,)),
            "s",
            width=12,
        ),
        timeseries(
            "Latency (all methods)",
            quantiles("${service}_grpc_request_seconds_bucket", qs=(0.5, 0.99)),
            "s",
            width=12,
        ),
    ]
    return dashboard(
        "facemint-services",
        "Facemint / Services (gRPC)",
        "Rate, errors and latency of the gRPC server of one internal service.",
        [("Targets", targets), ("gRPC server of the selected service", grpc)],
        [datasource_variable(), namespace_variable(), service_variable],
    )


DASHBOARDS: dict[str, Callable[[], Any]] = {
    "facemint-overview.json": overview,
    "facemint-slo.json": slos,
    "facemint-queues.json": queues,
    "facemint-inference.json": inference,
    "facemint-webhooks.json": webhooks,
    "facemint-services.json": services,
}


def render_dashboards() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: json.dumps(build(), cls=JSONEncoder, indent=2) + "\n" for name, build in DASHBOARDS.items()}


def write_dashboards() -> list[str]:
    """Write every dashboard into the chart, removing those no longer generated; returns the names written."""
    DASHBOARDS_DIR.mkdir(parents=True, exist_ok=True)
    rendered = render_dashboards()
    for stale in set(p.name for p in DASHBOARDS_DIR.glob("*.json")) - set(rendered):
        (DASHBOARDS_DIR / stale).unlink()
    for name, text in rendered.items():
        (DASHBOARDS_DIR / name).write_text(text)
    return sorted(rendered)
