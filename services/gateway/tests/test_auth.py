"""Authentication, accounts and keys through real gateway processes: API keys, rotation, revocation, tenancy."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from facemint_core.apikeys import hash_key

if TYPE_CHECKING:
    from conftest import GatewayStack

pytestmark = [pytest.mark.integration]

TASK = {"type": "image", "media_url": "http://127.0.0.1:9/face.jpg"}


def call(url: str, method: str, path: str, key: str, body: dict[str, Any] | None = None) -> httpx.Response:
    """One /v1 request with an API key."""
    return httpx.request(method, url + path, json=body, headers={"x-api-key": key}, timeout=30)


async def wait_for_status(url: str, key: str, status: int, seconds: float) -> float:
    """Poll GET /v1/usage until it answers ``status``; returns how long it took."""
    start = time.monotonic()
    while (code := call(url, "GET", "/v1/usage", key).status_code) != status:
        assert time.monotonic() - start < seconds, f"still {code} after {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing x-api-key header"),
        ({"x-api-key": "not-a-key"}, "invalid API key"),
        ({"x-api-key": "fm_aaaaaaaa_" + "a" * 32}, "invalid API key"),
    ],
)
def test_missing_or_invalid_api_key_is_401(gateway_stack: GatewayStack, headers: dict[str, str], message: str) -> None:
    for path in ("/v1/usage", "/v1/keys", "/v1/tasks", "/v1/task/task_x"):
        resp = httpx.get(gateway_stack.url + path, headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"] == {
            "code": "unauthorized",
            "message": message,
            "request_id": resp.headers["x-request-id"],
        }
    resp = httpx.post(gateway_stack.url + "/v1/create-detection-task", headers=headers, json=TASK)
    assert resp.status_code == 401


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong-token", "Basic abc", "Bearer"], ids=["none", "wrong", "basic", "empty"]
)
def test_admin_api_requires_the_admin_token(gateway_stack: GatewayStack, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in (("GET", "/admin/v1/plans"), ("GET", "/admin/v1/accounts"), ("POST", "/admin/v1/accounts")):
        resp = httpx.request(method, gateway_stack.url + path, headers=headers, json={"name": "x"})
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"


def test_an_api_key_is_not_an_admin_credential(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account()
    resp = httpx.get(gateway_stack.url + "/admin/v1/plans", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 401


def test_plans_follow_the_spec_table(gateway_stack: GatewayStack) -> None:
    plans = {p["plan"]: p for p in gateway_stack.admin("GET", "/admin/v1/plans").json()["plans"]}
    expected = {"free": (60, 2, 60), "starter": (300, 8, 1000), "scale": (1200, 32, 10000)}
    for name, (rpm, tasks, minutes) in expected.items():
        assert plans[name] == {
            "plan": name,
            "custom": False,
            "requests_per_minute": rpm,
            "concurrent_tasks": tasks,
            "monthly_minutes": minutes,
        }
    assert plans["enterprise"]["custom"] is True


def test_admin_creates_lists_and_updates_accounts(gateway_stack: GatewayStack) -> None:
    resp = gateway_stack.admin(
        "POST", "/admin/v1/accounts", {"name": "Acme", "plan": "enterprise", "limits": {"concurrent_tasks": 100}}
    )
    assert resp.status_code == 201
    created = resp.json()
    account = created["account"]
    assert account["plan"] == "enterprise" and account["limits"]["concurrent_tasks"] == 100
    assert len(created["account"]["webhook_secret"]) == 64
    assert created["api_key"]["key"].startswith(created["api_key"]["prefix"] + "_")
    shown = gateway_stack.admin("GET", f"/admin/v1/accounts/{account['account_id']}").json()
    assert shown["webhook_secret"] == created["account"]["webhook_secret"]
    updated = gateway_stack.admin(
        "PATCH", f"/admin/v1/accounts/{account['account_id']}", {"limits": {"concurrent_tasks": None}}
    ).json()
    assert updated["limits"]["concurrent_tasks"] == 32 and updated["overrides"]["concurrent_tasks"] is None
    seen, cursor = [], ""
    while True:
        page = gateway_stack.admin("GET", f"/admin/v1/accounts?limit=2&cursor={cursor}").json()
        seen += [a["account_id"] for a in page["accounts"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert account["account_id"] in seen and seen == sorted(seen)
    bad = gateway_stack.admin("POST", "/admin/v1/accounts", {"name": "x", "plan": "gold"})
    assert bad.status_code == 400 and "'plan' must be one of" in bad.json()["error"]["message"]
    missing = gateway_stack.admin("GET", "/admin/v1/accounts/acct_nope")
    assert missing.status_code == 404


def test_keys_are_listed_by_prefix_and_metadata_only(gateway_stack: GatewayStack) -> None:
    account, key, key_id = gateway_stack.new_account()
    created = call(gateway_stack.url, "POST", "/v1/keys", key, {"name": "ci"})
    assert created.status_code == 201
    new = created.json()
    assert new["key"].startswith(new["prefix"] + "_") and new["name"] == "ci" and new["status"] == "active"
    listed = call(gateway_stack.url, "GET", "/v1/keys", key).json()["keys"]
    assert {k["key_id"] for k in listed} == {key_id, new["key_id"]}
    for item in listed:
        assert set(item) == {
            "key_id", "account_id", "prefix", "name", "status", "created_at", "expires_at", "revoked_at",
            "last_used_at", "replaced_by",
        }  # fmt: skip
    mine = next(k for k in listed if k["key_id"] == key_id)
    assert key.startswith(mine["prefix"] + "_") and mine["last_used_at"] is not None
    admin_view = gateway_stack.admin("GET", f"/admin/v1/accounts/{account}/keys").json()["keys"]
    assert {k["key_id"] for k in admin_view} == {key_id, new["key_id"]}


async def test_rotated_key_works_during_the_grace_period_then_stops(gateway_stack: GatewayStack) -> None:
    GRACE = 6  # seconds: room for the checks below on a loaded 2-core machine (2 s was seen to run out)
    _, old_key, old_id = gateway_stack.new_account()
    for url in gateway_stack.urls:  # both processes cache the old key
        assert call(url, "GET", "/v1/usage", old_key).status_code == 200
    rotated_at = time.monotonic()
    resp = call(gateway_stack.url, "POST", f"/v1/keys/{old_id}/rotate", old_key, {"grace_seconds": GRACE})
    assert resp.status_code == 201
    rotated = resp.json()
    assert rotated["previous"]["key_id"] == old_id and rotated["previous"]["status"] == "rotated"
    assert rotated["previous"]["replaced_by"] == rotated["key_id"]
    for url in gateway_stack.urls:
        assert call(url, "GET", "/v1/usage", old_key).status_code == 200
        assert call(url, "GET", "/v1/usage", rotated["key"]).status_code == 200
    again = call(gateway_stack.url, "POST", f"/v1/keys/{old_id}/rotate", old_key)
    assert again.status_code == 409 and "replaced by" in again.json()["error"]["message"]
    assert time.monotonic() - rotated_at < GRACE, "the checks above ran past the grace period: raise GRACE"
    await asyncio.sleep(rotated_at + GRACE + 0.2 - time.monotonic())
    for url in gateway_stack.urls:
        assert call(url, "GET", "/v1/usage", old_key).status_code == 401
        assert call(url, "GET", "/v1/usage", rotated["key"]).status_code == 200
    statuses = {
        k["key_id"]: k["status"] for k in call(gateway_stack.url, "GET", "/v1/keys", rotated["key"]).json()["keys"]
    }
    assert statuses == {old_id: "expired", rotated["key_id"]: "active"}


async def test_rotation_without_grace_ends_the_old_key_at_once(gateway_stack: GatewayStack) -> None:
    account, old_key, old_id = gateway_stack.new_account()
    resp = gateway_stack.admin("POST", f"/admin/v1/keys/{old_id}/rotate", {"grace_seconds": 0})
    assert resp.status_code == 201 and resp.json()["account_id"] == account
    await wait_for_status(gateway_stack.urls[1], old_key, 401, 2)
    assert call(gateway_stack.url, "GET", "/v1/usage", resp.json()["key"]).status_code == 200


async def test_revocation_reaches_every_process_at_once(gateway_stack: GatewayStack) -> None:
    _, key, key_id = gateway_stack.new_account()
    for url in gateway_stack.urls:  # cached in both processes (the test cache TTL is 30 s)
        assert call(url, "GET", "/v1/usage", key).status_code == 200
    revoked = call(gateway_stack.url, "POST", f"/v1/keys/{key_id}/revoke", key)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert call(gateway_stack.url, "GET", "/v1/usage", key).status_code == 401  # this process: immediately
    elapsed = await wait_for_status(gateway_stack.urls[1], key, 401, 2)  # the other: by NOTIFY, not the TTL
    assert elapsed < 2


async def test_admin_revocation_and_idempotent_revoke(gateway_stack: GatewayStack) -> None:
    _, key, key_id = gateway_stack.new_account()
    assert call(gateway_stack.urls[1], "GET", "/v1/usage", key).status_code == 200
    first = gateway_stack.admin("POST", f"/admin/v1/keys/{key_id}/revoke")
    second = gateway_stack.admin("POST", f"/admin/v1/keys/{key_id}/revoke")
    assert first.status_code == second.status_code == 200
    assert first.json()["revoked_at"] == second.json()["revoked_at"]
    await wait_for_status(gateway_stack.urls[1], key, 401, 2)
    assert gateway_stack.admin("POST", f"/admin/v1/keys/{key_id}/rotate").status_code == 409


def test_key_management_across_tenants_is_forbidden(gateway_stack: GatewayStack) -> None:
    _, key_a, key_id_a = gateway_stack.new_account()
    _, key_b, _ = gateway_stack.new_account()
    for action in ("rotate", "revoke"):
        resp = call(gateway_stack.url, "POST", f"/v1/keys/{key_id_a}/{action}", key_b)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden"
        assert call(gateway_stack.url, "POST", f"/v1/keys/key_nothere/{action}", key_b).status_code == 404
    assert key_id_a not in {k["key_id"] for k in call(gateway_stack.url, "GET", "/v1/keys", key_b).json()["keys"]}
    assert call(gateway_stack.url, "GET", "/v1/usage", key_a).status_code == 200


def test_tasks_across_tenants_are_forbidden(gateway_stack: GatewayStack) -> None:
    _, key_a, _ = gateway_stack.new_account()
    _, key_b, _ = gateway_stack.new_account()
    task_id = call(gateway_stack.url, "POST", "/v1/create-detection-task", key_a, TASK).json()["task_id"]
    for url in gateway_stack.urls:
        got = call(url, "GET", f"/v1/task/{task_id}", key_b)
        assert got.status_code == 403 and got.json()["error"]["code"] == "forbidden"
        cancelled = call(url, "POST", f"/v1/task/{task_id}/cancel", key_b)
        assert cancelled.status_code == 403 and cancelled.json()["error"]["code"] == "forbidden"
    listed = call(gateway_stack.url, "GET", "/v1/tasks", key_b).json()["tasks"]
    assert task_id not in {t["task_id"] for t in listed}
    assert call(gateway_stack.url, "GET", f"/v1/task/{task_id}", key_a).json()["status"] in ("queued", "running")
    assert call(gateway_stack.url, "GET", "/v1/task/task_doesnotexist", key_b).status_code == 404


def test_an_account_holds_a_bounded_number_of_active_keys(gateway_stack: GatewayStack) -> None:
    _, key, _ = gateway_stack.new_account()
    for _ in range(19):
        assert call(gateway_stack.url, "POST", "/v1/keys", key).status_code == 201
    refused = call(gateway_stack.url, "POST", "/v1/keys", key)
    assert refused.status_code == 409 and "revoke one first" in refused.json()["error"]["message"]


def _pg_dump(dsn: str, out: Path) -> str:
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.submodule_search_locations
    pg_dump = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pg_dump"
    subprocess.run([str(pg_dump), "--dbname", dsn, "--file", str(out)], check=True, capture_output=True)
    return out.read_text()


def test_raw_keys_never_reach_the_database_or_the_logs(gateway_stack: GatewayStack, tmp_path: Path) -> None:
    account, first, first_id = gateway_stack.new_account()
    raw_keys = [first]
    raw_keys.append(gateway_stack.admin("POST", f"/admin/v1/accounts/{account}/keys", {"name": "a"}).json()["key"])
    replayed = [
        httpx.post(gateway_stack.url + "/v1/keys", headers={"x-api-key": first, "Idempotency-Key": "k1"}, json={})
        for _ in range(2)
    ]
    assert replayed[0].json()["key"] and replayed[1].json()["key"] is None  # replays never carry the secret
    raw_keys.append(replayed[0].json()["key"])
    raw_keys.append(call(gateway_stack.url, "POST", f"/v1/keys/{first_id}/rotate", first).json()["key"])
    for raw in raw_keys:  # use each key on both processes, and fail once with a near miss
        for url in gateway_stack.urls:
            assert call(url, "GET", "/v1/usage", raw).status_code == 200
        near_miss = raw[:-1] + ("a" if raw[-1] != "a" else "b")
        assert call(gateway_stack.url, "GET", "/v1/usage", near_miss).status_code == 401
    dump = _pg_dump(gateway_stack.dsn, tmp_path / "dump.sql")
    logs = gateway_stack.logs()
    assert hash_key(first) in dump  # the dump does hold the keys, as hashes
    for raw in raw_keys:
        secret = raw.rsplit("_", 1)[1]
        assert secret not in dump and secret not in logs


async def test_revocation_still_propagates_after_the_listener_reconnects(
    gateway_stack: GatewayStack, db: asyncpg.Connection
) -> None:
    _, key, key_id = gateway_stack.new_account()
    killed = await db.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE datname = current_database() AND query LIKE 'LISTEN%'"""
    )
    assert killed >= len(gateway_stack.urls)
    await asyncio.sleep(3)  # the listeners reconnect after 2 s
    assert call(gateway_stack.urls[1], "GET", "/v1/usage", key).status_code == 200
    assert call(gateway_stack.url, "POST", f"/v1/keys/{key_id}/revoke", key).status_code == 200
    await wait_for_status(gateway_stack.urls[1], key, 401, 2)
