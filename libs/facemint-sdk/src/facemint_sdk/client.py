"""A small typed client of the Facemint public API (``/v1``) and of the admin API (``/admin/v1``), on httpx.

Example::

    with FacemintClient(api_key, base_url="http://127.0.0.1:8080") as client:
        created = client.create_detection_task("image", "https://example.com/a.jpg", attributes=["landmarks"])
        task = client.wait_for_task(created["task_id"])

Requests that are safe to repeat (GETs, and POSTs sent with an ``Idempotency-Key``, which task creation and
cancellation always carry) are retried on connection errors, 503 and 429 (honouring ``Retry-After`` up to
``max_retry_wait`` seconds). Every error answer raises :class:`FacemintAPIError` with the API's code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypedDict, cast

import httpx

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
TaskType = Literal["video", "image", "gif"]


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


class TaskCreated(TypedDict):
    """The answer to ``POST /v1/create-detection-task``."""

    request_id: str
    task_id: str
    status: str
    created_at: str
    estimated_seconds: int


class Task(TypedDict, total=False):
    """A task as ``GET /v1/task/{id}`` returns it."""

    request_id: str
    task_id: str
    status: str
    type: str
    media: dict[str, Any]
    result: dict[str, Any]
    progress: dict[str, int]
    estimated_seconds: int
    metadata: dict[str, Any]
    created_at: str
    completed_at: str | None
    error: dict[str, str]


class TaskPage(TypedDict):
    """A page of ``GET /v1/tasks``."""

    request_id: str
    tasks: list[Task]
    next_cursor: str | None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class _HttpApi:
    """Shared transport: JSON requests, the error envelope, bounded retries of repeatable requests."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        max_retries: int,
        max_retry_wait: float,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=dict(headers), timeout=timeout, transport=transport
        )
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.last_rate_limit: RateLimit | None = None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        query = {k: v for k, v in (params or {}).items() if v is not None}
        repeatable = method == "GET" or idempotency_key is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, path, json=body, params=query, headers=headers)
            except httpx.TransportError as exc:
                if repeatable and attempt <= self.max_retries:
                    time.sleep(min(self.max_retry_wait, 0.5 * 2**attempt))
                    continue
                raise FacemintAPIError(0, "connection_error", str(exc) or type(exc).__name__) from exc
            self._note_rate_limit(response)
            if response.is_success:
                return cast(dict[str, Any], response.json())
            error = self._error(response)
            backoff = min(self.max_retry_wait, 0.5 * 2**attempt)
            wait = error.retry_after if error.retry_after is not None else backoff
            retryable = response.status_code in (429, 503) and wait <= self.max_retry_wait
            if not (repeatable and retryable and attempt <= self.max_retries):
                raise error
            time.sleep(wait)

    def _note_rate_limit(self, response: httpx.Response) -> None:
        h = response.headers
        if "x-ratelimit-limit" in h:
            self.last_rate_limit = RateLimit(
                int(h["x-ratelimit-limit"]), int(h["x-ratelimit-remaining"]), int(h["x-ratelimit-reset"])
            )

    @staticmethod
    def _error(response: httpx.Response) -> FacemintAPIError:
        try:
            envelope = response.json()["error"]
            code, message, rid = str(envelope["code"]), str(envelope["message"]), str(envelope.get("request_id", ""))
        except (ValueError, KeyError, TypeError):
            code, message, rid = f"http_{response.status_code}", response.text[:200], ""
        return FacemintAPIError(response.status_code, code, message, rid, _retry_after(response))


class FacemintClient(_HttpApi):
    """The public API, authenticated by an API key (``x-api-key``).

    Args:
        api_key: An account's API key (``fm_...``).
        base_url: The gateway, e.g. ``http://127.0.0.1:8080``.
        timeout: Seconds per HTTP request.
        max_retries: Retries of a repeatable request after a connection error, 429 or 503.
        max_retry_wait: The longest ``Retry-After`` worth waiting for; longer ones raise at once.
        transport: An httpx transport (tests).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = "http://127.0.0.1:8080",
        timeout: float = 30.0,
        max_retries: int = 2,
        max_retry_wait: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, {"x-api-key": api_key}, timeout, max_retries, max_retry_wait, transport)

    def create_detection_task(
        self, type: TaskType, media_url: str, *, idempotency_key: str | None = None, **options: Any
    ) -> TaskCreated:
        """Submit a detection task (``options``: start_time, end_time, sample_rate, attributes, recognize, ...).

        An ``Idempotency-Key`` is always sent (a random one unless given), so a retry never creates a second task.
        """
        body = {"type": type, "media_url": media_url, **options}
        key = idempotency_key or str(uuid.uuid4())
        return cast(TaskCreated, self._request("POST", "/v1/create-detection-task", body, idempotency_key=key))

    def get_task(self, task_id: str) -> Task:
        """One task, with its result once succeeded."""
        return cast(Task, self._request("GET", f"/v1/task/{task_id}"))

    def wait_for_task(self, task_id: str, timeout: float = 300.0, poll_interval: float = 2.0) -> Task:
        """Poll until the task is terminal; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            task = self.get_task(task_id)
            if task.get("status") in TERMINAL_STATUSES:
                return task
            if time.monotonic() + poll_interval > deadline:
                raise TimeoutError(f"task {task_id} still {task.get('status')} after {timeout:.0f} s")
            time.sleep(poll_interval)

    def list_tasks(
        self,
        status: str | None = None,
        type: TaskType | None = None,
        created_after: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> TaskPage:
        """One page of the account's tasks, newest first."""
        params = {"status": status, "type": type, "created_after": created_after, "limit": limit, "cursor": cursor}
        return cast(TaskPage, self._request("GET", "/v1/tasks", params=params))

    def iter_tasks(
        self, status: str | None = None, type: TaskType | None = None, page_size: int = 100
    ) -> Iterator[Task]:
        """Every task matching the filters, following the cursors."""
        cursor: str | None = None
        while True:
            page = self.list_tasks(status=status, type=type, limit=page_size, cursor=cursor)
            yield from page["tasks"]
            cursor = page["next_cursor"]
            if not cursor:
                return

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        """Cancel a queued or running task (409 ``conflict`` once it is terminal)."""
        return self._request("POST", f"/v1/task/{task_id}/cancel", {}, idempotency_key=str(uuid.uuid4()))

    def create_upload(self, type: TaskType, filename: str = "") -> dict[str, Any]:
        """A presigned upload: POST ``fields`` and then the bytes (a form field named ``file``, at most ``max_bytes``)
        as ``multipart/form-data`` to ``upload_url``, then submit ``media_url`` in a task."""
        return self._request("POST", "/v1/uploads", {"type": type, "filename": filename})

    def usage(self) -> dict[str, Any]:
        """Plan, limits, this month's minutes, active tasks and this key's request window."""
        return self._request("GET", "/v1/usage")

    def list_keys(self) -> list[dict[str, Any]]:
        """The account's keys (prefix and metadata only)."""
        return cast(list[dict[str, Any]], self._request("GET", "/v1/keys")["keys"])

    def create_key(self, name: str = "", expires_in_seconds: int | None = None) -> dict[str, Any]:
        """A new key of the account; its secret is in ``["key"]``, shown this once."""
        return self._request("POST", "/v1/keys", {"name": name or None, "expires_in_seconds": expires_in_seconds})

    def rotate_key(self, key_id: str, grace_seconds: int | None = None) -> dict[str, Any]:
        """Replace a key; the old one keeps working for ``grace_seconds`` (server default when None)."""
        return self._request("POST", f"/v1/keys/{key_id}/rotate", {"grace_seconds": grace_seconds})

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key now."""
        return self._request("POST", f"/v1/keys/{key_id}/revoke", {})


class AdminClient(_HttpApi):
    """The admin API, authenticated by the gateway's admin token (``Authorization: Bearer``)."""

    def __init__(
        self,
        token: str,
        base_url: str = "http://127.0.0.1:8080",
        timeout: float = 30.0,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, {"Authorization": f"Bearer {token}"}, timeout, max_retries, 10.0, transport)

    def plans(self) -> list[dict[str, Any]]:
        """The configured plans and their limits."""
        return cast(list[dict[str, Any]], self._request("GET", "/admin/v1/plans")["plans"])

    def create_account(
        self,
        name: str,
        plan: str | None = None,
        limits: Mapping[str, int | None] | None = None,
        create_key: bool = True,
    ) -> dict[str, Any]:
        """A new account (``["account"]``) and, unless ``create_key`` is false, its first key (``["api_key"]``)."""
        body: dict[str, Any] = {"name": name, "create_key": create_key}
        if plan:
            body["plan"] = plan
        if limits:
            body["limits"] = dict(limits)
        return self._request("POST", "/admin/v1/accounts", body)

    def list_accounts(self, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
        """A page of accounts (``["accounts"]``, ``["next_cursor"]``)."""
        return self._request("GET", "/admin/v1/accounts", params={"limit": limit, "cursor": cursor})

    def get_account(self, account_id: str) -> dict[str, Any]:
        """One account with its limits and webhook secret."""
        return self._request("GET", f"/admin/v1/accounts/{account_id}")

    def update_account(
        self,
        account_id: str,
        name: str | None = None,
        plan: str | None = None,
        limits: Mapping[str, int | None] | None = None,
    ) -> dict[str, Any]:
        """Change name, plan or limit overrides (a None limit clears the override)."""
        body: dict[str, Any] = {}
        if name:
            body["name"] = name
        if plan:
            body["plan"] = plan
        if limits is not None:
            body["limits"] = dict(limits)
        return self._request("PATCH", f"/admin/v1/accounts/{account_id}", body)

    def account_usage(self, account_id: str) -> dict[str, Any]:
        """An account's usage this month."""
        return self._request("GET", f"/admin/v1/accounts/{account_id}/usage")

    def list_keys(self, account_id: str) -> list[dict[str, Any]]:
        """An account's keys (prefix and metadata only)."""
        return cast(list[dict[str, Any]], self._request("GET", f"/admin/v1/accounts/{account_id}/keys")["keys"])

    def create_key(self, account_id: str, name: str = "", expires_in_seconds: int | None = None) -> dict[str, Any]:
        """A new key for an account; its secret is in ``["key"]``, shown this once."""
        body = {"name": name, "expires_in_seconds": expires_in_seconds}
        return self._request("POST", f"/admin/v1/accounts/{account_id}/keys", body)

    def rotate_key(self, key_id: str, grace_seconds: int | None = None) -> dict[str, Any]:
        """Replace a key; the old one keeps working for the grace period."""
        return self._request("POST", f"/admin/v1/keys/{key_id}/rotate", {"grace_seconds": grace_seconds})

    def revoke_key(self, key_id: str) -> dict[str, Any]:
        """Revoke a key now."""
        return self._request("POST", f"/admin/v1/keys/{key_id}/revoke", {})
