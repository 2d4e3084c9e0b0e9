"""``facemint up --observability``: Prometheus scrapes every local service and evaluates the chart's rules.

The session platform (tests/e2e/conftest.py) runs with observability on; these tests read its Prometheus through the
HTTP API, after image tasks and a few API requests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from facemint_local.harness import MediaServer, RunningPlatform
from facemint_local.testmedia import encode, group_image
from tests.e2e.apiutil import submit, wait

pytestmark = pytest.mark.e2e

SERVICES = ("gateway", "task-orchestrator", "media-decoder", "inference", "library", "webhook-dispatcher")


@pytest.fixture(scope="module")
def prometheus(platform: RunningPlatform) -> Iterator[httpx.Client]:
    url = json.loads((platform.data_dir / "observability.json").read_text())["prometheus_url"]
    with httpx.Client(base_url=url, timeout=10) as client:
        yield client


def poll(what: str, probe: Any, timeout: float = 90) -> Any:
    """Call ``probe`` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what}: nothing after {timeout:.0f} s; last answer {probe()!r}")


def query(prometheus: httpx.Client, promql: str) -> list[dict[str, Any]]:
    resp = prometheus.get("/api/v1/query", params={"query": promql})
    resp.raise_for_status()
    return list(resp.json()["data"]["result"])


def test_prometheus_scrapes_every_local_service_and_they_are_up(prometheus: httpx.Client) -> None:
    def healthy() -> dict[str, str]:
        targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if all(health.get(f"facemint-{s}") == "up" for s in SERVICES) else {}

    health = poll("every service's target up", healthy)
    assert set(health) == {f"facemint-{s}" for s in SERVICES}
    up = query(prometheus, 'up{job=~"facemint-.+"}')
    assert {r["metric"]["namespace"] for r in up} == {"local"}


def test_slo_recording_rules_have_values_from_real_traffic(
    prometheus: httpx.Client, api: httpx.Client, media: MediaServer, reference: dict[str, Any]
) -> None:
    # A rate needs the counter to grow between two scrapes: once Prometheus has seen the reference task's image
    # histogram, one more image task.
    assert reference["status"] == "succeeded"
    poll(
        "the image task histogram",
        lambda: query(prometheus, 'facemint_task_orchestrator_task_seconds_count{type="image"}'),
    )
    url = media.add("observability.jpg", encode(group_image(), "JPEG", quality=90))
    task_id = submit(api, type="image", media_url=url)
    assert wait(api, task_id)["status"] == "succeeded"

    def ratio(slo: str) -> list[dict[str, Any]]:
        # API traffic in every round, so that some scrape interval sees the counters grow (4xx: not SLO errors).
        assert api.get(f"/v1/task/{task_id}").status_code == 200
        assert api.get("/v1/task/task_000000000000000000000000").status_code in (400, 404)
        # NaN (0 / 0) until two scrapes 5 s apart have seen the events; then the share of bad events.
        return query(prometheus, f'slo:sli_error:ratio_rate5m{{slo="{slo}"}} >= 0')

    for slo in ("api-availability", "image-task-latency"):
        result = poll(f"a number from slo:sli_error:ratio_rate5m of {slo}", lambda slo=slo: ratio(slo), timeout=120)
        assert [r["metric"]["namespace"] for r in result] == ["local"]
        value = float(result[0]["value"][1])
        assert 0 <= value <= 1, (slo, value)


def test_alerting_rules_are_loaded_for_the_local_components_only(prometheus: httpx.Client) -> None:
    groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    names = {rule["name"] for rule in rules}
    assert {"FacemintServiceDown", "FacemintApiAvailabilityErrorBudgetBurnFast", "slo:sli_error:ratio_rate3d"} <= names
    absent = {rule["labels"]["component"]: rule for rule in rules if rule["name"] == "FacemintComponentAbsent"}
    assert set(absent) == set(SERVICES)  # no Triton locally, so no rule that would always fire
    assert all(rule["health"] == "ok" and rule["state"] == "inactive" for rule in absent.values()), absent
