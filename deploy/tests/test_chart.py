"""The Helm chart, its alerts, dashboards, generated files and Dockerfiles pass every check of ``make helm-lint``.

Each test runs one check of :mod:`deploy.validate` (the same functions the command runs). The promtool checks fail,
saying how to install it, where promtool is missing (``make test`` installs it first: ``make system-deps``). The last
tests show that the checks catch what they are meant to catch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deploy import validate as v
from facemint_task_orchestrator.__main__ import CONSUMERS

SCENARIOS = v.scenarios()


def no_problems(check: Callable[[], v.Problems]) -> None:
    """Run a check; fail with every problem it reports, or with how to install its missing tool."""
    try:
        problems = check()
    except v.ToolMissing as exc:
        pytest.fail(str(exc))
    assert problems == [], "\n".join(problems)


def scenario_values(name: str) -> dict[str, Any]:
    return v.load_values(SCENARIOS[name])


def test_every_expected_ci_scenario_exists() -> None:
    assert {"default", "gpu-triton", "minimal", "ha"} <= set(SCENARIOS)


def test_chart_defaults_pass_helm_lint_strict() -> None:
    no_problems(lambda: v.check_lint(None))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_passes_helm_lint_strict(scenario: str) -> None:
    no_problems(lambda: v.check_lint(scenario_values(scenario)))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenario_renders_objects_valid_for_kubernetes_1_30_and_chart_conventions(scenario: str) -> None:
    no_problems(lambda: v.check_render(scenario_values(scenario)))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_scenario_passes_yamllint(scenario: str) -> None:
    no_problems(lambda: v.check_yamllint_rendered(scenario_values(scenario)))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_rendered_environment_loads_into_each_services_settings(scenario: str) -> None:
    no_problems(lambda: v.check_settings_contract(scenario_values(scenario)))


def test_release_name_of_53_characters_yields_valid_distinct_names() -> None:
    no_problems(v.check_long_release_name)


def test_component_table_of_the_chart_matches_deploy_components() -> None:
    no_problems(v.check_components)


def test_every_template_renders_in_some_scenario() -> None:
    no_problems(v.check_template_coverage)


@pytest.mark.parametrize("case", sorted(v.NEGATIVE_CASES))
def test_schema_rejects_bad_values(case: str) -> None:
    assert v._rejected(v.NEGATIVE_CASES[case]), f"accepted: {v.NEGATIVE_CASES[case]}"


def test_schema_objects_are_closed() -> None:
    no_problems(v.check_schema_closed)


def test_every_value_is_documented_with_param() -> None:
    no_problems(v.check_values_documented)


def test_chart_sources_and_deploy_k8s_pass_yamllint() -> None:
    no_problems(v.check_yamllint_sources)


def test_alert_rules_pass_promtool_check_rules() -> None:
    no_problems(v.check_promtool_rules)


@pytest.mark.timeout(900)  # a few seconds of CPU, minutes on a loaded machine (see check_promtool_tests)
def test_alert_unit_tests_pass_promtool_test_rules() -> None:
    no_problems(v.check_promtool_tests)


def test_every_alert_has_severity_annotations_runbook_and_a_firing_test() -> None:
    no_problems(v.check_alert_contract)


def test_prometheusrule_carries_exactly_the_rules_file() -> None:
    no_problems(v.check_prometheusrule_matches)


def test_every_dashboard_query_parses_as_promql() -> None:
    no_problems(v.check_dashboard_promql)


def test_dashboards_are_structurally_valid() -> None:
    no_problems(v.check_dashboard_structure)


def test_dashboards_and_alerts_use_only_contract_metrics() -> None:
    no_problems(v.check_metrics_contract)


def test_schema_dashboards_and_deploy_k8s_are_up_to_date() -> None:
    no_problems(v.check_drift)


def test_dockerfiles_pin_bases_run_as_non_root_with_exec_entrypoint() -> None:
    no_problems(v.check_dockerfiles)


# The checks have teeth.


def test_conventions_flag_a_container_with_a_writable_root_filesystem() -> None:
    objects = v.rendered_objects({})
    deployment = next(copy.deepcopy(o) for _, o in objects if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    problems = v.check_conventions([("test", deployment)])
    assert any("root filesystem is not read-only" in p for p in problems)


def test_conventions_flag_a_selector_with_the_chart_version_label() -> None:
    service = next(copy.deepcopy(o) for _, o in v.rendered_objects({}) if o["kind"] == "Service")
    service["spec"]["selector"]["helm.sh/chart"] = "facemint-0.1.0"
    assert any("helm.sh/chart" in p for p in v.check_conventions([("test", service)]))


def test_settings_contract_flags_a_variable_no_settings_class_reads() -> None:
    problems = v.check_settings_contract({"gateway": {"env": {"FACEMINT_GATEWAY_NO_SUCH_SETTING": "1"}}})
    assert any("FACEMINT_GATEWAY_NO_SUCH_SETTING is not a setting" in p for p in problems)


def test_settings_contract_flags_a_value_the_settings_class_rejects() -> None:
    problems = v.check_settings_contract({"mediaDecoder": {"env": {"FACEMINT_MEDIA_DECODER_DECODE__WORKERS": "0"}}})
    assert any("does not load" in p for p in problems)


def test_kubernetes_validation_flags_an_unknown_field() -> None:
    deployment = next(copy.deepcopy(o) for _, o in v.rendered_objects({}) if o["kind"] == "Deployment")
    deployment["spec"]["replica"] = 2
    assert v.validate_object(deployment) is not None


def test_dockerfile_check_flags_an_unpinned_base_a_root_user_and_a_shell_entrypoint(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.11-slim AS build\nFROM build\nUSER root\nENTRYPOINT facemint-gateway\n")
    problems = v.dockerfile_problems(dockerfile, "facemint-gateway")
    assert any("not pinned by digest" in p for p in problems)
    assert any("USER is missing or root" in p for p in problems)
    assert any("no exec-form ENTRYPOINT" in p for p in problems)


@pytest.mark.parametrize("metrics_from", [[], [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]])
def test_restricting_the_public_api_never_renders_an_open_gateway_policy(metrics_from: list[dict[str, Any]]) -> None:
    gateway_from = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    values = {"networkPolicy": {"enabled": True, "gatewayFrom": gateway_from, "metricsFrom": metrics_from}}
    policies = [obj for _, obj in v.rendered_objects(values) if obj["kind"] == "NetworkPolicy"]
    gateway = next(p for p in policies if p["metadata"]["name"].endswith("-gateway"))
    http_rules = [rule for rule in gateway["spec"]["ingress"] if {"port": "http", "protocol": "TCP"} in rule["ports"]]
    assert [rule.get("from") for rule in http_rules] == [gateway_from + metrics_from]


def test_postgresql_connection_budget_fails_a_render_that_could_exceed_max_connections() -> None:
    values = scenario_values("ha")
    values["postgresql"]["maxConnections"] = 100  # PostgreSQL's default, against 28 pods x 6
    with pytest.raises(Exception, match=r"connection budget exceeded: 28 pods x postgresql.poolSize 6 = 168"):
        v.rendered_objects(values)


def test_pods_keep_serving_through_a_pre_stop_sleep_shorter_than_their_grace_period() -> None:
    for _, obj in v.rendered_objects(scenario_values("ha")):
        if obj["kind"] == "Deployment" and obj["metadata"]["name"].startswith("facemint-"):
            pod = obj["spec"]["template"]["spec"]
            container = pod["containers"][0]
            assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}, obj["metadata"]["name"]
            assert pod["terminationGracePeriodSeconds"] > 5 + 20
    with pytest.raises(Exception, match="terminationGracePeriodSeconds"):
        v.rendered_objects({"terminationGracePeriodSeconds": 20})


def test_inference_reaches_every_triton_pod_through_a_headless_service() -> None:
    objects = {
        (obj["kind"], obj["metadata"]["name"]): obj for _, obj in v.rendered_objects(scenario_values("gpu-triton"))
    }
    headless = objects[("Service", "facemint-triton-headless")]
    assert headless["spec"]["clusterIP"] == "None"
    assert [port["name"] for port in headless["spec"]["ports"]] == ["grpc"]  # scraped once, through the other
    env = objects[("ConfigMap", "facemint-inference")]["data"]
    assert env["FACEMINT_INFERENCE_TRITON__URL"] == "dns:///facemint-triton-headless.facemint.svc.cluster.local:8001"
    assert env["FACEMINT_INFERENCE_TRITON__LOAD_BALANCING"] == "round_robin"


def test_a_triton_rollout_that_would_stop_every_pod_is_refused() -> None:
    values = scenario_values("gpu-triton")
    values["triton"].update(replicaCount=1, maxSurge=0, maxUnavailable=1)
    with pytest.raises(Exception, match="stops every Triton pod"):
        v.rendered_objects(values)
    values["triton"]["replicaCount"] = 2
    deployment = next(
        o for _, o in v.rendered_objects(values) if o["kind"] == "Deployment" and "triton" in o["metadata"]["name"]
    )
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_pods_take_labels_sidecars_volumes_classes_and_a_registry_prefix() -> None:
    sidecar = {"name": "proxy", "image": "registry.example.com/proxy:1.0"}
    volume = {"name": "certs", "secret": {"secretName": "facemint-certs"}}
    mount = {"name": "certs", "mountPath": "/etc/certs", "readOnly": True}
    values = {
        "imageRegistry": "registry.example.com/mirror/",
        "library": {
            "podLabels": {"team": "search"},
            "priorityClassName": "facemint-high",
            "runtimeClassName": "gvisor",
            "extraContainers": [sidecar],
            "extraVolumes": [volume],
            "extraVolumeMounts": [mount],
        },
    }
    deployments = {o["metadata"]["name"]: o for _, o in v.rendered_objects(values) if o["kind"] == "Deployment"}
    pod = deployments["facemint-library"]["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "search"
    assert "team" not in deployments["facemint-library"]["spec"]["selector"]["matchLabels"]
    spec = pod["spec"]
    assert (spec["priorityClassName"], spec["runtimeClassName"]) == ("facemint-high", "gvisor")
    assert spec["containers"][1] == sidecar and volume in spec["volumes"]
    assert mount in spec["containers"][0]["volumeMounts"]
    assert spec["containers"][0]["image"].startswith("registry.example.com/mirror/ghcr.io/facemint/library:")
    assert "priorityClassName" not in deployments["facemint-gateway"]["spec"]["template"]["spec"]


def test_the_spool_and_the_model_copy_request_ephemeral_storage() -> None:
    deployments = {o["metadata"]["name"]: o for _, o in v.rendered_objects({}) if o["kind"] == "Deployment"}
    for name, size in (("facemint-media-decoder", "8Gi"), ("facemint-inference", "4Gi")):
        requests = deployments[name]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
        assert requests["ephemeral-storage"] == size


def test_nats_url_and_tls_come_from_secrets() -> None:
    values = {"nats": {"url": "nats://nats:4222", "existingSecret": "nats-auth", "tls": {"existingSecret": "nats-ca"}}}
    objects = {(o["kind"], o["metadata"]["name"]): o for _, o in v.rendered_objects(values)}
    config = objects[("ConfigMap", "facemint-task-orchestrator")]["data"]
    assert "FACEMINT_TASK_ORCHESTRATOR_NATS__URL" not in config
    assert config["FACEMINT_TASK_ORCHESTRATOR_NATS__TLS_CA_FILE"] == "/etc/facemint/nats-tls/ca.crt"
    pod = objects[("Deployment", "facemint-task-orchestrator")]["spec"]["template"]["spec"]
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["FACEMINT_TASK_ORCHESTRATOR_NATS__URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "nats-auth",
        "key": "url",
    }
    assert {"name": "nats-tls", "secret": {"secretName": "nats-ca"}} in pod["volumes"]
    gateway = objects[("Deployment", "facemint-gateway")]["spec"]["template"]["spec"]
    assert all(vol["name"] != "nats-tls" for vol in gateway["volumes"])  # the gateway does not use NATS


def test_tracing_endpoint_and_plain_grpc_reach_every_service() -> None:
    values = {"config": {"otlpEndpoint": "otel-collector.observability:4317", "otlpInsecure": True}}
    configs = [o for _, o in v.rendered_objects(values) if o["kind"] == "ConfigMap" and "data" in o]
    tracing = {
        name.split("_TRACING__")[0]: {k.split("_TRACING__")[1]: x for k, x in c["data"].items() if "_TRACING__" in k}
        for c in configs
        for name in c["data"]
        if name.endswith("_TRACING__OTLP_ENDPOINT")
    }
    assert len(tracing) >= 6, tracing  # every Python service
    for prefix, settings in tracing.items():
        assert settings["OTLP_ENDPOINT"] == "otel-collector.observability:4317", prefix
        assert settings["INSECURE"] == "true", prefix
    default = [o for _, o in v.rendered_objects({}) if o["kind"] == "ConfigMap" and "data" in o]
    assert {val for c in default for k, val in c["data"].items() if k.endswith("_TRACING__INSECURE")} == {"false"}


def test_a_changed_chart_managed_secret_rolls_the_pods_that_read_it() -> None:
    def checksums(dsn: str) -> dict[str, str]:
        values = {"postgresql": {"existingSecret": "", "dsn": dsn}}
        return {
            o["metadata"]["name"]: o["spec"]["template"]["metadata"]["annotations"]["checksum/secrets"]
            for _, o in v.rendered_objects(values)
            if o["kind"] == "Deployment"
        }

    before, after = checksums("postgresql://a@db/facemint"), checksums("postgresql://b@db/facemint")
    assert before["facemint-library"] != after["facemint-library"]
    assert before["facemint-inference"] == after["facemint-inference"]  # it reads no database


def test_keda_scales_the_queue_workers_on_jetstream_lag_and_the_gateway_keeps_its_hpa() -> None:
    objects = [o for _, o in v.rendered_objects(scenario_values("ha"))]
    scaled = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ScaledObject"}
    hpas = {o["metadata"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    workers = {"facemint-task-orchestrator", "facemint-media-decoder", "facemint-inference"}
    assert set(scaled) == workers and not workers & hpas and "facemint-gateway" in hpas
    for name in workers:  # both lanes' consumers, as the orchestrator creates them
        lags = [t for t in scaled[name]["spec"]["triggers"] if t["type"] == "nats-jetstream"]
        assert [(t["metadata"]["stream"], t["metadata"]["consumer"]) for t in lags] == [
            ("FACEMINT_JOBS", consumer) for consumer in CONSUMERS
        ]
    assert v.validate_custom_resources(list(scaled.values())) == [None, None, None]


def test_custom_resources_are_checked_against_the_upstream_crd_schemas() -> None:
    objects = [o for _, o in v.rendered_objects(scenario_values("ha"))]
    monitor = copy.deepcopy(next(o for o in objects if o["kind"] == "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = 30  # a number where the CRD wants a duration string
    scaled = copy.deepcopy(next(o for o in objects if o["kind"] == "ScaledObject"))
    del scaled["spec"]["scaleTargetRef"]
    problems = v.validate_custom_resources([monitor, scaled])
    assert problems[0] is not None and "interval must be string" in problems[0]
    assert problems[1] is not None and "scaleTargetRef" in problems[1]


def test_each_database_service_connects_as_its_own_role_which_the_migration_job_creates() -> None:
    import base64

    from facemint_core.schemas import SCHEMAS

    values = {"postgresql": {"existingSecret": "", "dsn": "postgresql://admin:pw@db:5432/facemint?sslmode=require"}}
    objects = {(o["kind"], o["metadata"]["name"]): o for _, o in v.rendered_objects(values)}
    data = {k: base64.b64decode(x).decode() for k, x in objects[("Secret", "facemint-postgresql")]["data"].items()}
    job = objects[("Job", "facemint-migrate")]["spec"]["template"]["spec"]["containers"][0]
    job_env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in job["env"] if "valueFrom" in e}
    assert data["dsn"] == "postgresql://admin:pw@db:5432/facemint?sslmode=require"
    for entry in SCHEMAS:
        password = data[f"{entry.service}-password"]
        assert len(password) == 32
        assert data[f"{entry.service}-dsn"] == f"postgresql://{entry.role}:{password}@db:5432/facemint?sslmode=require"
        assert job_env[f"FACEMINT_MIGRATE_PASSWORD_{entry.role.upper()}"] == f"{entry.service}-password"
        pod = objects[("Deployment", f"facemint-{entry.service}")]["spec"]["template"]["spec"]["containers"][0]
        dsn = [e for e in pod["env"] if e["name"].endswith("_DATABASE__DSN")]
        assert [e["valueFrom"]["secretKeyRef"]["key"] for e in dsn] == [f"{entry.service}-dsn"]
    # Each service applies its own migrations at start (none is told not to).
    configs = [o["data"] for (kind, _), o in objects.items() if kind == "ConfigMap" and o.get("data")]
    assert not [k for c in configs for k in c if k.endswith("APPLY_MIGRATIONS")]
    # The same values give the same passwords (a re-render on upgrade keeps the roles' passwords).
    again = {(o["kind"], o["metadata"]["name"]): o for _, o in v.rendered_objects(values)}
    assert again[("Secret", "facemint-postgresql")]["data"] == objects[("Secret", "facemint-postgresql")]["data"]


def test_absent_alerts_cover_exactly_the_components_a_release_deploys() -> None:
    def absent(scenario: str) -> set[str]:
        values = scenario_values(scenario)
        values.setdefault("metrics", {}).setdefault("prometheusRule", {})["enabled"] = True
        rule = next(o for _, o in v.rendered_objects(values) if o["kind"] == "PrometheusRule")
        rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
        return {r["labels"]["component"] for r in rules if r.get("alert") == "FacemintComponentAbsent"}

    services = {c.name for c in v.COMPONENTS}
    assert absent("default") == services  # CPU inference: no Triton to miss
    assert absent("gpu-triton") == services | {"triton"}
    assert absent("minimal") == services - {"webhook-dispatcher"}


def test_alert_contract_flags_an_alert_without_a_quiet_case_and_an_untested_recording_rule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rules = v.all_rules()
    extra = [
        {**next(r for r in rules if r.get("alert") == "FacemintServiceDown"), "alert": "FacemintNoSuchTest"},
        {"record": "slo:sli_error:ratio_rate5m", "expr": "vector(0)", "labels": {"slo": "no-such-slo"}},
    ]
    monkeypatch.setattr(v, "all_rules", lambda: rules + extra)
    problems = v.check_alert_contract()
    assert "FacemintNoSuchTest: no promtool test case in which it does not fire" in problems
    assert any("no-such-slo" in p and "no promql_expr_test" in p for p in problems)
