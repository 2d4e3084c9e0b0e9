"""The OpenAPI 3.1 document of the public API, generated from the contract's models and a table of operations.

Schemas come from the models (``model_json_schema``); this module adds what a model cannot say: each operation's
path, method, statuses, headers, parameters and examples, and the webhook callback. Nothing here is typed by hand
that a model already types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from facemint_gateway.contract import account, library, tasks, uploads, webhooks
from facemint_gateway.contract.base import Error, QueryModel, Reply, RequestModel

COMMON_ERRORS = (400, 401, 403, 429, 500, 503)
"""What any /v1 operation may answer."""


@dataclass(frozen=True)
class Operation:
    """One documented operation."""

    method: str
    path: str
    summary: str
    reply: type[Reply]
    status: int = 200
    body: type[RequestModel] | None = None
    body_required: bool = True
    query: type[QueryModel] | None = None
    errors: tuple[int, ...] = (404,)
    """Statuses beyond :data:`COMMON_ERRORS` (POSTs add 409 for a reused ``Idempotency-Key``)."""


_LIB = "/v1/library/{library_id}"
_PERSON = _LIB + "/person/{person_id}"
_MEDIA = (404, 409, 413, 422)
OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/v1/create-detection-task", "Create a detection task", tasks.TaskCreated, 201,
              body=tasks.CreateDetectionTask),
    Operation("get", "/v1/task/{task_id}", "Get a task", tasks.TaskReply, query=tasks.TaskQuery),
    Operation("get", "/v1/tasks", "List tasks", tasks.TaskList, query=tasks.TaskListQuery, errors=()),
    Operation("post", "/v1/task/{task_id}/cancel", "Cancel a task", tasks.CancelledTask),
    Operation("post", "/v1/uploads", "Create a signed upload", uploads.UploadCreated, 201, body=uploads.CreateUpload,
              errors=()),
    Operation("post", "/v1/library", "Create a face library", library.LibraryReply, 201, body=library.CreateLibrary),
    Operation("get", "/v1/libraries", "List libraries (keyset cursor)", library.LibraryList, query=tasks.Page),
    Operation("get", _LIB, "Get a library", library.LibraryReply),
    Operation("patch", _LIB, "Update a library's name or description", library.LibraryReply,
              body=library.UpdateLibrary),
    Operation("delete", _LIB, "Delete a library, its persons and every vector", library.LibraryDeleted),
    Operation("post", _LIB + "/face", "Enrol a reference image under a person (exactly one clear face)",
              library.ReferenceFaceReply, 201, body=library.EnrollFace, errors=_MEDIA),
    Operation("get", _LIB + "/persons", "List persons (keyset cursor)", library.PersonList, query=tasks.Page),
    Operation("get", _PERSON, "Get a person and their reference faces", library.PersonWithFaces),
    Operation("delete", _PERSON, "Delete a person and their vectors", library.PersonDeleted),
    Operation("get", _PERSON + "/faces", "List a person's reference faces", library.PersonFaces),
    Operation("delete", _PERSON + "/face/{face_id}", "Delete one reference face", library.FaceDeleted),
    Operation("post", "/v1/compare", "1:1 compare of the largest faces of two images", library.Comparison,
              body=library.Compare, errors=_MEDIA),
    Operation("get", "/v1/keys", "List your API keys (prefix and metadata only)", account.KeyList),
    Operation("post", "/v1/keys", "Create an API key (the secret is shown once)", account.CreatedKey, 201,
              body=account.CreateKey, body_required=False),
    Operation("post", "/v1/keys/{key_id}/rotate", "Rotate a key (the old one works for a grace period)",
              account.RotatedKey, 201, body=account.RotateKey, body_required=False),
    Operation("post", "/v1/keys/{key_id}/revoke", "Revoke a key now", account.ApiKeyReply),
    Operation("get", "/v1/usage", "Usage against the plan: requests, concurrent tasks, monthly minutes", account.Usage),
    Operation("get", "/v1/task/{task_id}/deliveries", "List a task's webhook deliveries", webhooks.Deliveries),
    Operation("post", "/v1/task/{task_id}/redeliver", "Send a task's webhook again", webhooks.Redelivery, 202),
    Operation("get", "/v1/webhook-secret", "Get the webhook signing secret", webhooks.WebhookSecret),
    Operation("post", "/v1/webhook-secret/rotate", "Rotate the webhook signing secret", webhooks.WebhookSecret,
              body=webhooks.RotateWebhookSecret, body_required=False),
)  # fmt: skip

ERROR_RESPONSES = {
    400: ("InvalidRequest", "invalid_request, or invalid_media for media judged synchronously",
          "'sample_rate' must be an integer from 1 to 30, got 60"),
    401: ("Unauthorized", "unauthorized: no or an unknown key (no rate-limit headers: no key, no limit)",
          "missing API key: send it in the x-api-key header"),
    403: ("Forbidden", "forbidden", "this key may not use that resource"),
    404: ("NotFound", "not_found", "task 'task_0195e3ab6f4a7c2d' does not exist"),
    409: ("Conflict", "conflict (also: an Idempotency-Key reused with another request)",
          "task 'task_0195e3ab6f4a7c2d' has already succeeded"),
    413: ("PayloadTooLarge", "payload_too_large", "the image is larger than 50 MiB"),
    422: ("NoFacesDetected", "no_faces_detected", "no face found in the image"),
    429: ("RateLimited", "rate_limited, with Retry-After", "rate limit of 60 requests per minute exceeded"),
    500: ("InternalError", "internal_error", "internal error"),
    503: ("ServiceUnavailable", "service_unavailable, with Retry-After", "the service is temporarily unavailable"),
}  # fmt: skip
CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 409: "conflict",
         413: "payload_too_large", 422: "no_faces_detected", 429: "rate_limited", 500: "internal_error",
         503: "service_unavailable"}  # fmt: skip

HEADERS: dict[str, Any] = {
    "RateLimitLimit": {"description": "Requests per minute allowed to the key.", "schema": {"type": "integer"}},
    "RateLimitRemaining": {"description": "Requests left in the current window.", "schema": {"type": "integer"}},
    "RateLimitReset": {"description": "Unix seconds when the window ends.", "schema": {"type": "integer"}},
    "RetryAfter": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer", "minimum": 0}},
    "Location": {"description": "Path of the created resource (see docs/api.md for each route).",
                 "schema": {"type": "string"}},
    "RequestId": {"description": "The request's id (the client's own x-request-id when valid).",
                  "schema": {"type": "string"}},
}  # fmt: skip


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _schema(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


LIMIT_HEADERS = {
    "X-RateLimit-Limit": _header("RateLimitLimit"),
    "X-RateLimit-Remaining": _header("RateLimitRemaining"),
    "X-RateLimit-Reset": _header("RateLimitReset"),
    "x-request-id": _header("RequestId"),
}
"""On every response to a request with a valid key, errors included."""

IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "The same key with the same body within 24 h returns the original response "
    "(with `Idempotent-Replayed: true`); with a different body, 409 conflict.",
}

WEBHOOK_HEADERS = [
    {"name": "X-Facemint-Event", "in": "header", "required": True,
     "schema": {"type": "string", "enum": ["task.succeeded", "task.failed", "task.cancelled"]}},
    {"name": "X-Facemint-Timestamp", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9]+$"}, "description": "Unix seconds of signing."},
    {"name": "X-Facemint-Signature", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
     "description": "hex HMAC-SHA256(webhook_secret, timestamp + \".\" + raw_body)"},
    {"name": "X-Facemint-Signature-Previous", "in": "header", "required": False,
     "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
     "description": "During a secret rotation: the same signature made with the previous secret."},
    {"name": "X-Facemint-Delivery", "in": "header", "required": True, "schema": {"type": "string"},
     "description": "The delivery id, the same on every attempt: de-duplicate on it."},
]  # fmt: skip
WEBHOOK_DESCRIPTION = (
    "Verify before trusting: reject an X-Facemint-Timestamp more than 5 minutes from your clock, then "
    'compare X-Facemint-Signature with hex(HMAC-SHA256(webhook_secret, timestamp + "." + raw_body)) '
    "in constant time (during a secret rotation, X-Facemint-Signature-Previous too). The signed string "
    "includes the timestamp so that a captured delivery cannot be replayed later. Answer 2xx within "
    "10 s; anything else is retried up to 8 times (9 attempts) within 24 h; 410 stops the retries. "
    "Verifying code in Python and JavaScript: docs/webhooks.md."
)

DESCRIPTION = (
    "Detect faces, extract attributes and identify people in images, GIFs and videos. Every /v1 "
    "request carries `x-api-key`. Every response to a valid key, errors included, carries "
    "`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; every 429 and 503 carries "
    "`Retry-After`. Every 201 carries `Location`; every 405 carries `Allow`. Every POST accepts an "
    "`Idempotency-Key` header. Request bodies are checked strictly: unknown fields, values of the wrong JSON type "
    '(`"40"` for 40, `true` for 1) and non-finite numbers are refused with a 400 that names the field and the rule. '
    "What create-detection-task checks synchronously (body, URL syntax, "
    "the library of recognize=1: 400/404) and what fails the task later (fetching, format, size, "
    "faces) is described in docs/api.md."
)


class _Schemas(GenerateJsonSchema):
    """pydantic's JSON schemas without a generated ``title`` on every property (the name says it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _models() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [Error, tasks.TaskEvent]
    for op in OPERATIONS:
        found += [m for m in (op.body, op.reply) if m is not None and m not in found]
    return found


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without pydantic's ``anyOf [X, null]`` of an optional field (absent is null)."""
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        schema = {**branches[0], **{k: v for k, v in schema.items() if k not in ("anyOf", "default")}}
    return {k: v for k, v in schema.items() if k not in ("title", "description")}


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        for name, prop in op.query.model_json_schema(schema_generator=_Schemas)["properties"].items():
            param = {"name": name, "in": "query", "required": False, "schema": _strip_null(prop)}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    if op.method == "post":
        params.append(IDEMPOTENCY_KEY)
    return params


def _operation(op: Operation) -> dict[str, Any]:
    headers = dict(LIMIT_HEADERS)
    if op.status == 201:
        headers["Location"] = _header("Location")
    described = {200: "OK", 201: "Created", 202: "Accepted"}[op.status]
    success = {
        "description": f"{described}: {op.reply.__doc__.splitlines()[0] if op.reply.__doc__ else ''}".rstrip(": "),
        "headers": headers,
        "content": {"application/json": {"schema": _schema(op.reply.__name__), "example": op.reply.examples[0]}},
    }
    errors = sorted({*COMMON_ERRORS, *op.errors, *((409,) if op.method == "post" else ())})
    responses: dict[str, Any] = {str(op.status): success}
    responses.update({str(s): {"$ref": f"#/components/responses/{ERROR_RESPONSES[s][0]}"} for s in errors})
    out: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op), "responses": responses}
    if op.reply.__doc__:
        out["description"] = " ".join(op.reply.__doc__.split())
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _schema(op.body.__name__), "example": op.body.examples[0]}},
        }
    params = _parameters(op)
    if params:
        out["parameters"] = params
    return out


def _operation_id(op: Operation) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", op.path.replace("/v1/", "/")) if w and w not in ("id",)]
    return op.method + "".join(w[:1].upper() + w[1:] for w in words)


def _error_responses() -> dict[str, Any]:
    out = {}
    for status, (name, meaning, message) in ERROR_RESPONSES.items():
        headers: dict[str, Any] = {"x-request-id": _header("RequestId")} if status == 401 else dict(LIMIT_HEADERS)
        if status in (429, 503):
            headers["Retry-After"] = _header("RetryAfter")
        example = {"error": {"code": CODES[status], "message": message, "request_id": "req_7f2b1a4c8d"}}
        out[name] = {"description": f"{status} {meaning}", "headers": headers,
                     "content": {"application/json": {"schema": _schema("Error"), "example": example}}}  # fmt: skip
    return out


@cache
def document() -> dict[str, Any]:
    """The OpenAPI document (built once per process; treat it as read-only)."""
    _, top = models_json_schema(
        [(model, "validation") for model in _models()],
        ref_template="#/components/schemas/{model}",
        schema_generator=_Schemas,
    )
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Facemint API", "version": "1.0.0", "description": DESCRIPTION},
        "servers": [{"url": "/"}],
        "security": [{"ApiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": top["$defs"],
            "responses": _error_responses(),
            "headers": HEADERS,
        },
        "webhooks": {
            "task.completed": {
                "post": {
                    "summary": "A task reached a terminal state (POSTed to its callback_url)",
                    "description": WEBHOOK_DESCRIPTION,
                    "parameters": WEBHOOK_HEADERS,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": _schema("TaskEvent"), "example": tasks.TaskEvent.examples[0]}
                        },
                    },
                    "responses": {
                        "200": {"description": "Delivered (any 2xx)."},
                        "410": {"description": "Gone: no further attempts for this task."},
                    },
                }  # fmt: skip
            }
        },
    }
