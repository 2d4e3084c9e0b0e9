"""Small REST helpers shared by the end-to-end suites."""

from __future__ import annotations

import time
from typing import Any

import httpx

from facemint_local.harness import upload_media


def submit(api: httpx.Client, **body: Any) -> str:
    resp = api.post("/v1/create-detection-task", json=body)
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert doc["status"] == "queued" and doc["request_id"].startswith("req_") and doc["estimated_seconds"] >= 1
    return str(doc["task_id"])


def wait(api: httpx.Client, task_id: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = api.get(f"/v1/task/{task_id}")
        if resp.status_code >= 500:  # a service restarting behind the gateway: retry, as a client would
            time.sleep(0.5)
            continue
        doc = resp.json()
        if doc["status"] in ("succeeded", "failed", "cancelled"):
            return dict(doc)
        time.sleep(0.3)
    raise AssertionError(f"task {task_id} not finished after {timeout} s")


def upload(api: httpx.Client, kind: str, data: bytes) -> dict[str, Any]:
    """A signed upload of ``data`` (:func:`facemint_local.harness.upload_media`)."""
    return upload_media(api, kind, data)
