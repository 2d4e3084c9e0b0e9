"""Deployment tooling: render and validate the Helm chart in ``deploy/helm/facemint`` offline.

``python -m deploy.render`` regenerates the generated artefacts (``values.schema.json``, the Grafana dashboards and
the plain manifests in ``deploy/k8s/``); ``python -m deploy.validate`` lints, renders and validates everything
(``make helm-lint``). The constants below are the one list of components shared by the schema generator, the
dashboards and the checks; the chart's own list lives in ``templates/_helpers.tpl`` (``facemint.components``) and a
check keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHART_DIR = ROOT / "deploy" / "helm" / "facemint"
K8S_DIR = ROOT / "deploy" / "k8s"
DASHBOARDS_DIR = CHART_DIR / "files" / "dashboards"
ALERTS_FILE = CHART_DIR / "files" / "alerts" / "facemint.rules.yml"
ALERT_TESTS_DIR = CHART_DIR / "files" / "alerts" / "tests"
SCHEMA_FILE = CHART_DIR / "values.schema.json"
VALUES_FILE = CHART_DIR / "values.yaml"
CI_VALUES_DIR = CHART_DIR / "ci"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"
YAMLLINT_CONFIG = ROOT / "deploy" / "yamllint.yaml"

RELEASE_NAME = "facemint"
NAMESPACE = "facemint"
KUBE_VERSION = "1.30.0"


@dataclass(frozen=True)
class Component:
    """One Facemint service as the chart deploys it."""

    name: str
    """Kebab-case name: its folder under ``services/``, component label and ``facemint-<name>`` binary."""
    key: str
    """Its values block in ``values.yaml``."""
    env_prefix: str
    """Settings prefix without ``FACEMINT_`` and the trailing underscore, e.g. ``ORCHESTRATOR``."""
    settings: str
    """``module:Class`` of its settings; the chart's environment must load into it."""
    grpc: bool = True
    """Whether it serves gRPC on :50051 (every service but the gateway)."""

    @property
    def metric_prefix(self) -> str:
        """``facemint_<svc>`` as used by its Prometheus metrics."""
        return "facemint_" + self.name.replace("-", "_")


COMPONENTS: tuple[Component, ...] = (
    Component("gateway", "gateway", "GATEWAY", "facemint_gateway.settings:GatewaySettings", grpc=False),
    Component(
        "task-orchestrator", "taskOrchestrator", "ORCHESTRATOR", "facemint_orchestrator.settings:OrchestratorSettings"
    ),
    Component("media-decoder", "mediaDecoder", "MEDIA_DECODER", "facemint_media_decoder.settings:MediaDecoderSettings"),
    Component("inference", "inference", "INFERENCE", "facemint_inference.settings:InferenceSettings"),
    Component("library", "library", "LIBRARY", "facemint_library.settings:LibrarySettings"),
    Component("webhook-dispatcher", "webhookDispatcher", "WEBHOOK", "facemint_webhook.settings:WebhookSettings"),
)
