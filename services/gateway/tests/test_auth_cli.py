"""The ``facemint`` command line: admin commands against a real gateway, and ``facemint up`` delegation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import GatewayStack

FACEMINT = str(Path(sys.executable).parent / "facemint")


def facemint(stack: GatewayStack | None, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI with the gateway URL and admin token in the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")}
    if stack is not None:
        env |= {"FACEMINT_URL": stack.url, "FACEMINT_ADMIN_TOKEN": token or stack.admin_token}
    return subprocess.run([FACEMINT, *args], env=env, capture_output=True, text=True, timeout=60)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON a ``--json`` command printed."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.integration
def test_admin_commands_manage_accounts_and_keys(gateway_stack: GatewayStack) -> None:
    created = facemint(gateway_stack, "admin", "accounts", "create", "--name", "CLI Co", "--plan", "starter")
    assert created.returncode == 0, created.stderr
    assert "Store the API key now" in created.stdout
    raw = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("api key:"))
    account = next(line.split()[1] for line in created.stdout.splitlines() if line.startswith("account:"))
    assert httpx.get(gateway_stack.url + "/v1/usage", headers={"x-api-key": raw}).json()["limits"] == {
        "requests_per_minute": 300,
        "concurrent_tasks": 8,
        "monthly_minutes": 1000,
    }

    listed = facemint(gateway_stack, "admin", "accounts", "list", "--limit", "500")
    assert account in listed.stdout and "REQUESTS_PER_MINUTE" in listed.stdout

    key = as_json(facemint(gateway_stack, "admin", "--json", "keys", "create", "--account", account, "--name", "b"))
    keys = as_json(facemint(gateway_stack, "admin", "--json", "keys", "list", "--account", account))
    assert {k["key_id"] for k in keys} >= {key["key_id"]} and all("key" not in k for k in keys)
    rotated = as_json(facemint(gateway_stack, "admin", "--json", "keys", "rotate", key["key_id"], "--grace", "60"))
    assert rotated["previous"]["key_id"] == key["key_id"]
    revoked = facemint(gateway_stack, "admin", "keys", "revoke", rotated["key_id"])
    assert revoked.returncode == 0 and f"revoked {rotated['key_id']}" in revoked.stdout
    assert httpx.get(gateway_stack.url + "/v1/usage", headers={"x-api-key": rotated["key"]}).status_code == 401

    updated = as_json(
        facemint(gateway_stack, "admin", "--json", "accounts", "update", account, "--concurrent-tasks", "50")
    )
    assert updated["limits"]["concurrent_tasks"] == 50
    cleared = as_json(
        facemint(gateway_stack, "admin", "--json", "accounts", "update", account, "--clear", "concurrent-tasks")
    )
    assert cleared["limits"]["concurrent_tasks"] == 8
    shown = facemint(gateway_stack, "admin", "accounts", "show", account)
    assert "0.0 of 1000 minutes" in shown.stdout


@pytest.mark.integration
def test_plans_list_and_errors(gateway_stack: GatewayStack) -> None:
    plans = facemint(gateway_stack, "admin", "plans", "list")
    assert plans.returncode == 0
    rows = {line.split()[0]: line.split()[1:4] for line in plans.stdout.splitlines()[1:]}
    assert rows["free"] == ["60", "2", "60"] and rows["scale"] == ["1200", "32", "10000"]
    refused = facemint(gateway_stack, "admin", "plans", "list", token="wrong")
    assert refused.returncode == 1 and "401 unauthorized" in refused.stderr
    missing = facemint(gateway_stack, "admin", "keys", "revoke", "key_nothere")
    assert missing.returncode == 1 and "404 not_found" in missing.stderr


def test_admin_without_a_token_explains_itself() -> None:
    done = facemint(None, "admin", "plans", "list")
    assert done.returncode == 2 and "no admin token" in done.stderr


def test_up_delegates_to_the_local_platform_supervisor() -> None:
    done = facemint(None, "up", "--help")
    assert done.returncode == 0 and "usage: facemint up" in done.stdout and "--data-dir" in done.stdout
