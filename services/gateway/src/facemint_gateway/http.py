"""Request and response helpers: bodies are read and answered through the contract's models (every answer carries
``request_id``); errors use the public envelope."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from facemint_core.errors import FacemintError, InvalidRequest
from facemint_core.taskview import render_json
from facemint_gateway.contract.base import Reply, RequestModel, parse

B = TypeVar("B", bound=RequestModel)


def request_id(request: Request) -> str:
    """The id assigned to this request by the request-id middleware."""
    return str(request.scope.get("facemint_request_id", ""))


class _Response(JSONResponse):
    """Starlette's JSON response, with top-level :class:`RawJSON` values written as they are."""

    def render(self, content: Any) -> bytes:
        return render_json(content, super().render)


def ok(
    request: Request, reply: type[Reply], body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response of the contract's ``reply`` model, with ``request_id`` first.

    The body goes through the model (checked against the contract, serialised by it); the fields ``body`` leaves
    out stay out of the answer (a task's ``result`` before it succeeds).
    """
    answer = reply.model_validate({"request_id": request_id(request), **body}).model_dump(exclude_unset=True)
    return _Response({"request_id": answer.pop("request_id"), **answer}, status_code=status, headers=headers)


DEFAULT_RETRY_AFTER_SECONDS = 5
"""``Retry-After`` of a 429 or 503 whose cause names no better time (an overloaded or unavailable dependency)."""


def created(request: Request, reply: type[Reply], body: dict[str, Any], location: str) -> Response:
    """A 201 response with ``Location``: the path where the new resource (or, where it has no route of its own,
    the nearest one that shows it) is read."""
    return ok(request, reply, body, status=201, headers={"Location": location})


def error_response(request_id_value: str, exc: FacemintError, headers: dict[str, str] | None = None) -> Response:
    """The spec's error envelope ``{"error": {"code", "message", "request_id"}}``; every 429 and 503 carries
    ``Retry-After`` (:data:`DEFAULT_RETRY_AFTER_SECONDS` unless ``headers`` set one)."""
    if exc.http_status in (429, 503) and not any(k.lower() == "retry-after" for k in headers or {}):
        headers = {**(headers or {}), "Retry-After": str(DEFAULT_RETRY_AFTER_SECONDS)}
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message, "request_id": request_id_value}},
        status_code=exc.http_status,
        headers=headers,
    )


MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects accepted in a request body (``[[1]]`` is 2 deep)."""


def parse_json(raw: bytes) -> Any:
    """Parse a request body strictly; InvalidRequest for anything that is not plain, storable JSON.

    Refused: malformed JSON and invalid UTF-8, ``NaN``/``Infinity`` and numbers too large for a double, lone
    surrogates (``"\\ud800"``), NUL characters (PostgreSQL cannot store them), and arrays and objects nested
    more than :data:`MAX_JSON_DEPTH` deep. Integers beyond 64 bits are read as floats.
    """
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"malformed JSON: {exc}") from None
    pending: list[tuple[Any, int]] = [(parsed, 0)]
    while pending:  # iterative: no recursion however deep the input
        value, depth = pending.pop()
        if isinstance(value, str):
            if "\0" in value:
                raise InvalidRequest("JSON strings may not contain NUL characters (\\u0000)")
            continue
        if not isinstance(value, list | dict):
            continue
        if depth == MAX_JSON_DEPTH:
            raise InvalidRequest(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
        items = value if isinstance(value, list) else [*value, *value.values()]
        pending.extend((item, depth + 1) for item in items)
    return parsed


async def json_body(request: Request, max_bytes: int, allow_empty: bool = False) -> dict[str, Any]:
    """Read and parse (:func:`parse_json`) a JSON object body, bounded in size; InvalidRequest when malformed.

    With ``allow_empty``, an empty body is read as ``{}``. The contract's models then check the fields
    (:func:`read_body`).
    """
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise InvalidRequest(f"request body exceeds {max_bytes} bytes")
    if not body.strip():
        if allow_empty:
            return {}
        raise InvalidRequest("request body is empty: a JSON object is required")
    parsed = parse_json(body)
    if not isinstance(parsed, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return parsed


def account_id(request: Request) -> str:
    """The authenticated account of this request (set by the auth middleware)."""
    return str(request.scope["facemint_account"].account_id)


async def read_body(
    request: Request,
    model: type[B],
    max_bytes: int,
    allow_empty: bool = False,
    context: dict[str, Any] | None = None,
) -> B:
    """Read a JSON body (:func:`json_body`) and validate it with the contract's ``model`` (:func:`contract.parse`)."""
    return parse(model, await json_body(request, max_bytes, allow_empty), context)
