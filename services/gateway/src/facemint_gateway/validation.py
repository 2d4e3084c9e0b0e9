"""Validation of request bodies and query strings against the API contract."""

from __future__ import annotations

import json
import math
from typing import Any

from facemint.common.v1 import common_pb2
from facemint_core.errors import InvalidRequest
from facemint_core.netsafe import InvalidUrl, parse_url
from facemint_core.vocab import ATTRIBUTES, MAX_SIDE, MEDIA_KINDS, TASK_TYPES

_TASK_FIELDS = {
    "type", "media_url", "start_time", "end_time", "sample_rate", "min_face_size", "confidence_threshold",
    "attributes", "recognize", "library_id", "top_k", "callback_url", "metadata",
}  # fmt: skip


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float)) and not isinstance(value, bool) and math.isfinite(value)


def require_str(body: dict[str, Any], name: str, max_len: int = 2048) -> str:
    """A required non-empty string field."""
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"missing required field '{name}'")
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{name}' must be a non-empty string")
    if len(value) > max_len:
        raise InvalidRequest(f"'{name}' must be at most {max_len} characters")
    return value


def optional_str(body: dict[str, Any], name: str, max_len: int = 2048) -> str:
    """An optional string field ('' when absent)."""
    if body.get(name) is None:
        return ""
    return require_str(body, name, max_len)


def http_url(value: str, name: str, https_only: bool = False) -> str:
    """An absolute http(s) URL in the form the media fetcher and webhook sender accept (:func:`netsafe.parse_url`)."""
    try:
        parse_url(value, https_only)
    except InvalidUrl as exc:
        need = "an https URL" if https_only else "an absolute http or https URL"
        raise InvalidRequest(f"'{name}' must be {need}: {exc}") from None
    return value


def metadata_json(body: dict[str, Any], name: str, max_bytes: int) -> str:
    """An optional JSON object, at most ``max_bytes`` when serialised; returned JSON-encoded ('' when absent)."""
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{name}' must be a JSON object")
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if len(encoded.encode()) > max_bytes:
        raise InvalidRequest(f"'{name}' must be at most {max_bytes} bytes when encoded as JSON")
    return encoded


def validate_detection_task(
    body: dict[str, Any], metadata_max_bytes: int, allow_http_callbacks: bool = False
) -> dict[str, Any]:
    """Check every field of ``POST /v1/create-detection-task``; return the normalised spec with defaults (the
    keyword arguments of a ``TaskSpec``)."""
    unknown = sorted(set(body) - _TASK_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
    task_type = require_str(body, "type")
    if task_type not in TASK_TYPES:
        raise InvalidRequest(f"'type' must be one of {', '.join(TASK_TYPES)}")
    spec: dict[str, Any] = {
        "kind": MEDIA_KINDS[task_type],
        "media_url": http_url(require_str(body, "media_url", 8192), "media_url"),
    }

    for name in ("start_time", "end_time"):
        value = body.get(name)
        if value is None:
            continue
        if task_type != "video":
            raise InvalidRequest(f"'{name}' applies to video tasks only")
        if not _is_number(value) or value < 0:
            raise InvalidRequest(f"'{name}' must be a number of seconds >= 0")
        spec[name] = float(value)
    if "start_time" in spec and "end_time" in spec and spec["end_time"] <= spec["start_time"]:
        raise InvalidRequest("'end_time' must be greater than 'start_time'")

    sample_rate = body.get("sample_rate", 2)
    if not _is_int(sample_rate) or not 1 <= sample_rate <= 30:
        raise InvalidRequest("'sample_rate' must be an integer from 1 to 30")
    spec["sample_rate"] = sample_rate

    min_face_size = body.get("min_face_size", 40)
    if not _is_int(min_face_size) or not 1 <= min_face_size <= MAX_SIDE:
        raise InvalidRequest(f"'min_face_size' must be an integer number of pixels from 1 to {MAX_SIDE}")
    spec["min_face_size"] = min_face_size

    threshold = body.get("confidence_threshold", 0.5)
    if not _is_number(threshold) or not 0 <= threshold <= 1:
        raise InvalidRequest("'confidence_threshold' must be a number from 0 to 1")
    spec["confidence_threshold"] = float(threshold)

    attributes = body.get("attributes")
    if attributes is None:
        attributes = []
    if not isinstance(attributes, list) or not all(isinstance(a, str) for a in attributes):
        raise InvalidRequest("'attributes' must be an array of strings")
    bad = sorted(set(attributes) - set(ATTRIBUTES))
    if bad:
        raise InvalidRequest(f"unknown attribute(s) {', '.join(bad)}; allowed: {', '.join(ATTRIBUTES)}")
    spec["attributes"] = [a for a in ATTRIBUTES if a in attributes]

    recognize = body.get("recognize", 0)
    if not _is_int(recognize) or recognize not in (0, 1):
        raise InvalidRequest("'recognize' must be 0 or 1")
    spec["recognize"] = recognize == 1
    spec["library_id"] = optional_str(body, "library_id", 128)
    if spec["recognize"] and not spec["library_id"]:
        raise InvalidRequest("'library_id' is required when recognize=1")

    top_k = body.get("top_k", 1)
    if not _is_int(top_k) or not 1 <= top_k <= 10:
        raise InvalidRequest("'top_k' must be an integer from 1 to 10")
    spec["top_k"] = top_k

    callback = optional_str(body, "callback_url", 2048)
    spec["callback_url"] = http_url(callback, "callback_url", https_only=not allow_http_callbacks) if callback else ""
    metadata = metadata_json(body, "metadata", metadata_max_bytes)
    if metadata:
        spec["metadata"] = common_pb2.JsonDocument(json=metadata.encode())
    return spec


def list_limit(raw: str | None, default: int = 20, maximum: int = 100) -> int:
    """The ``limit`` query parameter."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {maximum}") from None
    if not 1 <= value <= maximum:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {maximum}")
    return value
