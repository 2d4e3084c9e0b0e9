"""Response rendering: stored JSON embedded as it is."""

from __future__ import annotations

import json

from starlette.requests import Request

from facemint_core.taskview import RawJSON
from facemint_gateway.http import ok


def test_raw_json_values_are_embedded_unchanged_and_the_body_stays_valid_json() -> None:
    request = Request({"type": "http", "facemint_request_id": "req_1"})
    stored = json.dumps({"frames": [{"timestamp": 0.5, "faces": []}], "summary": {"total_faces": 0}})
    tricky = 'a "result" value with "quotes" and raw- text'
    response = ok(request, {"status": "succeeded", "result": RawJSON(stored), "metadata": {"note": tricky}})
    body = bytes(response.body)
    assert stored.encode() in body
    assert json.loads(body) == {
        "request_id": "req_1",
        "status": "succeeded",
        "result": json.loads(stored),
        "metadata": {"note": tricky},
    }
