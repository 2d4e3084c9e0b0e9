"""The local Prometheus' configuration: one job per service (replicas together), the chart's rules less Triton's."""

from __future__ import annotations

from pathlib import Path

from facemint_local.observability import local_rules, scrape_config, service_targets

RULES_DIR = Path(__file__).resolve().parents[3] / "deploy" / "helm" / "facemint" / "files" / "alerts"
SERVICES = {"gateway", "task-orchestrator", "media-decoder", "inference", "library", "webhook-dispatcher"}


def test_local_rules_keep_every_rule_but_those_of_components_not_running_here() -> None:
    rules = local_rules(RULES_DIR, SERVICES)
    assert set(rules) == {"facemint.rules.yml", "slo.rules.yml"}
    kept = [rule for doc in rules.values() for group in doc["groups"] for rule in group["rules"]]
    absent = {rule["labels"]["component"] for rule in kept if rule.get("alert") == "FacemintComponentAbsent"}
    assert absent == SERVICES
    assert any(rule.get("record") == "slo:sli_error:ratio_rate3d" for rule in kept)
    assert any(rule.get("alert") == "FacemintGpuMemoryHigh" for rule in kept)  # no component label: kept


def test_scrape_config_names_jobs_like_the_charts_service_monitors() -> None:
    config = scrape_config([("gateway", 8080), ("inference", 9091), ("inference", 9092)])
    jobs = {job["job_name"]: job["static_configs"] for job in config["scrape_configs"]}
    assert jobs == {
        "facemint-gateway": [{"targets": ["127.0.0.1:8080"], "labels": {"namespace": "local"}}],
        "facemint-inference": [{"targets": ["127.0.0.1:9091", "127.0.0.1:9092"], "labels": {"namespace": "local"}}],
    }
    assert config["rule_files"] == ["rules/*.rules.yml"]


def test_replicas_of_a_service_are_one_job_and_other_processes_are_not_scraped() -> None:
    processes = [("facemint_gateway", 8081), ("facemint_gateway", 8082), ("facemint_local.front", 8080)]
    processes += [("facemint_webhook_dispatcher", 9095)]
    assert service_targets(processes) == [("gateway", 8081), ("gateway", 8082), ("webhook-dispatcher", 9095)]
