"""One name per service (issue #14, ADR 15): its folder under ``services/`` decides its package, entry point,
settings prefix, chart component, service name in logs and metric prefix."""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from deploy import COMPONENTS, ROOT

SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists())
SERVICES.remove("_template")  # the skeleton new services are copied from, not a service

PLATFORM_METRICS = {
    "facemint_service_ready",
    "facemint_jetstream_consumer_pending_messages",
    "facemint_jetstream_consumer_ack_pending_messages",
    "facemint_jetstream_consumer_redelivered_messages",
    "facemint_jetstream_terminated_messages_total",
}
"""Metrics facemint-core exports in every service that uses them, under no service's prefix (ADR 15). Its gRPC
server metrics (``facemint_<svc>_grpc_*``) take the prefix of the service that runs them."""

METRIC_TYPES = {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum"}


def _names(service: str) -> tuple[str, str]:
    """The package and the settings prefix a service's folder name gives."""
    return "facemint_" + service.replace("-", "_"), "FACEMINT_" + service.upper().replace("-", "_") + "_"


def _metric_names(source: Path) -> list[str | None]:
    """The name of every prometheus_client metric a module creates, read from its source (metrics made at run time
    count too); ``None`` for a name that is not a string literal or an f-string of module-level string constants."""
    tree = ast.parse(source.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def resolve(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        if isinstance(node, ast.FormattedValue):
            return resolve(node.value)
        if isinstance(node, ast.JoinedStr):
            parts = [resolve(v) for v in node.values]
            return None if None in parts else "".join(p for p in parts if p is not None)
        return None

    names: list[str | None] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in METRIC_TYPES:
                names.append(resolve(node.args[0]))
    return names


def test_the_chart_deploys_every_service_under_its_folder_name() -> None:
    assert sorted(c.name for c in COMPONENTS) == SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_package_entry_point_settings_and_log_name_follow_the_folder(service: str) -> None:
    package, env_prefix = _names(service)
    folder = ROOT / "services" / service
    assert [p.name for p in (folder / "src").iterdir() if (p / "__init__.py").exists()] == [package]
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    assert project["name"] == f"facemint-{service}"
    assert project["scripts"] == {f"facemint-{service}": f"{package}.__main__:main"}

    component = next(c for c in COMPONENTS if c.name == service)
    assert f"FACEMINT_{component.env_prefix}_" == env_prefix
    module, _, cls = component.settings.partition(":")
    assert module == f"{package}.settings"
    settings = getattr(importlib.import_module(module), cls)
    assert issubclass(settings, BaseSettings) and settings.model_config.get("env_prefix") == env_prefix

    # The name its logs, traces and gRPC metrics carry (run_service's first argument).
    assert re.findall(r'run_service\(\s*"([^"]+)"', (folder / "src" / package / "__main__.py").read_text()) == [service]


def test_every_metric_a_service_defines_has_its_prefix() -> None:
    core = ROOT / "libs" / "facemint-core" / "src"
    assert {n for p in core.rglob("*.py") for n in _metric_names(p) if n} == PLATFORM_METRICS
    for service in SERVICES:
        package = _names(service)[0]
        names = [n for p in (ROOT / "services" / service / "src").rglob("*.py") for n in _metric_names(p)]
        assert names, f"no metric found in {service}: the check would see nothing"
        assert [n for n in names if n is None or not n.startswith(package + "_")] == [], service
