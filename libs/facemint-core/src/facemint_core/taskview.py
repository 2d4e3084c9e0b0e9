"""The public JSON shape of a task (``GET /v1/task/{id}``), built from the internal Task message.

One place builds it, so that the polling response and the webhook payload are identical.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core.timeutil import iso
from facemint_core.vocab import MEDIA_KIND_NAMES, STATUS_NAMES, TERMINAL_STATUSES


class RawJSON(str):
    """A value that is already JSON text, to be written into a response as it is instead of being parsed and
    encoded again (a task's result, stored as compact JSON, is most of its size)."""


def render_json(content: dict[str, Any], encode: Callable[[dict[str, Any]], bytes]) -> bytes:
    """Encode ``content`` with ``encode``, writing its top-level :class:`RawJSON` values as they are."""
    raw: dict[bytes, bytes] = {}
    for key, value in content.items():
        if isinstance(value, RawJSON):
            placeholder = f"raw-{uuid.uuid4().hex}"  # unguessable: cannot occur in user-supplied text
            raw[json.dumps(placeholder).encode()] = value.encode()
            content = {**content, key: placeholder}
    body = encode(content)
    for quoted, text in raw.items():
        body = body.replace(quoted, text, 1)
    return body


def _non_finite_as_null(constant: str) -> None:
    """``NaN`` and ``Infinity`` in metadata stored before the gateway refused them: read as ``null``, since a JSON
    response cannot carry them."""


def _iso(stamp: Timestamp) -> str:
    return iso(stamp.ToDatetime(UTC))


def public_task(task: orchestrator_pb2.Task, raw_result: bool = False, full: bool = True) -> dict[str, Any]:
    """Render a task as the API returns it (without ``request_id``, which belongs to each response); with
    ``raw_result`` the result stays the stored JSON text (:class:`RawJSON`). Without ``full`` (an item of
    ``GET /v1/tasks``) a succeeded task carries ``result_summary`` (the result's ``summary``) instead of ``result``."""
    status = STATUS_NAMES[task.status]
    media: dict[str, Any] = {"url": task.spec.media_url, "duration": None, "width": None, "height": None}
    if task.HasField("media"):
        media["duration"] = task.media.duration if task.media.HasField("duration") else None
        media["width"], media["height"] = task.media.width, task.media.height
    view: dict[str, Any] = {
        "task_id": task.task_id,
        "status": status,
        "type": MEDIA_KIND_NAMES[task.spec.kind],
        "media": media,
    }
    if task.status == orchestrator_pb2.TASK_STATUS_SUCCEEDED and task.HasField("result"):
        if not full:
            view["result_summary"] = json.loads(task.result.json).get("summary")
        else:
            view["result"] = RawJSON(task.result.json.decode()) if raw_result else json.loads(task.result.json)
    if task.status not in TERMINAL_STATUSES:
        view["progress"] = {"frames_done": task.frames_done, "frames_total": task.frames_total}
        view["estimated_seconds"] = task.estimated_seconds
    if task.spec.HasField("metadata"):
        view["metadata"] = json.loads(task.spec.metadata.json, parse_constant=_non_finite_as_null)
    view["created_at"] = _iso(task.created_at)
    view["completed_at"] = _iso(task.completed_at) if task.HasField("completed_at") else None
    if task.status == orchestrator_pb2.TASK_STATUS_FAILED:
        view["error"] = {"code": task.error_code, "message": task.error_message}
    return view
