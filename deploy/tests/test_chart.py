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
