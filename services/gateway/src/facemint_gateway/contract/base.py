"""The base classes of the contract's models, their shared field types, and the translation of a pydantic
validation failure into the API's 400 ``invalid_request`` message.

Request bodies are strict (no coercion: ``"40"`` is not an integer, ``true`` is not ``1``), refuse unknown fields
and non-finite numbers. Query strings arrive as text and are read in lax mode (``?limit=20``). Answers are built
through their models too (:func:`facemint_gateway.http.ok`), which checks that what the gateway answers is what
the document promises.

A refused body's message names the field and the rule, and the rule is read from the field's own JSON schema (the
one the OpenAPI document publishes), so that message and document cannot disagree: ``'sample_rate' must be an
integer from 1 to 30``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, ValidationInfo
from pydantic_core import PydanticCustomError

from facemint_core.errors import InvalidRequest
from facemint_core.netsafe import InvalidUrl, parse_url

RULE = "rule"
"""Error type of a field rule that the schema cannot state (a URL's form): the message completes "'field' must be"."""
CROSS_FIELD = "cross_field"
"""Error type of a rule between fields (``end_time`` after ``start_time``): the message is the whole sentence."""


class RequestModel(BaseModel):
    """A request body: strict types, no unknown field, finite numbers only."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
    examples: ClassVar[list[dict[str, Any]]] = []
    """Example bodies, published on the operations that take the model (and checked against it by the tests)."""


class QueryModel(BaseModel):
    """A query string: text read as the declared types (``"20"`` is the integer 20); unknown parameters ignored."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class Page(QueryModel):
    """Keyset pagination of a list."""

    limit: int = Field(20, ge=1, le=100, description="Page size.")
    cursor: str = Field("", description="Opaque cursor from the previous page's next_cursor.")


class ReplyModel(BaseModel):
    """A response body (without ``request_id``, which :class:`Reply` adds to the top level)."""

    model_config = ConfigDict(extra="forbid")
    examples: ClassVar[list[dict[str, Any]]] = []


class ErrorDetail(BaseModel):
    """The inner object of the error envelope."""

    code: Literal[
        "invalid_request", "invalid_media", "unauthorized", "forbidden", "not_found", "conflict",
        "payload_too_large", "no_faces_detected", "rate_limited", "internal_error", "service_unavailable",
    ]  # fmt: skip
    message: str = Field(description="What went wrong, for a human; a refused field is named with its rule.")
    request_id: str


class Error(BaseModel):
    """Every 4xx and 5xx answer: the error envelope."""

    error: ErrorDetail


class Reply(ReplyModel):
    """A top-level response body: every one starts with the request's id."""

    request_id: str = Field(description="The request's id (also in the x-request-id header).")


R = TypeVar("R", bound=BaseModel)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError(RULE, "a non-empty string")
    return value


NOT_BLANK = AfterValidator(_not_blank)
"""Refuses a string of whitespace only."""


def _url(value: str, info: ValidationInfo) -> str:
    https_only = info.field_name == "callback_url" and not (info.context or {}).get("allow_http_callbacks", False)
    try:
        parse_url(value, https_only)
    except InvalidUrl as exc:
        need = "an https URL" if https_only else "an absolute http or https URL"
        raise PydanticCustomError(RULE, "{need}: {why}", {"need": need, "why": str(exc)}) from None
    return value


URL = AfterValidator(_url)
"""An absolute http(s) URL in the form the media fetcher and webhook sender accept (:func:`netsafe.parse_url`);
``callback_url`` must be https unless the validation context has ``allow_http_callbacks``."""
URL_MAX = 8192
MediaUrl = Annotated[str, Field(min_length=1, max_length=URL_MAX, json_schema_extra={"format": "uri"}), URL]


def encode_metadata(value: dict[str, Any]) -> str:
    """Metadata as stored and measured against its size limit: compact JSON, non-ASCII kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _metadata_size(value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
    limit = (info.context or {}).get("metadata_max_bytes")
    if limit is not None and len(encode_metadata(value).encode()) > limit:
        raise PydanticCustomError(RULE, "at most {limit} bytes when encoded as JSON", {"limit": limit})
    return value


Metadata = Annotated[dict[str, Any], AfterValidator(_metadata_size)]
"""A client's JSON object, at most the validation context's ``metadata_max_bytes`` when encoded."""

Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"}, description="UTC, ISO 8601.")]


def parse(model: type[R], data: Any, context: dict[str, Any] | None = None) -> R:
    """Validate ``data`` (a parsed JSON body or query parameters) with ``model``.

    Raises:
        InvalidRequest: A field breaks a rule; the message names each refused field and its rule.
    """
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise InvalidRequest(explain(model, exc)) from None


def explain(model: type[BaseModel], exc: ValidationError) -> str:
    """One sentence per refused field (unknown fields together, first), joined by ``; ``."""
    errors = exc.errors(include_url=False)
    parts: list[str] = []
    unknown = sorted({_dotted(e["loc"]) for e in errors if e["type"] == "extra_forbidden"})
    if unknown:
        first = next(e for e in errors if e["type"] == "extra_forbidden")
        parent = [str(p) for p in first["loc"][:-1] if not isinstance(p, int)]
        allowed = sorted(_schema_at(model, parent).get("properties", {}))
        parts.append(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    seen: set[str] = set()
    for error in errors:
        field = _dotted(error["loc"])
        if error["type"] == "extra_forbidden" or field in seen:
            continue
        seen.add(field)
        if error["type"] == CROSS_FIELD or not field:
            parts.append(error["msg"])
        elif error["type"] == "missing":
            parts.append(f"missing required field '{field}'")
        elif error["type"] == RULE:
            parts.append(f"'{field}' must be {error['msg']}")
        else:
            rule = describe(_schema_at(model, [str(p) for p in error["loc"] if not isinstance(p, int)]))
            got = error.get("input")
            shown = f", got {got!r}" if isinstance(got, str | int | float) and len(repr(got)) <= 40 else ""
            parts.append(f"'{field}' must be {rule}{shown}")
    return "; ".join(parts)


def _dotted(loc: tuple[int | str, ...]) -> str:
    """``('limits', 'monthly_minutes')`` as ``limits.monthly_minutes``, ``('attributes', 1)`` as ``attributes[1]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


@cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _schema_at(model: type[BaseModel], path: list[str]) -> dict[str, Any]:
    """The JSON schema of the field at ``path`` (nested models and optional fields resolved)."""
    root = _schema(model)
    node = _resolve(root, root)
    for name in path:
        node = _resolve(root, node.get("properties", {}).get(name, {}))
    return node


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        node = {**root["$defs"][node["$ref"].rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}}
    branches = [b for b in node.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        return _resolve(root, branches[0])
    return node


def describe(schema: dict[str, Any]) -> str:
    """The rule a JSON schema states, in words: ``an integer from 1 to 30``, ``one of video, image, gif``."""
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    if "const" in schema:
        return repr(schema["const"])
    kind = schema.get("type")
    low, high = schema.get("minimum"), schema.get("maximum")
    bounds = ""
    if low is not None:
        bounds = f" from {low} to {high}" if high is not None else f" >= {low}"
    if kind == "integer":
        return "an integer" + bounds
    if kind == "number":
        return "a number" + bounds
    if kind == "boolean":
        return "true or false"
    if kind == "string" and "pattern" in schema:
        return str(schema.get("description") or f"a string matching {schema['pattern']}")
    if kind == "string":
        size = schema.get("maxLength")
        text = "a non-empty string" if schema.get("minLength") else "a string"
        return text + (f" of at most {size} characters" if size else "")
    if kind == "array":
        items = schema.get("items", {})
        if "enum" in items:
            return "an array of strings from: " + ", ".join(map(str, items["enum"]))
        return "an array of " + describe(items).removeprefix("a ").removeprefix("an ") + " items"
    if kind == "object":
        return "a JSON object"
    return "valid"
