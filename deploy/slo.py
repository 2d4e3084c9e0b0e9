"""Facemint's service level objectives and the Prometheus rules generated from them.

One list, :data:`SLOS`, defines every SLO: what counts as a bad event, what counts as any event, and the objective.
:func:`render_rules` turns it into ``deploy/helm/facemint/files/alerts/slo.rules.yml`` with the multi-window,
multi-burn-rate method of Google's SRE workbook (chapter "Alerting on SLOs"), over a 30-day budget:

- recording rules ``slo:sli_error:ratio_rate<window>`` (label ``slo``, by ``namespace``): the share of bad events
  over 5m, 30m, 1h, 2h, 6h, 1d and 3d;
- a page (severity ``critical``) when the budget burns 14.4 times too fast over 1h and 5m (2% of the budget in an
  hour) or 6 times over 6h and 30m (5% in six hours);
- a ticket (severity ``warning``) when it burns 3 times too fast over 1d and 2h (10% in a day) or as fast as it may
  over 3d and 6h.

The short window of each pair makes an alert stop soon after the burn stops. ``python -m deploy.render`` writes the
file; ``python -m deploy.validate`` fails when it is stale. The SLOs are described for people in
docs/operations.md#service-level-objectives; the promtool tests are ``files/alerts/tests/slo-*.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from deploy import ALERTS_DIR

SLO_RULES_FILE = ALERTS_DIR / "slo.rules.yml"
RECORD = "slo:sli_error:ratio_rate{window}"
"""Name of the recording rule of one window (Sloth's and the workbook's naming)."""
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class BurnAlert:
    """One alert: fires when either (long window, short window) pair burns faster than its factor."""

    suffix: str
    severity: str
    pairs: tuple[tuple[str, str, float], ...]
    """(long window, short window, burn rate factor) pairs, ORed."""
    for_: str
    meaning: str


ALERTS = (
    BurnAlert("ErrorBudgetBurnFast", "critical", (("1h", "5m", 14.4), ("6h", "30m", 6.0)), "2m", "page"),
    BurnAlert("ErrorBudgetBurnSlow", "warning", (("1d", "2h", 3.0), ("3d", "6h", 1.0)), "15m", "ticket"),
)


@dataclass(frozen=True)
class SLO:
    """One service level objective over a 30-day window."""

    name: str
    """Value of the ``slo`` label, kebab-case."""
    alert: str
    """Alert name prefix, e.g. ``FacemintApiAvailability``."""
    objective: float
    """Share of good events, e.g. 0.999."""
    title: str
    """What is promised, for people."""
    bad: str
    """PromQL rate of bad events; ``{window}`` stands for the range."""
    total: str
    """PromQL rate of all events."""

    @property
    def budget(self) -> float:
        """Share of events that may be bad."""
        return round(1 - self.objective, 10)

    @property
    def anchor(self) -> str:
        """Runbook section in docs/operations.md."""
        return "slo-" + self.name

    def ratio(self, window: str) -> str:
        """PromQL of the share of bad events over ``window``, by namespace."""
        bad = self.bad.replace("{window}", window).replace("\n", "\n  ")
        total = self.total.replace("{window}", window).replace("\n", "\n  ")
        return f"sum by (namespace) (\n  {bad}\n)\n/\nsum by (namespace) (\n  {total}\n)"


def _histogram_over(metric: str, selector: str, le: str) -> tuple[str, str]:
    """(bad, total) of "an observation above ``le`` seconds" on a Prometheus client histogram.

    Python's client writes bucket bounds as ``5.0``; Prometheus 3 normalises them to ``5``: both match.
    """
    le_re = f"{le}(\\\\.0)?"
    bucket = f'{metric}_bucket{{{selector + ", " if selector else ""}le=~"{le_re}"}}'
    count = f"{metric}_count{{{selector}}}" if selector else f"{metric}_count"
    return f"rate({count}[{{window}}])\n- ignoring (le)\nrate({bucket}[{{window}}])", f"rate({count}[{{window}}])"


_TASK_BAD, _TASK_TOTAL = _histogram_over("facemint_task_orchestrator_task_latency_seconds", 'type="image"', "5")
_HOOK_BAD, _HOOK_TOTAL = _histogram_over("facemint_webhook_dispatcher_lag_seconds", "", "60")

SLOS = (
    SLO(
        name="api-availability",
        alert="FacemintApiAvailability",
        objective=0.999,
        title="99.9% of API requests answer without a 5xx status",
        # The public API only: probes and scrapes of /readyz and /metrics are not clients' requests. "or ... * 0": a
        # namespace without a single 5xx yet has an error ratio of 0, not none.
        bad='rate(facemint_gateway_http_requests_total{route=~"/v1/.+", status=~"5.."}[{window}])\n'
        'or\nrate(facemint_gateway_http_requests_total{route=~"/v1/.+"}[{window}]) * 0',
        total='rate(facemint_gateway_http_requests_total{route=~"/v1/.+"}[{window}])',
    ),
    SLO(
        name="image-task-latency",
        alert="FacemintImageTaskLatency",
        objective=0.99,
        title="99% of image tasks finish within 5 s",
        bad=_TASK_BAD,
        total=_TASK_TOTAL,
    ),
    SLO(
        name="webhook-latency",
        alert="FacemintWebhookLatency",
        objective=0.99,
        title="99% of webhooks are attempted within 60 s of their task's terminal state",
        bad=_HOOK_BAD,
        total=_HOOK_TOTAL,
    ),
)


def _burn_expr(slo: SLO, alert: BurnAlert) -> str:
    clauses = []
    for long, short, factor in alert.pairs:
        threshold = f"({factor:g} * {slo.budget:g})"
        clauses.append(
            f'{RECORD.format(window=long)}{{slo="{slo.name}"}} > {threshold}\n'
            f"and\n"
            f'{RECORD.format(window=short)}{{slo="{slo.name}"}} > {threshold}'
        )
    return "(\n" + "\n)\nor\n(\n".join(clauses) + "\n)"


def _describe(slo: SLO, alert: BurnAlert) -> str:
    pairs = " or ".join(f"{factor:g}x over {long} and {short}" for long, short, factor in alert.pairs)
    return (
        f"The {slo.name} SLO, {slo.title}, in namespace {{{{ $labels.namespace }}}} burns its 30-day error "
        f"budget of {slo.budget:.1%} too fast: {pairs}."
    )


def rule_groups() -> list[dict[str, Any]]:
    """One group per SLO: its recording rules, then its two burn-rate alerts."""
    groups = []
    for slo in SLOS:
        rules: list[dict[str, Any]] = [
            {"record": RECORD.format(window=w), "expr": slo.ratio(w), "labels": {"slo": slo.name}} for w in WINDOWS
        ]
        for alert in ALERTS:
            rules.append(
                {
                    "alert": slo.alert + alert.suffix,
                    "expr": _burn_expr(slo, alert),
                    "for": alert.for_,
                    "labels": {"severity": alert.severity, "slo": slo.name},
                    "annotations": {
                        "summary": f"{slo.name} SLO: error budget burning ({alert.meaning})",
                        "description": _describe(slo, alert),
                        "runbook_url": f"docs/operations.md#{slo.anchor}",
                    },
                }
            )
        groups.append({"name": f"facemint.slo.{slo.name}", "rules": rules})
    return groups


class _Literal(str):
    """A string dumped in YAML's literal block style."""


class _Dumper(yaml.SafeDumper):
    """Dumps :class:`_Literal` strings (the PromQL expressions) as literal blocks."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")


_Dumper.add_representer(_Literal, _literal)


def render_rules() -> str:
    """The text of slo.rules.yml."""
    groups = rule_groups()
    for group in groups:
        for rule in group["rules"]:
            rule["expr"] = _Literal(rule["expr"] + "\n")
    header = (
        "# Generated by `make manifests` (python -m deploy.render) from deploy/slo.py: do not edit.\n"
        "# Multi-window, multi-burn-rate rules of Facemint's SLOs (docs/operations.md#service-level-objectives);\n"
        "# promtool tests: tests/slo-*.yml.\n"
    )
    body = yaml.dump({"groups": groups}, Dumper=_Dumper, sort_keys=False, width=150, indent=2)
    return header + body


def write_rules() -> str:
    """Write slo.rules.yml; returns its path relative to the chart."""
    SLO_RULES_FILE.write_text(render_rules())
    return SLO_RULES_FILE.name
