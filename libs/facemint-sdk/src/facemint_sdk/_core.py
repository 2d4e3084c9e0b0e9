"""What the sync and the async client share: the error type, rate-limit headers, the retry rule and every endpoint
as a :class:`Call` (method, path, body, query), so that the two clients differ only in how they send a request."""

from __future__ import annotations

import mimetypes
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlsplit

import httpx

from facemint_sdk import models as m

T = TypeVar("T")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
MAX_WAIT_SECONDS = 30.0
"""The longest long poll (``GET /v1/task/{id}?wait=``) the API documents."""


class FacemintAPIError(Exception):
    """An error answer of the API (its envelope's code and message), or a transport failure (``status`` 0)."""

    def __init__(
        self, status: int, code: str, message: str, request_id: str = "", retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


@dataclass(frozen=True)
class RateLimit:
    """The ``X-RateLimit-*`` headers of a response."""

    limit: int
    remaining: int
    reset: int


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API; ``T`` is the JSON answer's model."""

    method: str
    path: str
    body: Mapping[str, Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    timeout: float | None = None

    @property
    def repeatable(self) -> bool:
        """Whether sending it twice has the effect of sending it once (GET, DELETE, POST with an idempotency key)."""
        return self.method in ("GET", "DELETE") or self.idempotency_key is not None

    def request_args(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.request``."""
        args: dict[str, Any] = {"params": {k: v for k, v in self.params.items() if v is not None}}
        if self.body is not None:
            args["json"] = dict(self.body)
        if self.idempotency_key:
            args["headers"] = {"Idempotency-Key": self.idempotency_key}
        if self.timeout is not None:
            args["timeout"] = self.timeout
        return args


@dataclass
class RetryPolicy:
    """Retries of repeatable requests after a connection error, 429 or 503.

    A ``Retry-After`` longer than ``max_retry_wait`` is not waited for: the error is raised with ``retry_after`` set
    (a monthly quota, for instance, resets at the start of the next month).
    """

    max_retries: int = 2
    max_retry_wait: float = 10.0

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt`` (1-based) when the server gave no ``Retry-After``."""
        return min(self.max_retry_wait, 0.5 * 2**attempt)

    def after_error(self, call: Call[Any], attempt: int, error: FacemintAPIError) -> float | None:
        """Seconds to wait before trying ``call`` again, or None to raise ``error``."""
        if not call.repeatable or attempt > self.max_retries:
            return None
        if error.status == 0:
            return self.backoff(attempt)
        if error.status not in (429, 503):
            return None
        wait = error.retry_after if error.retry_after is not None else self.backoff(attempt)
        return wait if wait <= self.max_retry_wait else None


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (None when absent or not a number)."""
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def rate_limit(response: httpx.Response) -> RateLimit | None:
    """The response's ``X-RateLimit-*`` headers, when it has them."""
    h = response.headers
    try:
        return RateLimit(int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"]))
    except (KeyError, ValueError):
        return None


def api_error(response: httpx.Response) -> FacemintAPIError:
    """The error of a non-2xx answer, from its envelope when it has one."""
    try:
        envelope = response.json()["error"]
        code, message, rid = str(envelope["code"]), str(envelope["message"]), str(envelope.get("request_id", ""))
    except (ValueError, KeyError, TypeError):
        code, message, rid = f"http_{response.status_code}", response.text[:200], ""
    return FacemintAPIError(response.status_code, code, message, rid, retry_after(response))


def transport_error(exc: httpx.TransportError) -> FacemintAPIError:
    """A connection failure as an API error with status 0."""
    return FacemintAPIError(0, "connection_error", str(exc) or type(exc).__name__)


def new_key() -> str:
    """A fresh ``Idempotency-Key``."""
    return str(uuid.uuid4())


def media_type(path: str | Path) -> m.TaskType:
    """The task type of a file name or URL: ``gif`` for .gif, ``video`` for video types, else ``image``."""
    name = urlsplit(str(path)).path.lower() if str(path).startswith(("http://", "https://")) else str(path).lower()
    if name.endswith(".gif"):
        return "gif"
    guessed, _ = mimetypes.guess_type(name)
    return "video" if guessed and guessed.startswith("video/") else "image"


def upload_form(upload: m.UploadCreated, data: bytes, filename: str) -> dict[str, Any]:
    """Keyword arguments of the form POST that sends ``data`` to a presigned upload."""
    if len(data) > upload.get("max_bytes", len(data)):
        raise ValueError(f"{filename} is {len(data)} bytes; this upload takes at most {upload['max_bytes']}")
    return {"data": dict(upload["fields"]), "files": {"file": (filename or "media", data)}}


def check_upload(response: httpx.Response) -> None:
    """Raise when the object store refused an upload."""
    if not response.is_success:
        raise FacemintAPIError(response.status_code, "upload_failed", response.text[:300])


def _q(value: str) -> str:
    return quote(value, safe="")


def _page(limit: int | None, cursor: str | None) -> dict[str, Any]:
    return {"limit": limit, "cursor": cursor}


def _without_none(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


# Endpoints. Every POST carries an Idempotency-Key (a random one unless given), so every request is safe to retry.


def create_detection_task(
    type: m.TaskType, media_url: str, idempotency_key: str | None, options: Mapping[str, Any]
) -> Call[m.TaskCreated]:
    body = {"type": type, "media_url": media_url, **_without_none(**options)}
    return Call("POST", "/v1/create-detection-task", body, idempotency_key=idempotency_key or new_key())


def get_task(task_id: str, wait: float = 0) -> Call[m.Task]:
    if wait <= 0:
        return Call("GET", f"/v1/task/{_q(task_id)}")
    wait = min(wait, MAX_WAIT_SECONDS)
    return Call("GET", f"/v1/task/{_q(task_id)}", params={"wait": wait}, timeout=wait + 15)


def list_tasks(
    status: str | None, type: str | None, created_after: str | None, limit: int | None, cursor: str | None
) -> Call[m.TaskPage]:
    params = {"status": status, "type": type, "created_after": created_after, **_page(limit, cursor)}
    return Call("GET", "/v1/tasks", params=params)


def cancel_task(task_id: str) -> Call[m.CancelledTask]:
    return Call("POST", f"/v1/task/{_q(task_id)}/cancel", {}, idempotency_key=new_key())


def create_upload(type: m.TaskType, filename: str) -> Call[m.UploadCreated]:
    return Call("POST", "/v1/uploads", _without_none(type=type, filename=filename or None), idempotency_key=new_key())


def create_library(library_id: str, name: str | None, description: str | None) -> Call[m.Library]:
    body = _without_none(library_id=library_id, name=name, description=description)
    return Call("POST", "/v1/library", body, idempotency_key=new_key())


def list_libraries(limit: int | None, cursor: str | None) -> Call[m.LibraryPage]:
    return Call("GET", "/v1/libraries", params=_page(limit, cursor))


def get_library(library_id: str) -> Call[m.Library]:
    return Call("GET", f"/v1/library/{_q(library_id)}")


def update_library(library_id: str, name: str | None, description: str | None) -> Call[m.Library]:
    return Call("PATCH", f"/v1/library/{_q(library_id)}", _without_none(name=name, description=description))


def delete_library(library_id: str) -> Call[m.LibraryDeleted]:
    return Call("DELETE", f"/v1/library/{_q(library_id)}")


def enrol_face(
    library_id: str, person_id: str, image_url: str, name: str | None, metadata: Mapping[str, Any] | None
) -> Call[m.ReferenceFace]:
    body = _without_none(person_id=person_id, image_url=image_url, name=name, metadata=metadata)
    return Call("POST", f"/v1/library/{_q(library_id)}/face", body, idempotency_key=new_key())


def list_persons(library_id: str, limit: int | None, cursor: str | None) -> Call[m.PersonPage]:
    return Call("GET", f"/v1/library/{_q(library_id)}/persons", params=_page(limit, cursor))


def get_person(library_id: str, person_id: str) -> Call[m.PersonWithFaces]:
    return Call("GET", f"/v1/library/{_q(library_id)}/person/{_q(person_id)}")


def delete_person(library_id: str, person_id: str) -> Call[m.PersonDeleted]:
    return Call("DELETE", f"/v1/library/{_q(library_id)}/person/{_q(person_id)}")


def list_faces(library_id: str, person_id: str) -> Call[m.PersonFaces]:
    return Call("GET", f"/v1/library/{_q(library_id)}/person/{_q(person_id)}/faces")


def delete_face(library_id: str, person_id: str, face_id: str) -> Call[m.FaceDeleted]:
    return Call("DELETE", f"/v1/library/{_q(library_id)}/person/{_q(person_id)}/face/{_q(face_id)}")


def compare(source_image_url: str, target_image_url: str) -> Call[m.Comparison]:
    body = {"source_image_url": source_image_url, "target_image_url": target_image_url}
    return Call("POST", "/v1/compare", body, idempotency_key=new_key())


def list_keys() -> Call[m.KeyList]:
    return Call("GET", "/v1/keys")


def create_key(name: str, expires_in_seconds: int | None) -> Call[m.CreatedKey]:
    body = _without_none(name=name or None, expires_in_seconds=expires_in_seconds)
    return Call("POST", "/v1/keys", body, idempotency_key=new_key())


def rotate_key(key_id: str, grace_seconds: int | None) -> Call[m.RotatedKey]:
    body = _without_none(grace_seconds=grace_seconds)
    return Call("POST", f"/v1/keys/{_q(key_id)}/rotate", body, idempotency_key=new_key())


def revoke_key(key_id: str) -> Call[m.ApiKey]:
    return Call("POST", f"/v1/keys/{_q(key_id)}/revoke", {}, idempotency_key=new_key())


def usage() -> Call[m.Usage]:
    return Call("GET", "/v1/usage")


def list_deliveries(task_id: str) -> Call[m.Deliveries]:
    return Call("GET", f"/v1/task/{_q(task_id)}/deliveries")


def redeliver(task_id: str) -> Call[m.Redelivery]:
    return Call("POST", f"/v1/task/{_q(task_id)}/redeliver", {}, idempotency_key=new_key())


def get_webhook_secret() -> Call[m.WebhookSecret]:
    return Call("GET", "/v1/webhook-secret")


def rotate_webhook_secret(grace_seconds: int | None) -> Call[m.WebhookSecret]:
    body = _without_none(grace_seconds=grace_seconds)
    return Call("POST", "/v1/webhook-secret/rotate", body, idempotency_key=new_key())
