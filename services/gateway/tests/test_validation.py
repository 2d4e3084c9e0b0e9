"""The create-detection-task contract: every field, its default and its validation."""

from __future__ import annotations

from typing import Any

import pytest

from facemint_core.errors import InvalidRequest
from facemint_gateway.validation import list_limit, validate_detection_task

BASE = {"type": "image", "media_url": "https://example.com/a.jpg"}


def _spec(**fields: Any) -> dict[str, Any]:
    return validate_detection_task({**BASE, **fields}, 2048)


def test_defaults_follow_the_spec() -> None:
    spec = _spec()
    assert spec["sample_rate"] == 2 and spec["min_face_size"] == 40 and spec["confidence_threshold"] == 0.5
    assert spec["attributes"] == [] and spec["recognize"] is False and spec["top_k"] == 1
    assert spec["callback_url"] == "" and "metadata" not in spec


def test_video_fields_and_attribute_order_are_normalised() -> None:
    spec = validate_detection_task(
        {**BASE, "type": "video", "start_time": 1, "end_time": 4.5, "attributes": ["pose", "age"], "top_k": 10}, 2048
    )
    assert spec["start_time"] == 1.0 and spec["end_time"] == 4.5
    assert spec["attributes"] == ["age", "pose"] and spec["top_k"] == 10


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "audio"}, "'type' must be one of"),
        ({"media_url": None}, "missing required field 'media_url'"),
        ({"media_url": "ftp://x/y"}, "absolute http or https URL"),
        ({"media_url": 5}, "non-empty string"),
        ({"start_time": 1}, "video tasks only"),
        ({"type": "video", "start_time": 5, "end_time": 2}, "greater than 'start_time'"),
        ({"type": "video", "start_time": -1}, ">= 0"),
        ({"sample_rate": 0}, "1 to 30"),
        ({"sample_rate": 31}, "1 to 30"),
        ({"sample_rate": 2.5}, "1 to 30"),
        ({"min_face_size": "40"}, "min_face_size"),
        ({"confidence_threshold": 1.5}, "0 to 1"),
        ({"confidence_threshold": True}, "0 to 1"),
        ({"attributes": ["age", "beauty"]}, "unknown attribute(s) beauty"),
        ({"attributes": "age"}, "array of strings"),
        ({"recognize": 2}, "0 or 1"),
        ({"recognize": True}, "0 or 1"),
        ({"recognize": 1}, "'library_id' is required"),
        ({"top_k": 11}, "1 to 10"),
        ({"callback_url": "http://example.com/cb"}, "https URL"),
        ({"metadata": [1, 2]}, "JSON object"),
        ({"metadata": {"k": "x" * 3000}}, "at most 2048 bytes"),
        ({"colour": "red"}, "unknown field(s): colour"),
    ],
)
def test_invalid_fields_are_refused_with_a_message_naming_them(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _spec(**fields)
    assert message in caught.value.message


def test_http_callbacks_only_when_allowed_by_configuration() -> None:
    spec = validate_detection_task({**BASE, "callback_url": "http://127.0.0.1:9/cb"}, 2048, allow_http_callbacks=True)
    assert spec["callback_url"] == "http://127.0.0.1:9/cb"


def test_list_limit_default_and_bounds() -> None:
    assert list_limit(None) == 20 and list_limit("100") == 100
    for bad in ("0", "101", "ten"):
        with pytest.raises(InvalidRequest):
            list_limit(bad)
