"""The SDK's typed models against the OpenAPI document the gateway serves (the copy ``make sdk`` commits in
``libs/facemint-js/openapi.json``): every documented operation has a model, and every field a model names exists in
the document's schema wherever the document declares the schema's fields (nested objects and arrays included)."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from facemint_sdk import models

DOCUMENT = Path(__file__).resolve().parents[2] / "facemint-js" / "openapi.json"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return dict(json.loads(DOCUMENT.read_text()))


def _resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    for combined in ("allOf", "anyOf", "oneOf"):  # pydantic writes Optional[X] as anyOf [X, null]
        if combined in node:
            branches = [_resolve(doc, b) for b in node[combined]]
            objects = [b for b in branches if b.get("properties") or b.get("items")]
            if len(objects) == 1:
                return objects[0]
    return node


def _success_schema(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses = doc["paths"][path][method]["responses"]
    status = next(s for s in sorted(responses) if s.startswith("2"))
    response = _resolve(doc, responses[status])
    return _resolve(doc, response.get("content", {}).get("application/json", {}).get("schema", {}))


def _typeddict_of(annotation: Any) -> tuple[type | None, bool]:
    """The TypedDict inside an annotation and whether it sits in a list: ``X``, ``X | None``, ``list[X]``."""
    if is_typeddict(annotation):
        return annotation, False
    origin = get_origin(annotation)
    if origin is list:
        inner, _ = _typeddict_of(get_args(annotation)[0])
        return inner, True
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(annotation):
            inner, listed = _typeddict_of(arg)
            if inner is not None:
                return inner, listed
    return None, False


def _mismatches(
    doc: dict[str, Any], model: type, schema: dict[str, Any], where: str, checked: list[str], nested: bool = False
) -> list[str]:
    properties = schema.get("properties")
    if not properties:
        return []  # the document does not say (yet): nothing to compare
    checked.append(where)
    # A model that is both an answer and a list item (Task, Library) has the answer's request_id.
    exempt = {"request_id"} if nested else set()
    problems = [f"{where}.{name}" for name in get_type_hints(model) if name not in properties.keys() | exempt]
    for name, annotation in get_type_hints(model).items():
        inner, listed = _typeddict_of(annotation)
        if inner is None or name not in properties:
            continue
        sub = _resolve(doc, properties[name])
        if listed:
            sub = _resolve(doc, sub.get("items", {}))
        problems += _mismatches(doc, inner, sub, f"{where}.{name}", checked, nested=True)
    return problems


def test_every_documented_operation_has_a_model(document: dict[str, Any]) -> None:
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        if path.startswith("/v1/")
        for method in item
        if method in ("get", "post", "patch", "delete", "put")
    }
    assert documented - set(models.RESPONSES) == set(), "operations the SDK lacks"
    assert set(models.RESPONSES) - documented == set(), "operations the document lacks"


def test_model_fields_exist_in_the_document(document: dict[str, Any]) -> None:
    checked: list[str] = []
    problems: list[str] = []
    for (method, path), model in models.RESPONSES.items():
        schema = _success_schema(document, method, path)
        problems += _mismatches(document, model, schema, f"{method.upper()} {path}: {model.__name__}", checked)
    assert problems == [], "fields the document does not have"
    assert len(checked) >= 8, checked  # the document types at least the task and upload answers and their parts


class _InventedTask(models.Task, total=False):
    shoe_size: int


class _InventedPage(models.TaskPage, total=False):
    tasks: list[_InventedTask]
    colour: str


def test_the_check_finds_fields_the_document_lacks(document: dict[str, Any]) -> None:
    schema = _success_schema(document, "get", "/v1/tasks")
    assert _mismatches(document, _InventedPage, schema, "Page", []) == ["Page.colour", "Page.tasks.shoe_size"]
