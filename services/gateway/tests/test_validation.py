"""The create-detection-task contract: every field, its default and its validation, through the contract's model
(the one that also generates the OpenAPI document)."""

from __future__ import annotations

from typing import Any

import pytest

from facemint_core.errors import InvalidRequest
from facemint_gateway.contract.base import Page, describe, parse
from facemint_gateway.contract.document import document
from facemint_gateway.contract.tasks import CreateDetectionTask

BASE = {"type": "image", "media_url": "https://example.com/a.jpg"}


def _spec(**fields: Any) -> dict[str, Any]:
    return parse(CreateDetectionTask, {**BASE, **fields}, {"metadata_max_bytes": 2048}).task_spec()


def test_defaults_follow_the_spec() -> None:
    spec = _spec()
    assert spec["sample_rate"] == 2 and spec["min_face_size"] == 40 and spec["confidence_threshold"] == 0.5
    assert spec["attributes"] == [] and spec["recognize"] is False and spec["top_k"] == 1
    assert spec["callback_url"] == "" and "metadata" not in spec and "start_time" not in spec


def test_video_fields_and_attribute_order_are_normalised() -> None:
    spec = _spec(type="video", start_time=1, end_time=4.5, attributes=["pose", "age", "pose"], top_k=10)
    assert spec["start_time"] == 1.0 and spec["end_time"] == 4.5
    assert spec["attributes"] == ["age", "pose"] and spec["top_k"] == 10


def test_null_optional_fields_read_as_absent() -> None:
    assert _spec(attributes=None, library_id=None, callback_url=None, metadata=None) == _spec()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"type": "audio"}, "'type' must be one of video, image, gif, got 'audio'"),
        ({"media_url": None}, "'media_url' must be a non-empty string"),
        ({"media_url": "ftp://x/y"}, "'media_url' must be an absolute http or https URL"),
        ({"media_url": 5}, "'media_url' must be a non-empty string of at most 8192 characters, got 5"),
        ({"media_url": "   "}, "'media_url' must be an absolute http or https URL: URL contains whitespace"),
        ({"start_time": 1}, "'start_time' applies to video tasks only"),
        ({"type": "video", "start_time": 5, "end_time": 2}, "'end_time' must be greater than 'start_time'"),
        ({"type": "video", "start_time": -1}, "'start_time' must be a number >= 0"),
        ({"sample_rate": 0}, "'sample_rate' must be an integer from 1 to 30, got 0"),
        ({"sample_rate": 31}, "1 to 30"),
        ({"sample_rate": 2.5}, "1 to 30"),
        ({"sample_rate": 2.0}, "1 to 30"),
        ({"sample_rate": 10**30}, "1 to 30"),
        ({"min_face_size": "40"}, "'min_face_size' must be an integer from 1 to 7680, got '40'"),
        ({"confidence_threshold": 1.5}, "'confidence_threshold' must be a number from 0 to 1"),
        ({"confidence_threshold": True}, "0 to 1"),
        ({"attributes": ["age", "beauty"]}, "'attributes[1]' must be an array of strings from: age, gender"),
        ({"attributes": ["age", "beauty"]}, "got 'beauty'"),
        ({"attributes": "age"}, "'attributes' must be an array of strings"),
        ({"recognize": 2}, "'recognize' must be one of 0, 1"),
        ({"recognize": True}, "'recognize' must be one of 0, 1"),
        ({"recognize": 1.0}, "'recognize' must be one of 0, 1"),
        ({"recognize": 1}, "'library_id' is required when recognize=1"),
        ({"library_id": ""}, "'library_id' must be a non-empty string of at most 128 characters"),
        ({"top_k": 11}, "'top_k' must be an integer from 1 to 10"),
        ({"callback_url": "http://example.com/cb"}, "'callback_url' must be an https URL"),
        ({"metadata": [1, 2]}, "'metadata' must be a JSON object"),
        ({"metadata": {"k": "x" * 3000}}, "'metadata' must be at most 2048 bytes when encoded as JSON"),
        ({"colour": "red"}, "unknown field(s): colour; allowed: attributes, callback_url"),
    ],
)
def test_invalid_fields_are_refused_with_a_message_naming_them(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        _spec(**fields)
    assert message in caught.value.message


def test_every_refused_field_is_named_in_one_message() -> None:
    with pytest.raises(InvalidRequest) as caught:
        _spec(sample_rate=0, top_k=0, shoe=1)
    assert caught.value.message.startswith("unknown field(s): shoe;")
    assert "'sample_rate' must be" in caught.value.message and "'top_k' must be" in caught.value.message


def test_http_callbacks_only_when_allowed_by_configuration() -> None:
    body = {**BASE, "callback_url": "http://127.0.0.1:9/cb"}
    spec = parse(CreateDetectionTask, body, {"allow_http_callbacks": True}).task_spec()
    assert spec["callback_url"] == "http://127.0.0.1:9/cb"


def test_the_message_states_the_rule_the_document_publishes() -> None:
    published = document()["components"]["schemas"]["CreateDetectionTask"]["properties"]["sample_rate"]
    assert describe(published) == "an integer from 1 to 30"


def test_page_limit_default_and_bounds() -> None:
    assert parse(Page, {}).limit == 20 and parse(Page, {"limit": "100"}).limit == 100
    for bad in ("0", "101", "ten", "1.5"):
        with pytest.raises(InvalidRequest) as caught:
            parse(Page, {"limit": bad})
        assert "'limit' must be an integer from 1 to 100" in caught.value.message
