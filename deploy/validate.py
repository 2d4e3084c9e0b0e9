"""Validate the Helm chart offline: ``python -m deploy.validate`` (``make helm-lint``).

Checks, each reported as PASS/FAIL (SKIP only with ``--skip-missing-tools``):

- ``helm lint --strict`` (the Helm v4 SDK through ``helm-python-sdk``) with every ``ci/*-values.yaml`` scenario;
- each scenario renders, and every object passes ``kubernetes-validate --strict`` for Kubernetes 1.30; the
  Prometheus Operator and KEDA kinds, which it has no schema for, are checked against their upstream CRD schemas
  (the npm packages ``@kubernetes-models/prometheus-operator`` and ``@kubernetes-models/keda``, installed into
  ``deploy/crd-schemas`` by ``make crd-schemas``, run by ``validate.mjs`` in Node);
- the chart's conventions on the rendered objects: security context, probes, selectors without changing labels,
  names within 63 characters (also for a 53-character release name), images with tags;
- the schema rejects unknown keys and wrong types (negative tests), every object in it is closed, and every key of
  ``values.yaml`` is documented with ``## @param``;
- yamllint over the chart's YAML, every rendered manifest and ``deploy/k8s/``;
- ``promtool check rules`` and ``promtool test rules`` on the rules files (the hand-written alerts and the SLO rules
  of :mod:`deploy.slo`); for every alert labels, annotations, a runbook section in docs/operations.md, a test case
  in which it fires and one in which it does not; a ``promql_expr_test`` for every recording rule; in every scenario
  the rendered PrometheusRule equal to the rules files less the rules of components it does not deploy;
- every dashboard panel's PromQL parses (``promtool check rules`` on a generated rules file), every metric a dashboard
  or a rule uses is in the metrics contract of docs/operations.md or documented by Triton or postgres_exporter;
- drift: ``values.schema.json``, the SLO rules, the dashboards and ``deploy/k8s/`` equal what
  ``python -m deploy.render`` writes;
- every service has a Dockerfile with a digest-pinned base, a non-root user and an exec-form entrypoint.

The pytest suite ``deploy/tests/test_chart.py`` runs the same check functions.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from deploy import (
    ALERT_TESTS_DIR,
    ALERTS_DIR,
    CHART_DIR,
    CI_VALUES_DIR,
    COMPONENTS,
    DASHBOARDS_DIR,
    K8S_DIR,
    KUBE_VERSION,
    NAMESPACE,
    OPERATIONS_DOC,
    RELEASE_NAME,
    ROOT,
    SCHEMA_FILE,
    VALUES_FILE,
    YAMLLINT_CONFIG,
)
from deploy.dashboards import render_dashboards
from deploy.render import k8s_files, manifest_documents, render_chart
from deploy.schema import param_descriptions, render_schema
from deploy.slo import SLO_RULES_FILE, render_rules

Problems = list[str]


class ToolMissing(Exception):
    """A command-line tool a check needs is not installed."""


# --------------------------------------------------------------------------------------------------------- helpers


def scenarios() -> dict[str, Path]:
    """Scenario name -> values file, for every ``ci/<name>-values.yaml``."""
    return {p.name.removesuffix("-values.yaml"): p for p in sorted(CI_VALUES_DIR.glob("*-values.yaml"))}


def load_values(path: Path) -> dict[str, Any]:
    """A values file as a dict (an empty or comment-only file is ``{}``)."""
    loaded = yaml.safe_load(path.read_text())
    return loaded if isinstance(loaded, dict) else {}


def rendered_objects(
    values: dict[str, Any], name: str = RELEASE_NAME, namespace: str = NAMESPACE
) -> list[tuple[str, dict[str, Any]]]:
    """(template path, object) for every object the chart renders with ``values``."""
    return [(path, yaml.safe_load(doc)) for path, doc in manifest_documents(render_chart(values, name, namespace))]


def promtool() -> str:
    """Path of promtool, or ToolMissing with the way to install it."""
    found = shutil.which("promtool")
    if not found:
        raise ToolMissing("promtool not found: run `make system-deps` (it installs the Debian package `prometheus`)")
    return found


def run_promtool(*args: str, cwd: Path | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run promtool; returns its exit status and combined output."""
    proc = subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    if kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        spec: dict[str, Any] = obj["spec"]["template"]["spec"]
        return spec
    if kind == "Pod":
        pod: dict[str, Any] = obj["spec"]
        return pod
    return None


# ----------------------------------------------------------------------------------------------------- helm lint


def check_lint(values: dict[str, Any] | None) -> Problems:
    """``helm lint --strict`` with the given values (None: the chart's defaults)."""
    import helm_python

    report = helm_python.lint(CHART_DIR, values, strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [f"{m['path']}: {m['error']}" for m in report.get("messages", []) if int(m.get("severity", 0)) >= 2]
    problems += [str(e) for e in report.get("errors", []) if str(e) not in " ".join(problems)]
    return problems


# ------------------------------------------------------------------------------------------- manifest validation

CRD_VALIDATOR_DIR = CHART_DIR.parent.parent / "crd-schemas"
"""npm project of the upstream CRD schemas (``make crd-schemas`` installs it) and its ``validate.mjs``."""
CUSTOM_API_GROUPS = ("monitoring.coreos.com/", "keda.sh/")


def validate_custom_resources(objects: list[dict[str, Any]]) -> list[str | None]:
    """Validate Prometheus Operator and KEDA objects against the upstream CRD schemas (as the npm packages
    ``@kubernetes-models/prometheus-operator`` and ``@kubernetes-models/keda`` compile them), in one Node process."""
    if not objects:
        return []
    node = shutil.which("node")
    if node is None:
        raise ToolMissing("node not found: run `make system-deps` (Debian package nodejs)")
    if not (CRD_VALIDATOR_DIR / "node_modules" / "@kubernetes-models").is_dir():
        raise ToolMissing(f"the CRD schemas are not installed in {CRD_VALIDATOR_DIR}: run `make crd-schemas`")
    proc = subprocess.run(
        [node, str(CRD_VALIDATOR_DIR / "validate.mjs")],
        input=json.dumps(objects), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"validate.mjs failed:\n{proc.stderr}")
    results: list[str | None] = json.loads(proc.stdout)
    return [
        None if problem is None else f"{obj['kind']}/{obj['metadata'].get('name', '?')}: {problem}"
        for obj, problem in zip(objects, results, strict=True)
    ]


def validate_object(obj: dict[str, Any]) -> str | None:
    """Validate one built-in object against Kubernetes 1.30 (strict); returns the problem or None."""
    import kubernetes_validate

    kind = obj.get("kind", "?")
    name = (obj.get("metadata") or {}).get("name", "?")
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{kind}/{name}: {exc.message} at {'/'.join(str(p) for p in exc.absolute_path)}"
    except kubernetes_validate.SchemaNotFoundError as exc:
        return f"{kind}/{name}: {exc.message}"
    return None


def validate_objects(objects: list[tuple[str, dict[str, Any]]]) -> Problems:
    """Every rendered object: built-in kinds with kubernetes-validate, custom resources with their upstream CRDs."""
    custom = [obj for _, obj in objects if str(obj.get("apiVersion", "")).startswith(CUSTOM_API_GROUPS)]
    builtin = [obj for _, obj in objects if obj not in custom]
    problems = [p for obj in builtin if (p := validate_object(obj))]
    return problems + [p for p in validate_custom_resources(custom) if p]


def check_conventions(objects: list[tuple[str, dict[str, Any]]]) -> Problems:
    """The chart's rules on rendered objects (see the module docstring)."""
    problems: Problems = []
    facemint = {c.name for c in COMPONENTS}
    seen: set[tuple[str, str]] = set()
    for template, obj in objects:
        kind = obj["kind"]
        meta = obj["metadata"]
        name = meta["name"]
        where = f"{kind}/{name} ({template})"
        if (kind, name) in seen:
            problems.append(f"{where}: duplicate name")
        seen.add((kind, name))
        if len(name) > 63:
            problems.append(f"{where}: name longer than 63 characters")
        for key, value in (meta.get("labels") or {}).items():
            if len(str(value)) > 63:
                problems.append(f"{where}: label {key} longer than 63 characters")
        selector = ((obj.get("spec") or {}).get("selector") or {}) if kind != "Service" else obj["spec"]["selector"]
        match = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
        for banned in ("helm.sh/chart", "app.kubernetes.io/version"):
            if banned in match:
                problems.append(f"{where}: selector uses the changing label {banned}")
        pod = _pod_spec(obj)
        if pod is None:
            continue
        component = (obj["spec"].get("template", {}).get("metadata", {}).get("labels") or meta.get("labels") or {}).get(
            "app.kubernetes.io/component"
        )
        psc = pod.get("securityContext") or {}
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        for container in pod.get("initContainers", []) + pod.get("containers", []):
            cname = f"{where} container {container['name']}"
            sc = container.get("securityContext") or {}
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cname}: root filesystem is not read-only")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cname}: allowPrivilegeEscalation is not false")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{cname}: capabilities do not drop ALL")
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append(f"{cname}: runAsNonRoot is not set")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                problems.append(f"{cname}: seccomp profile is {seccomp}, not RuntimeDefault")
            image = str(container.get("image", ""))
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"{cname}: image {image!r} has no fixed tag")
            if not (container.get("resources") or {}).get("requests"):
                problems.append(f"{cname}: no resource requests")
        if kind == "Deployment" and component in facemint:
            main = pod["containers"][0]
            live = (main.get("livenessProbe") or {}).get("httpGet", {}).get("path")
            ready = (main.get("readinessProbe") or {}).get("httpGet", {}).get("path")
            if live != "/healthz" or ready != "/readyz":
                problems.append(f"{where}: probes are {live}/{ready}, not /healthz and /readyz")
            if pod.get("enableServiceLinks") is not False:
                problems.append(f"{where}: enableServiceLinks is not false (FACEMINT_* service link variables)")
    return problems


def check_render(values: dict[str, Any]) -> Problems:
    """Render with ``values``; every object validates and follows the conventions."""
    objects = rendered_objects(values)
    return validate_objects(objects) + check_conventions(objects)


def check_long_release_name() -> Problems:
    """A 53-character release name (Helm's maximum) still yields valid, distinct names."""
    name = "a-very-long-release-name-for-facemint-that-is-53-char"
    assert len(name) == 53
    values = load_values(CI_VALUES_DIR / "ha-values.yaml")
    objects = rendered_objects(values, name=name)
    return validate_objects(objects) + check_conventions(objects)


def check_components() -> Problems:
    """The chart's component table agrees with deploy.COMPONENTS (names, values keys, settings prefixes)."""
    problems: Problems = []
    objects = [obj for _, obj in rendered_objects({}) if "app.kubernetes.io/component" in obj["metadata"]["labels"]]
    deployments = {
        o["metadata"]["labels"]["app.kubernetes.io/component"]: o for o in objects if o["kind"] == "Deployment"
    }
    config = {o["metadata"]["labels"]["app.kubernetes.io/component"]: o for o in objects if o["kind"] == "ConfigMap"}
    expected = {c.name for c in COMPONENTS}
    if set(deployments) != expected:
        problems.append(f"Deployments {sorted(deployments)} differ from deploy.COMPONENTS {sorted(expected)}")
    defaults = load_values(VALUES_FILE)
    for c in COMPONENTS:
        if c.key not in defaults:
            problems.append(f"values.yaml has no block {c.key} for {c.name}")
        cm = config.get(c.name)
        if cm and not all(k.startswith(f"FACEMINT_{c.env_prefix}_") for k in cm["data"]):
            problems.append(f"ConfigMap of {c.name} has settings without the prefix FACEMINT_{c.env_prefix}_")
        dep = deployments.get(c.name)
        if dep:
            ports = {p["name"] for p in dep["spec"]["template"]["spec"]["containers"][0]["ports"]}
            if ("grpc" in ports) != c.grpc:
                problems.append(f"{c.name}: gRPC port presence differs from deploy.COMPONENTS")
    return problems


def check_template_coverage() -> Problems:
    """Every template file renders at least one object in at least one scenario."""
    produced: set[str] = set()
    for path in scenarios().values():
        produced |= {template for template, _ in manifest_documents(render_chart(load_values(path)))}
    templates = {
        f"facemint/{p.relative_to(CHART_DIR).as_posix()}"
        for p in (CHART_DIR / "templates").rglob("*.yaml")
        if p.name != "validate.yaml"
    }
    return [f"{t} renders nothing in any ci/ scenario" for t in sorted(templates - produced)]


# ------------------------------------------------------------------------------------------- settings contract


def _known_setting(model: Any, parts: list[str]) -> bool:
    """Whether ``PART__PART`` (already split, upper-case) names a field of the pydantic model."""
    import typing

    from pydantic import BaseModel

    field = model.model_fields.get(parts[0].lower())
    if field is None:
        return False
    if len(parts) == 1:
        return True
    candidates = [field.annotation, *typing.get_args(field.annotation)]
    nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
    if nested:
        return _known_setting(nested[0], parts[1:])
    return typing.get_origin(field.annotation) is dict


def _component_env(objects: list[dict[str, Any]], component: str) -> dict[str, str]:
    """The environment the chart gives a component's container: its ConfigMap, Secret references, literal env."""
    env: dict[str, str] = {}
    for obj in objects:
        labels = obj["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/component") != component:
            continue
        if obj["kind"] == "ConfigMap":
            env.update(obj["data"])
        elif obj["kind"] == "Deployment":
            for var in obj["spec"]["template"]["spec"]["containers"][0].get("env", []):
                secret = "valueFrom" in var and "secretKeyRef" in var["valueFrom"]
                placeholder = "postgresql://facemint:secret@postgresql:5432/facemint" if "DSN" in var["name"] else "x"
                env[var["name"]] = var.get("value", placeholder if secret else "from-kubernetes")
    return env


def check_settings_contract(values: dict[str, Any]) -> Problems:
    """Every FACEMINT_* variable the chart sets is a field of the service's settings class, and the environment
    loads into that class (a variable pydantic would silently ignore, or one it rejects, is a problem)."""
    import importlib
    import os

    objects = [obj for _, obj in rendered_objects(values)]
    problems: Problems = []
    for c in COMPONENTS:
        env = _component_env(objects, c.name)
        if not env:
            continue
        module, cls_name = c.settings.split(":")
        try:
            cls = getattr(importlib.import_module(module), cls_name)
        except ImportError as exc:
            problems.append(f"{c.name}: cannot import {c.settings} ({exc}); run `make setup`")
            continue
        prefix = f"FACEMINT_{c.env_prefix}_"
        for name in sorted(env):
            if name.startswith(prefix) and not _known_setting(cls, name[len(prefix) :].split("__")):
                problems.append(f"{c.name}: {name} is not a setting of {c.settings}")
        saved = dict(os.environ)
        try:
            for key in [k for k in os.environ if k.startswith(prefix)]:
                del os.environ[key]
            os.environ.update(env)
            cls()
        except Exception as exc:  # noqa: BLE001 - a rejected environment is the finding
            problems.append(f"{c.name}: the rendered environment does not load: {exc}")
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return problems


# ------------------------------------------------------------------------------------------------ schema and docs


def _rejected(values: dict[str, Any]) -> bool:
    import helm_python

    lint_report = helm_python.lint(CHART_DIR, values, strict=True)
    try:
        render_chart(values)
    except helm_python.HelmError:
        return bool(lint_report.get("errors"))
    return False


NEGATIVE_CASES: dict[str, dict[str, Any]] = {
    "unknown top-level key": {"replicas": 3},
    "unknown key in a service block": {"gateway": {"replicas": 3}},
    "unknown key in an image": {"inference": {"image": {"digest": "sha256:0"}}},
    "unknown key in a Kubernetes passthrough": {"library": {"affinity": {"nodeAffinty": {}}}},
    "unknown key in triton": {"triton": {"gpus": 2}},
    "wrong type": {"taskOrchestrator": {"replicaCount": "3"}},
    "invalid setting name": {"mediaDecoder": {"env": {"not-an-env-name": "x"}}},
    "invalid enum": {"inference": {"runner": "tensorrt"}},
    "invalid quantity": {"webhookDispatcher": {"tmpSizeLimit": "lots"}},
}


def check_schema_negative() -> Problems:
    """The schema rejects unknown keys and wrong values in both lint and render."""
    return [f"accepted: {label}: {case}" for label, case in NEGATIVE_CASES.items() if not _rejected(case)]


def check_schema_closed() -> Problems:
    """Every object in values.schema.json is closed: additionalProperties is false, or keys match patterns."""
    schema = json.loads(SCHEMA_FILE.read_text())
    problems: Problems = []
    for path, node in _walk(schema):
        if not isinstance(node, dict):
            continue
        types = node.get("type")
        is_object = types == "object" or (isinstance(types, list) and "object" in types) or "properties" in node
        if not is_object:
            continue
        extra = node.get("additionalProperties", "missing")
        ours = not path.startswith("$defs")
        if extra == "missing":
            problems.append(f"{path or '(root)'}: no additionalProperties")
        elif ours and extra is not False:
            problems.append(f"{path}: additionalProperties is not false")
    return problems


def _leaves(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else str(key))
    else:
        yield path


def check_values_documented() -> Problems:
    """Every key of values.yaml is covered by a ``## @param`` (itself or an ancestor), and every @param exists."""
    text = VALUES_FILE.read_text()
    params = param_descriptions(text)
    defaults = yaml.safe_load(text)
    problems: Problems = []
    for leaf in _leaves(defaults):
        parts = leaf.split(".")
        if not any(".".join(parts[:i]) in params for i in range(1, len(parts) + 1)):
            problems.append(f"values.yaml: {leaf} has no ## @param")
    for param in params:
        node: Any = defaults
        for part in param.split("."):
            if not isinstance(node, dict) or part not in node:
                problems.append(f"values.yaml: ## @param {param} names no key")
                break
            node = node[part]
    schema = json.loads(SCHEMA_FILE.read_text())

    def declared(node: dict[str, Any], path: str) -> Iterator[str]:
        for key, child in node.get("properties", {}).items():
            full = f"{path}.{key}" if path else key
            yield full
            yield from declared(child, full)

    for path in declared(schema, ""):
        node = defaults
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        if node is None and not any(path.startswith(p + ".") for p in params if _is_free_map(defaults, p)):
            problems.append(f"schema declares {path}, which values.yaml does not set (so it is undocumented)")
    return problems


def _is_free_map(defaults: dict[str, Any], path: str) -> bool:
    node: Any = defaults
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return isinstance(node, dict) and not node


# -------------------------------------------------------------------------------------------------------- yamllint


def _yamllint(paths: list[Path]) -> Problems:
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    config = YamlLintConfig(file=str(YAMLLINT_CONFIG))
    problems: Problems = []
    for path in paths:
        for problem in linter.run(path.read_text(), config, str(path)):
            if problem.level == "error" or problem.level == "warning":
                problems.append(f"{path}:{problem.line}:{problem.column}: {problem.message} ({problem.rule})")
    return problems


def chart_yaml_files() -> list[Path]:
    """The chart's plain YAML files (templates excluded: they are Go templates)."""
    files = [CHART_DIR / "Chart.yaml", VALUES_FILE, *sorted(CI_VALUES_DIR.glob("*.yaml"))]
    files += sorted((CHART_DIR / "files").rglob("*.yml")) + sorted((CHART_DIR / "files").rglob("*.yaml"))
    return files + [YAMLLINT_CONFIG]


def check_yamllint_sources() -> Problems:
    """yamllint over the chart's YAML and deploy/k8s/."""
    return _yamllint(chart_yaml_files() + sorted(K8S_DIR.rglob("*.yaml")))


def check_yamllint_rendered(values: dict[str, Any]) -> Problems:
    """yamllint over a scenario's rendered manifests, one file per template."""
    with tempfile.TemporaryDirectory() as tmp:
        files = k8s_files(render_chart(values))
        paths = []
        for relative, text in files.items():
            target = Path(tmp) / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            paths.append(target)
        return [problem.replace(tmp, "<rendered>") for problem in _yamllint(paths)]


# --------------------------------------------------------------------------------------------------------- alerts


def rule_files() -> list[Path]:
    """files/alerts/*.rules.yml: the hand-written alerts and the generated SLO rules, in the chart's order."""
    return sorted(ALERTS_DIR.glob("*.rules.yml"))


def all_rules() -> list[dict[str, Any]]:
    """Every rule, alerting and recording, of every rules file."""
    return [
        rule for path in rule_files() for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]
    ]


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule."""
    return [rule for rule in all_rules() if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    """Every recording rule."""
    return [rule for rule in all_rules() if "record" in rule]


def check_promtool_rules() -> Problems:
    """``promtool check rules`` on the rules files."""
    code, out = run_promtool("check", "rules", *map(str, rule_files()))
    return [] if code == 0 else [out]


def check_promtool_tests() -> Problems:
    """``promtool test rules`` on every file of files/alerts/tests/."""
    tests = sorted(p.name for p in ALERT_TESTS_DIR.glob("*.yml"))
    if not tests:
        return ["no promtool tests in files/alerts/tests/"]
    # The SLO tests evaluate every rule for up to 8 simulated hours: a few seconds of CPU, minutes on a loaded machine.
    code, out = run_promtool("test", "rules", *tests, cwd=ALERT_TESTS_DIR, timeout=900)
    return [] if code == 0 else [out]


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the headings of docs/operations.md."""
    anchors = set()
    for line in OPERATIONS_DOC.read_text().splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def _rule_tests() -> tuple[set[str], set[str], list[str]]:
    """(alerts with a firing case, alerts with a not-firing case, every promql_expr_test expression)."""
    firing: set[str] = set()
    quiet: set[str] = set()
    exprs: list[str] = []
    for test_file in ALERT_TESTS_DIR.glob("*.yml"):
        for test in yaml.safe_load(test_file.read_text()).get("tests", []):
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
            exprs += [case["expr"] for case in test.get("promql_expr_test", [])]
    return firing, quiet, exprs


def check_alert_contract() -> Problems:
    """Severity, summary, description, runbook_url on every alert; the runbook exists; a promtool case in which it
    fires and one in which it does not; every recording rule evaluated by a promql_expr_test."""
    problems: Problems = []
    anchors = runbook_anchors() if OPERATIONS_DOC.exists() else set()
    firing, quiet, exprs = _rule_tests()
    for rule in alert_rules():
        name = rule["alert"]
        if (rule.get("labels") or {}).get("severity") not in {"critical", "warning", "info"}:
            problems.append(f"{name}: severity label missing or not critical/warning/info")
        annotations = rule.get("annotations") or {}
        for key in ("summary", "description", "runbook_url"):
            if not annotations.get(key):
                problems.append(f"{name}: annotation {key} missing")
        url = str(annotations.get("runbook_url", ""))
        if not url.startswith("docs/operations.md#"):
            problems.append(f"{name}: runbook_url {url!r} does not point into docs/operations.md")
        elif url.split("#", 1)[1] not in anchors:
            problems.append(f"{name}: docs/operations.md has no section #{url.split('#', 1)[1]}")
        if name not in firing:
            problems.append(f"{name}: no promtool test case in which it fires")
        if name not in quiet:
            problems.append(f"{name}: no promtool test case in which it does not fire")
    for rule in recording_rules():
        values = [f'"{value}"' for value in (rule.get("labels") or {}).values()]
        if not any(rule["record"] in expr and all(v in expr for v in values) for expr in exprs):
            problems.append(f"{rule['record']}{rule.get('labels') or ''}: no promql_expr_test evaluates it")
    return problems


def deployed_components(values: dict[str, Any]) -> set[str]:
    """The components a render with ``values`` deploys (Triton included when the chart runs it)."""
    merged = load_values(VALUES_FILE)
    _merge(merged, values)
    out = {c.name for c in COMPONENTS if merged[c.key]["enabled"]}
    return out | ({"triton"} if merged["triton"]["enabled"] else set())


def _merge(base: dict[str, Any], override: dict[str, Any]) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def expected_rule_groups(deployed: set[str], runbook_base: str = "") -> list[dict[str, Any]]:
    """The groups the chart's PrometheusRule carries: every rules file's, without the rules of components that are
    not deployed (label ``component``), runbook links prefixed with ``runbook_base``."""
    groups = []
    for path in rule_files():
        text = path.read_text()
        if runbook_base:
            text = text.replace("runbook_url: docs/", f"runbook_url: {runbook_base}/docs/")
        for group in yaml.safe_load(text)["groups"]:
            rules = [r for r in group["rules"] if (r.get("labels") or {}).get("component", "") in deployed | {""}]
            if rules:
                groups.append({**group, "rules": rules})
    return groups


def check_prometheusrule_matches() -> Problems:
    """In every scenario, the rendered PrometheusRule carries exactly the rules files' groups less the rules of the
    components the scenario does not deploy (runbook links made absolute), and passes ``promtool check rules``."""
    problems: Problems = []
    base = "https://example.com/repo"
    for scenario, path in sorted(scenarios().items()):
        values = load_values(path)
        _merge(values, {"metrics": {"prometheusRule": {"enabled": True, "runbookBaseUrl": base}}})
        rules = [obj for _, obj in rendered_objects(values) if obj["kind"] == "PrometheusRule"]
        if len(rules) != 1:
            problems.append(f"{scenario}: expected one PrometheusRule, got {len(rules)}")
            continue
        if rules[0]["spec"] != {"groups": expected_rule_groups(deployed_components(values), base)}:
            problems.append(f"{scenario}: the rendered PrometheusRule differs from files/alerts/*.rules.yml")
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as tmp:
            yaml.safe_dump(rules[0]["spec"], tmp)
            tmp.flush()
            code, out = run_promtool("check", "rules", tmp.name)
            if code != 0:
                problems.append(f"{scenario}: {out}")
    return problems


# ------------------------------------------------------------------------------------------------------ dashboards

GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$namespace": ".*",
    "${namespace}": ".*",
    "${service}": "facemint_inference",
    "$service": "facemint_inference",
}


def dashboard_exprs() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, PromQL with Grafana variables substituted) of every target."""
    out = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
                    expr = expr.replace(variable, value)
                out.append((path.name, panel["title"], expr))
    return out


def check_dashboard_promql() -> Problems:
    """Every dashboard query parses: each becomes a recording rule checked by ``promtool check rules``."""
    exprs = dashboard_exprs()
    if not exprs:
        return ["no dashboard queries found"]
    rules = [{"record": f"facemint:dashboard_check:{i}", "expr": expr} for i, (_, _, expr) in enumerate(exprs)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml") as tmp:
        yaml.safe_dump({"groups": [{"name": "dashboard-promql", "rules": rules}]}, tmp)
        tmp.flush()
        code, out = run_promtool("check", "rules", tmp.name)
    if code == 0:
        return []
    problems = [out]
    for match in re.finditer(r"dashboard_check:(\d+)", out):
        file, title, expr = exprs[int(match.group(1))]
        problems.append(f"{file} / {title}: {expr}")
    return problems


def check_dashboard_structure() -> Problems:
    """Unique uids and panel ids, panels within the 24-column grid, a datasource and a refId on every target."""
    problems: Problems = []
    uids = set()
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        doc = json.loads(path.read_text())
        if doc.get("uid") in uids:
            problems.append(f"{path.name}: duplicate uid {doc.get('uid')}")
        uids.add(doc.get("uid"))
        ids = set()
        for panel in doc["panels"]:
            where = f"{path.name} / {panel.get('title')}"
            if panel["id"] in ids:
                problems.append(f"{where}: duplicate panel id {panel['id']}")
            ids.add(panel["id"])
            grid = panel["gridPos"]
            if grid["x"] + grid["w"] > 24 or grid["w"] <= 0 or grid["h"] <= 0:
                problems.append(f"{where}: gridPos {grid} outside the grid")
            if panel["type"] == "row":
                continue
            if not panel.get("targets"):
                problems.append(f"{where}: no targets")
            for target in panel.get("targets", []):
                if not target.get("refId") or not target.get("expr") or not target.get("datasource"):
                    problems.append(f"{where}: target without refId, expr or datasource")
        variables = {v["name"] for v in doc["templating"]["list"]}
        used = set(re.findall(r"\$\{?(\w+)", json.dumps(doc["panels"]))) - {"__rate_interval", "__interval", "1"}
        if used - variables:
            problems.append(f"{path.name}: undefined variables {sorted(used - variables)}")
    return problems


_METRIC = re.compile(r"\b((?:facemint|nv|pg)_[a-z0-9_]+)")
_SUFFIXES = ("_bucket", "_count", "_sum")

EXTERNAL_METRICS = {
    # Triton Inference Server (its user guide, docs/user_guide/metrics.md): per model and version...
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_pending_request_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    # ... and per GPU (label gpu_uuid).
    "nv_gpu_utilization",
    "nv_gpu_memory_total_bytes",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_power_usage",
    "nv_gpu_power_limit",
    "nv_energy_consumption",
    # postgres_exporter (prometheus-community), its default collectors.
    "pg_up",
    "pg_settings_max_connections",
    "pg_stat_activity_count",
    "pg_stat_database_numbackends",
}
"""Metrics of other software that the dashboards and rules may use, as those projects document them."""


def contract_metrics() -> set[str]:
    """The metric names in the contract table of docs/operations.md (``<svc>`` placeholders expanded)."""
    names: set[str] = set()
    text = OPERATIONS_DOC.read_text() if OPERATIONS_DOC.exists() else ""
    for name in re.findall(r"`(facemint_[a-z0-9_<>]+)`", text):
        if "<svc>" in name:
            names |= {name.replace("facemint_<svc>", c.metric_prefix) for c in COMPONENTS}
        else:
            names.add(name)
    return names


def _base(metric: str) -> str:
    for suffix in _SUFFIXES:
        if metric.endswith(suffix):
            return metric[: -len(suffix)]
    return metric


def used_metrics() -> dict[str, str]:
    """Every metric name the dashboards and the rules use -> where it is first used."""
    used: dict[str, str] = {}
    for file, title, expr in dashboard_exprs():
        for metric in _METRIC.findall(expr):
            used.setdefault(metric, f"{file} / {title}")
    for rule in all_rules():
        for metric in _METRIC.findall(rule["expr"]):
            used.setdefault(metric, f"rule {rule.get('alert') or rule.get('record')}")
    return used


def check_metrics_contract() -> Problems:
    """Every metric the dashboards and the rules use is in the contract of docs/operations.md (what Facemint
    exports), one of Triton's or postgres_exporter's documented metrics, or added by the tracing branch."""
    known = {_base(m) for m in contract_metrics()}
    return [
        f"{where}: {metric} is neither in docs/operations.md#metrics nor documented by Triton or postgres_exporter"
        for metric, where in used_metrics().items()
        if metric not in EXTERNAL_METRICS and _base(metric) not in known
    ]


# ------------------------------------------------------------------------------------------------------------ drift


def check_drift() -> Problems:
    """values.schema.json, the SLO rules, the dashboards and deploy/k8s/ equal what ``python -m deploy.render``
    writes."""
    problems: Problems = []
    if not SCHEMA_FILE.exists() or SCHEMA_FILE.read_text() != render_schema():
        problems.append("values.schema.json is stale: run `make manifests`")
    if not SLO_RULES_FILE.exists() or SLO_RULES_FILE.read_text() != render_rules():
        problems.append("files/alerts/slo.rules.yml is stale: run `make manifests`")
    for name, text in render_dashboards().items():
        path = DASHBOARDS_DIR / name
        if not path.exists() or path.read_text() != text:
            problems.append(f"files/dashboards/{name} is stale: run `make manifests`")
    extra = {p.name for p in DASHBOARDS_DIR.glob("*.json")} - set(render_dashboards())
    problems += [f"files/dashboards/{name} is not generated by deploy/dashboards.py" for name in sorted(extra)]
    expected = k8s_files(render_chart())
    actual = {p.relative_to(K8S_DIR).as_posix(): p.read_text() for p in K8S_DIR.rglob("*") if p.is_file()}
    for relative in sorted(set(expected) | set(actual)):
        if relative not in actual:
            problems.append(f"deploy/k8s/{relative} is missing: run `make manifests`")
        elif relative not in expected:
            problems.append(f"deploy/k8s/{relative} is not rendered from the chart: run `make manifests`")
        elif actual[relative] != expected[relative]:
            problems.append(f"deploy/k8s/{relative} differs from the chart: run `make manifests`")
    return problems


# ------------------------------------------------------------------------------------------------------ Dockerfiles

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}\b")


def _display(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def dockerfile_problems(path: Path, entrypoint: str | None) -> Problems:
    """A Dockerfile pins its external bases by digest, ends as a non-root user and has an exec-form entrypoint."""
    if not path.exists():
        return [f"{_display(path)} is missing"]
    problems: Problems = []
    text = path.read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
    stages: set[str] = set()
    from_line = re.compile(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.MULTILINE | re.IGNORECASE)
    for base, alias in from_line.findall(text):
        resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), base)
        if resolved not in stages and resolved != "scratch" and not _DIGEST.search(resolved):
            problems.append(f"{_display(path)}: base {base} is not pinned by digest")
        if alias:
            stages.add(alias)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    if not users or users[-1].split(":")[0] in {"root", "0"}:
        problems.append(f"{_display(path)}: the final USER is missing or root")
    if entrypoint:
        found = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", text, re.MULTILINE)
        if not found:
            problems.append(f"{_display(path)}: no exec-form ENTRYPOINT")
        elif json.loads(found[-1])[:1] != [entrypoint]:
            problems.append(f'{_display(path)}: ENTRYPOINT is {found[-1]}, expected ["{entrypoint}"]')
    return problems


def check_dockerfiles() -> Problems:
    """The services' Dockerfile (one, parametrised by service), the models' and the stand-ins' conform, and no
    service keeps a Dockerfile of its own."""
    problems = dockerfile_problems(ROOT / "deploy" / "docker" / "service.Dockerfile", "facemint-service")
    problems += dockerfile_problems(ROOT / "deploy" / "docker" / "models.Dockerfile", None)
    problems += dockerfile_problems(ROOT / "deploy" / "compose" / "standins.Dockerfile", None)
    problems += [
        f"{_display(p)}: services build from deploy/docker/service.Dockerfile"
        for p in ROOT.glob("services/*/Dockerfile")
    ]
    return problems


# ------------------------------------------------------------------------------------------------------------- main


def all_checks() -> list[tuple[str, Callable[[], Problems]]]:
    """Every check, named as ``make helm-lint`` reports it."""
    checks: list[tuple[str, Callable[[], Problems]]] = [
        ("helm lint --strict (chart defaults)", partial(check_lint, None))
    ]
    for path in scenarios().values():
        values = load_values(path)
        checks += [
            (f"helm lint --strict ci/{path.name}", partial(check_lint, values)),
            (f"render + kubernetes-validate --strict {KUBE_VERSION} ci/{path.name}", partial(check_render, values)),
            (f"yamllint rendered ci/{path.name}", partial(check_yamllint_rendered, values)),
            (f"settings contract ci/{path.name}", partial(check_settings_contract, values)),
        ]
    checks += [
        ("render with a 53-character release name", check_long_release_name),
        ("component table matches deploy.COMPONENTS", check_components),
        ("every template renders in some scenario", check_template_coverage),
        ("schema rejects unknown keys and bad values", check_schema_negative),
        ("schema objects are closed", check_schema_closed),
        ("values.yaml documented with ## @param", check_values_documented),
        ("yamllint chart sources and deploy/k8s", check_yamllint_sources),
        ("promtool check rules", check_promtool_rules),
        ("promtool test rules", check_promtool_tests),
        ("rules: labels, annotations, runbooks, tests both ways", check_alert_contract),
        ("PrometheusRule equals the rules files, per scenario", check_prometheusrule_matches),
        ("dashboard PromQL parses (promtool)", check_dashboard_promql),
        ("dashboard structure", check_dashboard_structure),
        ("metrics used are in the contract", check_metrics_contract),
        ("drift: schema, SLO rules, dashboards, deploy/k8s", check_drift),
        ("Dockerfiles", check_dockerfiles),
    ]
    return checks


def main(argv: list[str] | None = None) -> int:
    """Run every check; exit 1 if any fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--skip-missing-tools", action="store_true", help="report SKIP instead of FAIL when promtool is missing"
    )
    args = parser.parse_args(argv)
    failed = passed = skipped = 0
    for name, check in all_checks():
        try:
            problems = check()
        except ToolMissing as exc:
            if args.skip_missing_tools:
                skipped += 1
                print(f"SKIP  {name}: {exc}")
                continue
            problems = [str(exc)]
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed check, reported with the others
            problems = [f"{type(exc).__name__}: {exc}"]
        if problems:
            failed += 1
            print(f"FAIL  {name}")
            for problem in problems:
                print("      " + problem.rstrip().replace("\n", "\n      "))
        else:
            passed += 1
            print(f"PASS  {name}")
    print(f"helm-lint: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
