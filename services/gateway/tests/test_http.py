"""Request parsing (strict JSON) and response rendering (stored JSON embedded as it is)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from facemint_core.errors import InvalidRequest
from facemint_core.taskview import RawJSON
from facemint_gateway.contract.tasks import CancelledTask, TaskReply
from facemint_gateway.http import ok, parse_json

TASK = {
    "task_id": "task_1",
    "status": "succeeded",
    "type": "image",
    "media": {"url": "https://example.com/a.jpg", "duration": None, "width": 640, "height": 480},
    "created_at": "2026-04-21T09:30:00Z",
    "completed_at": "2026-04-21T09:30:02Z",
}


def test_raw_json_values_are_embedded_unchanged_and_the_body_stays_valid_json() -> None:
    request = Request({"type": "http", "facemint_request_id": "req_1"})
    stored = json.dumps({"frames": [{"timestamp": 0.5, "faces": []}], "summary": {"total_faces": 0}})
    tricky = 'a "result" value with "quotes" and raw- text'
    response = ok(request, TaskReply, {**TASK, "result": RawJSON(stored), "metadata": {"note": tricky}})
    body = bytes(response.body)
    assert stored.encode() in body
    assert json.loads(body) == {
        "request_id": "req_1",
        **TASK,
        "result": json.loads(stored),
        "metadata": {"note": tricky},
    }
    assert next(iter(json.loads(body))) == "request_id"


def test_answers_go_through_their_model_and_fields_left_out_stay_out() -> None:
    request = Request({"type": "http", "facemint_request_id": "req_1"})
    assert set(json.loads(bytes(ok(request, TaskReply, TASK).body))) == {"request_id", *TASK}
    with pytest.raises(ValidationError):  # an answer that breaks the contract never reaches a client
        ok(request, CancelledTask, {"task_id": "task_1", "status": "running"})


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"x": NaN}', "malformed JSON"),
        (b'{"x": [Infinity]}', "malformed JSON"),
        (b'{"x": -Infinity}', "malformed JSON"),
        (b'{"x": 1e400}', "malformed JSON"),
        (b'{"x": ' + b"1" * 5000 + b"}", "malformed JSON"),
        (b'{"x": "\\ud800"}', "malformed JSON"),
        (b'{"\\udc00": 1}', "malformed JSON"),
        (b'{"x": "\xed\xa0\x80"}', "malformed JSON"),
        (b'{"x": "a\\u0000b"}', "NUL"),
        (b'{"a\\u0000": 1}', "NUL"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed JSON"),
        (b"[" * 65 + b"]" * 65, "nested more than 64 levels"),
        (b'{"a": ' * 65 + b"1" + b"}" * 65, "nested more than 64 levels"),
    ],
)
def test_parse_json_refuses_what_cannot_be_stored_or_answered(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        parse_json(raw)


def test_parse_json_accepts_64_levels_and_surrogate_pairs() -> None:
    assert parse_json(b"[" * 64 + b"]" * 64) is not None
    assert parse_json(b'{"e": "\\ud83d\\ude00", "n": 18446744073709551615}') == {"e": "\U0001f600", "n": 2**64 - 1}
