"""The OpenAPI 3.1 document of the public API (``/openapi.json``) and its reference page (``/docs``, Swagger UI).

The document is written here by hand, from the contract; a test checks that every ``/v1`` route the app serves
appears in it, so the two cannot drift apart silently.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from facemint_core.errors import NotFound
from facemint_core.vocab import ATTRIBUTES, TASK_STATUSES, TASK_TYPES


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _header(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


LIMIT_HEADERS = {
    "X-RateLimit-Limit": _header("RateLimitLimit"),
    "X-RateLimit-Remaining": _header("RateLimitRemaining"),
    "X-RateLimit-Reset": _header("RateLimitReset"),
    "x-request-id": _header("RequestId"),
}
"""On every response to a request with a valid key, errors included."""


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "headers": LIMIT_HEADERS, "content": {"application/json": {"schema": schema}}}


def _error(status: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{ERROR_RESPONSES[status][0]}"}


ERROR_RESPONSES = {
    "400": ("InvalidRequest", "invalid_request, or invalid_media for media judged synchronously"),
    "401": ("Unauthorized", "unauthorized: no or an unknown key (no rate-limit headers: no key, no limit)"),
    "403": ("Forbidden", "forbidden"),
    "404": ("NotFound", "not_found"),
    "409": ("Conflict", "conflict"),
    "413": ("PayloadTooLarge", "payload_too_large"),
    "422": ("NoFacesDetected", "no_faces_detected"),
    "429": ("RateLimited", "rate_limited, with Retry-After"),
    "500": ("InternalError", "internal_error"),
    "503": ("ServiceUnavailable", "service_unavailable, with Retry-After"),
}
ERRORS = {status: _error(status) for status in ("400", "401", "403", "429", "500", "503")}
"""What any /v1 operation may answer."""
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    "description": "The same key with the same body within 24 h returns the original response "
    "(with `Idempotent-Replayed: true`); with a different body, 409 conflict.",
}


def _op(summary: str, ok: dict[str, Any], *, body: str | None = None, extra: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, status: str = "200",
        method: str = "get") -> dict[str, Any]:  # fmt: skip
    if status == "201":
        ok = {**ok, "headers": {**ok.get("headers", {}), "Location": _header("Location")}}
    op: dict[str, Any] = {"summary": summary, "responses": {status: ok, **ERRORS, **(extra or {})}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    params = list(params or [])
    if method == "post":  # an Idempotency-Key reused with another request is 409
        params.append(IDEMPOTENCY_KEY)
        op["responses"].setdefault("409", CONFLICT)
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


NOT_FOUND = {"404": _error("404")}
CONFLICT = _error("409")
MEDIA_ERRORS = {"413": _error("413"), "422": _error("422")}
PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size."),
    _query("cursor", {"type": "string"}, "Opaque cursor from the previous page's next_cursor."),
]

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "request_id"],
                "properties": {
                    "code": {"type": "string", "enum": [
                        "invalid_request", "invalid_media", "unauthorized", "forbidden", "not_found", "conflict",
                        "payload_too_large", "no_faces_detected", "rate_limited", "internal_error",
                        "service_unavailable"]},
                    "message": {"type": "string"},
                    "request_id": {"type": "string"},
                },
            }
        },
    },
    "CreateDetectionTask": {
        "type": "object",
        "required": ["type", "media_url"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "enum": list(TASK_TYPES)},
            "media_url": {"type": "string", "format": "uri", "description": "http(s) URL; presigned S3/GCS accepted."},
            "start_time": {"type": "number", "minimum": 0, "description": "Video only. Default 0."},
            "end_time": {"type": "number", "minimum": 0, "description": "Video only. Default: end of file."},
            "sample_rate": {"type": "integer", "minimum": 1, "maximum": 30, "default": 2},
            "min_face_size": {"type": "integer", "minimum": 1, "default": 40},
            "confidence_threshold": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "attributes": {"type": "array", "items": {"type": "string", "enum": list(ATTRIBUTES)}, "default": []},
            "recognize": {"type": "integer", "enum": [0, 1], "default": 0},
            "library_id": {"type": "string", "description": "Required when recognize=1."},
            "top_k": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            "callback_url": {"type": "string", "format": "uri", "description": "https URL for the signed webhook."},
            "metadata": {"type": "object", "description": "Up to 2 KB, echoed back with the task."},
        },
    },
    "TaskCreated": {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "task_id": {"type": "string"},
            "status": {"type": "string", "const": "queued"},
            "created_at": {"type": "string", "format": "date-time"},
            "estimated_seconds": {"type": "integer"},
        },
    },
    "Face": {
        "type": "object",
        "properties": {
            "face_id": {"type": "string"},
            "bbox": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
            "confidence": {"type": "number"},
            "attributes": {
                "type": "object",
                "properties": {
                    "age": {"type": "integer", "minimum": 0, "maximum": 100},
                    "gender": {"type": "string", "enum": ["male", "female"]},
                    "emotion": {"type": "string", "enum": [
                        "neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful"]},
                    "pose": {"type": "object", "properties": {
                        "yaw": {"type": "number"}, "pitch": {"type": "number"}, "roll": {"type": "number"}}},
                    "glasses": {"type": "boolean"},
                    "mask": {"type": "boolean"},
                    "quality": {"type": "number", "minimum": 0, "maximum": 1},
                    "landmarks": {"type": "array", "minItems": 106, "maxItems": 106, "description": "[x, y] pixels",
                                  "items": {"type": "array", "items": {"type": "integer"},
                                            "minItems": 2, "maxItems": 2}},
                },
            },
            "identity": {"type": ["object", "null"],
                         "description": "null on every face when the task has recognize=0.",
                         "properties": {"matches": {"type": "array", "items": _ref("Match")}}},
        },
    },
    "Match": {
        "type": "object",
        "properties": {"person_id": {"type": "string"}, "name": {"type": "string"}, "score": {"type": "number"}},
    },
    "Task": {
        "type": "object",
        "properties": {
            "request_id": {"type": "string"},
            "task_id": {"type": "string"},
            "status": {"type": "string", "enum": list(TASK_STATUSES)},
            "type": {"type": "string", "enum": list(TASK_TYPES)},
            "media": {"type": "object", "properties": {
                "url": {"type": "string"}, "duration": {"type": ["number", "null"]},
                "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]}}},
            "progress": {"type": "object", "description": "While queued or running (extension).", "properties": {
                "frames_done": {"type": "integer"}, "frames_total": {"type": "integer"}}},
            "estimated_seconds": {"type": "integer", "description": "While queued or running (extension)."},
            "result_summary": {"type": ["object", "null"], "description":
                "Items of GET /v1/tasks without include=result: the result's summary instead of the result.",
                "properties": {"total_faces": {"type": "integer"}, "unique_identities": {"type": "integer"}}},
            "result": {"type": "object", "properties": {
                "frames": {"type": "array", "items": {"type": "object", "properties": {
                    "timestamp": {"type": "number"}, "faces": {"type": "array", "items": _ref("Face")}}}},
                "face_tracks": {"type": "array", "items": {"type": "object", "properties": {
                    "track_id": {"type": "string"}, "person_id": {"type": ["string", "null"]},
                    "appears_at": {"type": "number"}, "disappears_at": {"type": "number"}}}},
                "summary": {"type": "object", "properties": {
                    "total_faces": {"type": "integer"}, "unique_identities": {"type": "integer"}}},
                "metadata": {"type": "object", "description": "The metadata sent at creation."}}},
            "metadata": {"type": "object", "description": "The metadata sent at creation (also in result)."},
            "created_at": {"type": "string", "format": "date-time"},
            "completed_at": {"type": ["string", "null"], "format": "date-time"},
            "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
        },
    },
    "TaskList": {
        "type": "object",
        "properties": {"request_id": {"type": "string"}, "tasks": {"type": "array", "items": _ref("Task")},
                       "next_cursor": {"type": ["string", "null"]}},
    },
    "Upload": {
        "type": "object",
        "properties": {"type": {"type": "string", "enum": list(TASK_TYPES)}, "filename": {"type": "string"}},
    },
    "UploadCreated": {
        "type": "object",
        "properties": {"request_id": {"type": "string"}, "upload_id": {"type": "string"},
                       "type": {"type": "string", "enum": list(TASK_TYPES)},
                       "upload_url": {"type": "string"}, "method": {"const": "POST"},
                       "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                       "max_bytes": {"type": "integer"}, "expires_in": {"type": "integer"},
                       "media_url": {"type": "string"}},
    },
    "Object": {"type": "object"},
}  # fmt: skip


def _responses() -> dict[str, Any]:
    out = {}
    for status, (name, meaning) in ERROR_RESPONSES.items():
        headers: dict[str, Any] = {"x-request-id": _header("RequestId")} if status == "401" else dict(LIMIT_HEADERS)
        if status in ("429", "503"):
            headers["Retry-After"] = _header("RetryAfter")
        out[name] = {"description": f"{status} {meaning}", "headers": headers,
                     "content": {"application/json": {"schema": _ref("Error")}}}  # fmt: skip
    return out


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

WEBHOOKS: dict[str, Any] = {
    "task.completed": {
        "post": {
            "summary": "A task reached a terminal state (POSTed to its callback_url)",
            "description": (
                "Verify before trusting: reject an X-Facemint-Timestamp more than 5 minutes from your clock, then "
                "compare X-Facemint-Signature with hex(HMAC-SHA256(webhook_secret, timestamp + \".\" + raw_body)) "
                "in constant time (during a secret rotation, X-Facemint-Signature-Previous too). The signed string "
                "includes the timestamp so that a captured delivery cannot be replayed later. Answer 2xx within "
                "10 s; anything else is retried up to 8 times (9 attempts) within 24 h; 410 stops the retries. "
                "Verifying code in Python and JavaScript: docs/webhooks.md."
            ),
            "parameters": [
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
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["event", "task_id", "status", "result"],
                "properties": {
                    "event": {"type": "string", "enum": ["task.succeeded", "task.failed", "task.cancelled"]},
                    "task_id": {"type": "string"},
                    "status": {"type": "string", "enum": ["succeeded", "failed", "cancelled"]},
                    "result": _ref("Task"),
                }}}}},
            "responses": {"200": {"description": "Delivered (any 2xx)."},
                          "410": {"description": "Gone: no further attempts for this task."}},
        }
    }
}  # fmt: skip


def document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI document."""
    obj = _json(_ref("Object"))
    paths: dict[str, Any] = {
        "/v1/create-detection-task": {"post": _op("Create a detection task", _json(_ref("TaskCreated"), "Created"),
                                                  body="CreateDetectionTask", status="201", method="post",
                                                  extra={"404": _error("404")})},
        "/v1/task/{task_id}": {"get": _op("Get a task", _json(_ref("Task")), extra=NOT_FOUND, params=[
            _path_param("task_id"),
            _query("wait", {"type": "number", "minimum": 0, "maximum": 30, "default": 0},
                   "Extension (long poll): hold the answer up to this many seconds until the task is terminal; "
                   "it returns as soon as the task succeeds, fails or is cancelled.")])},
        "/v1/tasks": {"get": _op("List tasks", _json(_ref("TaskList")), params=[
            _query("status", {"type": "string", "enum": list(TASK_STATUSES)}, "Filter by status."),
            _query("type", {"type": "string", "enum": list(TASK_TYPES)}, "Filter by type."),
            _query("created_after", {"type": "string", "format": "date-time"}, "Only tasks created after."),
            _query("include", {"type": "string", "enum": ["result"]},
                   "Extension: full results in the items; without it a succeeded item has result_summary."),
            *PAGE])},
        "/v1/task/{task_id}/cancel": {"post": _op("Cancel a task", obj, params=[_path_param("task_id")],
                                                  extra={**NOT_FOUND, "409": CONFLICT}, method="post")},
        "/v1/uploads": {"post": _op("Create a signed upload", _json(_ref("UploadCreated"), "Created"), body="Upload",
                                    status="201", method="post")},
    }  # fmt: skip
    paths.update(extra_paths or {})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Facemint API",
            "version": "1.0.0",
            "description": (
                "Detect faces, extract attributes and identify people in images, GIFs and videos. Every /v1 "
                "request carries `x-api-key`. Every response to a valid key, errors included, carries "
                "`X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`; every 429 and 503 carries "
                "`Retry-After`. Every 201 carries `Location`; every 405 carries `Allow`. Every POST accepts an "
                "`Idempotency-Key` header. What create-detection-task checks synchronously (body, URL syntax, "
                "the library of recognize=1: 400/404) and what fails the task later (fetching, format, size, "
                "faces) is described in docs/api.md."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"ApiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
            "schemas": SCHEMAS,
            "responses": _responses(),
            "headers": HEADERS,
        },
        "webhooks": WEBHOOKS,
    }


EXTRA_PATHS: dict[str, Any] = {}
"""Route modules register their documented paths here (``openapi.EXTRA_PATHS.update({...})``)."""


def documented_operation(summary: str, method: str, path: str, *, body: bool = False, params: list[str] | None = None,
                         status: str = "200", extra: dict[str, Any] | None = None) -> None:  # fmt: skip
    """Register a simple JSON operation of a route module in the document."""
    op = _op(summary, _json(_ref("Object")), params=[_path_param(p) for p in params or []], status=status,
             extra={**NOT_FOUND, **(extra or {})}, method=method.lower())  # fmt: skip
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref("Object")}}}
    EXTRA_PATHS.setdefault(path, {})[method.lower()] = op


_LIB = "/v1/library/{library_id}"
for _method, _path, _summary, _body, _status in (
    ("post", "/v1/library", "Create a face library", True, "201"),
    ("get", "/v1/libraries", "List libraries (keyset cursor)", False, "200"),
    ("get", _LIB, "Get a library", False, "200"),
    ("patch", _LIB, "Update a library's name or description", True, "200"),
    ("delete", _LIB, "Delete a library, its persons and every vector", False, "200"),
    ("post", _LIB + "/face", "Enrol a reference image under a person (exactly one clear face)", True, "201"),
    ("get", _LIB + "/persons", "List persons (keyset cursor)", False, "200"),
    ("get", _LIB + "/person/{person_id}", "Get a person and their reference faces", False, "200"),
    ("delete", _LIB + "/person/{person_id}", "Delete a person and their vectors", False, "200"),
    ("get", _LIB + "/person/{person_id}/faces", "List a person's reference faces", False, "200"),
    ("delete", _LIB + "/person/{person_id}/face/{face_id}", "Delete one reference face", False, "200"),
    ("post", "/v1/compare", "1:1 compare of the largest faces of two images", True, "200"),
    ("get", "/v1/keys", "List your API keys (prefix and metadata only)", False, "200"),
    ("post", "/v1/keys", "Create an API key (the secret is shown once)", True, "201"),
    ("post", "/v1/keys/{key_id}/rotate", "Rotate a key (the old one works for a grace period)", True, "201"),
    ("post", "/v1/keys/{key_id}/revoke", "Revoke a key now", False, "200"),
    ("get", "/v1/usage", "Usage against the plan: requests, concurrent tasks, monthly minutes", False, "200"),
):
    documented_operation(
        _summary, _method, _path, body=_body, status=_status,
        params=[part.strip("{}") for part in _path.split("/") if part.startswith("{")],
        extra={"409": CONFLICT, **MEDIA_ERRORS} if _path.endswith("/face") else
              MEDIA_ERRORS if _path == "/v1/compare" else
              {"409": CONFLICT} if _path == "/v1/library" else None,
    )  # fmt: skip


DOCS_PAGE = (Path(__file__).parent / "docs.html").read_text()
DOCS_SCRIPT = (Path(__file__).parent / "docs.js").read_text()


def _swagger_ui_assets() -> Path:
    """The static files of the installed ``swagger-ui-py`` package, found without importing it (its package
    imports web-framework glue that the gateway does not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed (make setup)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


SWAGGER_UI_ASSETS = _swagger_ui_assets()
ASSET_TYPES = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
"""The files of Swagger UI that /docs uses, and nothing else of the package."""


async def openapi_json(_: Request) -> Response:
    """GET /openapi.json."""
    return JSONResponse(document(EXTRA_PATHS))


async def docs_page(_: Request) -> Response:
    """GET /docs: the API reference (Swagger UI, served from this process: no CDN, works offline)."""
    return HTMLResponse(DOCS_PAGE)


async def docs_script(_: Request) -> Response:
    """GET /docs/facemint-docs.js: starts Swagger UI on /openapi.json."""
    return Response(DOCS_SCRIPT, media_type="text/javascript")


async def docs_asset(request: Request) -> Response:
    """GET /docs/assets/{name}: one of :data:`ASSET_TYPES`, cacheable for a day."""
    name = request.path_params["name"]
    if name not in ASSET_TYPES:
        raise NotFound(f"no documentation asset {name!r}")
    return FileResponse(
        SWAGGER_UI_ASSETS / name, media_type=ASSET_TYPES[name], headers={"Cache-Control": "public, max-age=86400"}
    )


def routes() -> list[BaseRoute]:
    """The documentation routes (no API key needed)."""
    return [
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/docs/facemint-docs.js", docs_script, methods=["GET"]),
        Route("/docs/assets/{name}", docs_asset, methods=["GET"]),
    ]
