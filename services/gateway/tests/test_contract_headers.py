"""HTTP details a contract-only client relies on (issue 15): Location on 201, Allow on 405, the client's
x-request-id, limit headers and Retry-After on errors, CORS for browsers, gzip.

Real gateway and orchestrator processes, PostgreSQL and NATS; no library service runs, so library routes answer 503.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import GatewayStack

pytestmark = pytest.mark.integration

TASK = {"type": "image", "media_url": "http://127.0.0.1:9/face.jpg"}
LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def client(stack: GatewayStack, url: str | None = None) -> httpx.Client:
    _, key, _ = stack.new_account("scale")
    return httpx.Client(base_url=url or stack.url, headers={"x-api-key": key}, timeout=30)


def test_created_task_has_a_location_that_reads_it(gateway_stack: GatewayStack) -> None:
    with client(gateway_stack) as api:
        resp = api.post("/v1/create-detection-task", json=TASK)
        assert resp.status_code == 201, resp.text
        assert resp.headers["location"] == f"/v1/task/{resp.json()['task_id']}"
        assert api.get(resp.headers["location"]).json()["task_id"] == resp.json()["task_id"]
        key = api.post("/v1/keys", json={"name": "second"})
        assert key.status_code == 201 and key.headers["location"] == "/v1/keys"


def test_405_names_every_allowed_method_of_the_path(gateway_stack: GatewayStack) -> None:
    with client(gateway_stack) as api:
        resp = api.delete("/v1/keys")  # GET and POST are two routes of one path
        assert resp.status_code == 405 and resp.json()["error"]["code"] == "invalid_request"
        assert resp.headers["allow"] == "GET, HEAD, POST"
        assert api.put("/v1/task/task_x").headers["allow"] == "GET, HEAD"


def test_a_valid_client_request_id_is_echoed_and_used(gateway_stack: GatewayStack) -> None:
    with client(gateway_stack) as api:
        resp = api.get("/v1/task/task_missing", headers={"x-request-id": "client-42.a:b"})
        assert resp.headers["x-request-id"] == "client-42.a:b"
        assert resp.json()["error"]["request_id"] == "client-42.a:b"
        resp = api.get("/v1/task/task_missing", headers={"x-request-id": "no spaces <allowed>"})
        assert resp.headers["x-request-id"].startswith("req_")
        assert resp.json()["error"]["request_id"] == resp.headers["x-request-id"]


def test_errors_carry_the_limit_headers_and_503_carries_retry_after(gateway_stack: GatewayStack) -> None:
    with client(gateway_stack) as api:
        for resp in (
            api.get("/v1/task/task_missing"),  # 404 from the orchestrator
            api.get("/v1/tasks", params={"limit": "0"}),  # 400
            api.get("/v1/nowhere"),  # 404 without a route
            api.delete("/v1/keys"),  # 405
        ):
            assert all(h in resp.headers for h in LIMIT_HEADERS), (resp.status_code, resp.headers)
        unavailable = api.get("/v1/libraries")  # the library service is not running
        assert unavailable.status_code == 503, unavailable.text
        assert int(unavailable.headers["retry-after"]) > 0
        assert all(h in unavailable.headers for h in LIMIT_HEADERS)
    no_key = httpx.get(gateway_stack.url + "/v1/tasks")
    assert no_key.status_code == 401 and "x-ratelimit-limit" not in no_key.headers  # no key, no limit to report


def test_list_responses_are_gzipped_for_clients_that_accept_it(gateway_stack: GatewayStack) -> None:
    with client(gateway_stack) as api:
        for _ in range(12):
            assert api.post("/v1/create-detection-task", json=TASK).status_code == 201
        zipped = api.get("/v1/tasks", params={"limit": 12}, headers={"Accept-Encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip" and len(zipped.json()["tasks"]) == 12
        plain = api.get("/v1/tasks", params={"limit": 12}, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers


def test_cors_preflight_needs_no_key_and_only_configured_origins_are_allowed(
    gateway_stack: GatewayStack, extra_gateway: Callable[..., str]
) -> None:
    url = extra_gateway(FACEMINT_GATEWAY_CORS_ALLOW_ORIGINS='["https://app.example.com"]')
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key,content-type"}
    resp = httpx.options(url + "/v1/create-detection-task", headers={"Origin": "https://app.example.com", **preflight})
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-api-key" in resp.headers["access-control-allow-headers"].lower()
    other = httpx.options(url + "/v1/create-detection-task", headers={"Origin": "https://evil.example", **preflight})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    with client(gateway_stack, url) as api:
        created = api.post("/v1/create-detection-task", json=TASK, headers={"Origin": "https://app.example.com"})
        assert created.status_code == 201
        assert created.headers["access-control-allow-origin"] == "https://app.example.com"
        exposed = created.headers["access-control-expose-headers"].lower()
        assert "location" in exposed and "x-ratelimit-remaining" in exposed and "retry-after" in exposed
    default = httpx.options(
        gateway_stack.url + "/v1/tasks", headers={"Origin": "https://app.example.com", **preflight}
    )  # CORS is off unless origins are configured
    assert "access-control-allow-origin" not in default.headers
