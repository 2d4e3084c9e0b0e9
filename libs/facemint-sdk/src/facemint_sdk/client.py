"""The synchronous client of the Facemint public API (:class:`FacemintClient`) and of the admin API
(:class:`AdminClient`), on httpx. :mod:`facemint_sdk.aio` has the same public client for asyncio.

Example::

    with FacemintClient(api_key, base_url="http://127.0.0.1:8080") as client:
        task = client.detect_file("group.jpg", attributes=["age", "gender"])
        for face in task["result"]["frames"][0]["faces"]:
            print(face["bbox"], face["attributes"])

Every POST carries an ``Idempotency-Key`` (a random one unless given), so every request is safe to repeat: each is
retried after a connection error, 429 or 503, honouring ``Retry-After`` up to ``max_retry_wait`` seconds. Every error
answer raises :class:`FacemintAPIError` with the API's code.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from facemint_sdk import _core as api
from facemint_sdk import models as m
from facemint_sdk._core import TERMINAL_STATUSES, Call, RateLimit, RetryPolicy

T = TypeVar("T")
_Self = TypeVar("_Self", bound="_HttpApi")
DEFAULT_URL = "http://127.0.0.1:8080"


class _HttpApi:
    """Shared transport: JSON requests, the error envelope, bounded retries of repeatable requests."""

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float,
        retry: RetryPolicy,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=dict(headers), timeout=timeout, transport=transport
        )
        self.retry = retry
        self.last_rate_limit: RateLimit | None = None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(call.method, call.path, **call.request_args())
            except httpx.TransportError as exc:
                error = api.transport_error(exc)
            else:
                self.last_rate_limit = api.rate_limit(response) or self.last_rate_limit
                if response.is_success:
                    return cast(T, response.json())
                error = api.api_error(response)
            wait = self.retry.after_error(call, attempt, error)
            if wait is None:
                raise error
            time.sleep(wait)

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        return self._send(Call[dict[str, Any]](method, path, body, params or {}))


class FacemintClient(_HttpApi):
    """The public API, authenticated by an API key (``x-api-key``).

    Args:
        api_key: An account's API key (``fm_...``).
        base_url: The gateway, e.g. ``http://127.0.0.1:8080``.
        timeout: Seconds per HTTP request (a long poll adds its wait to it).
        max_retries: Retries of a request after a connection error, 429 or 503.
        max_retry_wait: The longest ``Retry-After`` worth waiting for; longer ones raise at once.
        transport: An httpx transport (tests, proxies).
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_URL,
        timeout: float = 60.0,
        max_retries: int = 2,
        max_retry_wait: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, {"x-api-key": api_key}, timeout, RetryPolicy(max_retries, max_retry_wait), transport)
        self._timeout = timeout

    # Tasks

    def create_detection_task(
        self, type: m.TaskType, media_url: str, *, idempotency_key: str | None = None, **options: Any
    ) -> m.TaskCreated:
        """Submit a detection task.

        Args:
            type: ``image``, ``gif`` or ``video``.
            media_url: An http(s) URL, or the ``media_url`` of an upload.
            idempotency_key: Sent as ``Idempotency-Key`` (a random one when None): a retry never creates a second task.
            **options: Any other field of the request body: ``attributes``, ``recognize``, ``library_id``, ``top_k``,
                ``start_time``, ``end_time``, ``sample_rate``, ``min_face_size``, ``confidence_threshold``,
                ``callback_url``, ``metadata`` (None values are left out).
        """
        return self._send(api.create_detection_task(type, media_url, idempotency_key, options))

    def get_task(self, task_id: str, wait: float = 0) -> m.Task:
        """One task, with its result once succeeded; ``wait`` > 0 holds the answer up to that many seconds (at most
        30) until the task is terminal (a long poll)."""
        return self._send(api.get_task(task_id, wait))

    def wait_for_task(self, task_id: str, timeout: float = 600.0) -> m.Task:
        """Long-poll until the task succeeds, fails or is cancelled; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            task = self.get_task(task_id, wait=max(left, 0.001))
            if task.get("status") in TERMINAL_STATUSES:
                return task
            if time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} still {task.get('status')} after {timeout:.0f} s")

    def list_tasks(
        self,
        status: m.TaskStatus | None = None,
        type: m.TaskType | None = None,
        created_after: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> m.TaskPage:
        """One page of the account's tasks, newest first (``next_cursor`` leads to the next)."""
        return self._send(api.list_tasks(status, type, created_after, limit, cursor))

    def iter_tasks(
        self, status: m.TaskStatus | None = None, type: m.TaskType | None = None, page_size: int = 100
    ) -> Iterator[m.Task]:
        """Every task matching the filters, following the cursors."""
        cursor: str | None = None
        while True:
            page = self.list_tasks(status=status, type=type, limit=page_size, cursor=cursor)
            yield from page.get("tasks", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def cancel_task(self, task_id: str) -> m.CancelledTask:
        """Cancel a queued or running task (409 ``conflict`` once it is terminal)."""
        return self._send(api.cancel_task(task_id))

    # Uploads

    def create_upload(self, type: m.TaskType, filename: str = "") -> m.UploadCreated:
        """A presigned upload: :meth:`upload` sends the bytes for you."""
        return self._send(api.create_upload(type, filename))

    def upload(self, source: str | Path | bytes, type: m.TaskType | None = None, filename: str = "") -> m.UploadCreated:
        """Upload a local file (or bytes) through a presigned upload; its ``media_url`` goes into a task, an
        enrolment or a compare. ``type`` defaults to what the file name says (image when bytes are given)."""
        if isinstance(source, bytes):
            data, filename = source, filename or "media"
        else:
            data, filename = Path(source).read_bytes(), filename or Path(source).name
        upload = self.create_upload(type or api.media_type(filename), filename)
        with httpx.Client(timeout=max(self._timeout, 300.0)) as store:  # never send the API key to the store
            api.check_upload(store.post(upload["upload_url"], **api.upload_form(upload, data, filename)))
        return upload

    def media_url(self, source: str | Path, type: m.TaskType | None = None) -> str:
        """``source`` when it is an http(s) URL, else the ``media_url`` of an upload of that local file."""
        if isinstance(source, str) and source.startswith(("http://", "https://")):
            return source
        return self.upload(source, type)["media_url"]

    def detect_file(
        self, source: str | Path, *, type: m.TaskType | None = None, timeout: float = 600.0, **options: Any
    ) -> m.Task:
        """Analyse a local file (or URL) in one call: upload, create the task, wait for it; the finished task.

        ``options`` are those of :meth:`create_detection_task` (``attributes=[...]``, ``recognize=1``,
        ``library_id=...``). A failed task is returned as such (``status`` ``failed`` and its ``error``).
        """
        kind = type or api.media_type(str(source))
        created = self.create_detection_task(kind, self.media_url(source, kind), **options)
        return self.wait_for_task(created["task_id"], timeout)

    # Libraries, persons and faces

    def create_library(self, library_id: str, name: str | None = None, description: str | None = None) -> m.Library:
        """Create a face library with your own id."""
        return self._send(api.create_library(library_id, name, description))

    def list_libraries(self, limit: int | None = None, cursor: str | None = None) -> m.LibraryPage:
        """One page of your libraries."""
        return self._send(api.list_libraries(limit, cursor))

    def iter_libraries(self, page_size: int = 100) -> Iterator[m.Library]:
        """Every library, following the cursors."""
        cursor: str | None = None
        while True:
            page = self.list_libraries(page_size, cursor)
            yield from page.get("libraries", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get_library(self, library_id: str) -> m.Library:
        """One library with its person and face counts."""
        return self._send(api.get_library(library_id))

    def update_library(self, library_id: str, name: str | None = None, description: str | None = None) -> m.Library:
        """Change a library's name or description."""
        return self._send(api.update_library(library_id, name, description))

    def delete_library(self, library_id: str) -> m.LibraryDeleted:
        """Delete a library, its persons and every vector."""
        return self._send(api.delete_library(library_id))

    def enrol_face(
        self,
        library_id: str,
        person_id: str,
        image: str | Path,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> m.ReferenceFace:
        """Enrol a reference image (exactly one clear face) under a person, created on first use; ``image`` is an
        http(s) URL or a local file, uploaded first."""
        url = self.media_url(image, "image")
        return self._send(api.enrol_face(library_id, person_id, url, name, metadata))

    def list_persons(self, library_id: str, limit: int | None = None, cursor: str | None = None) -> m.PersonPage:
        """One page of a library's persons."""
        return self._send(api.list_persons(library_id, limit, cursor))

    def iter_persons(self, library_id: str, page_size: int = 100) -> Iterator[m.Person]:
        """Every person of a library, following the cursors."""
        cursor: str | None = None
        while True:
            page = self.list_persons(library_id, page_size, cursor)
            yield from page.get("persons", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get_person(self, library_id: str, person_id: str) -> m.PersonWithFaces:
        """A person and their reference faces."""
        return self._send(api.get_person(library_id, person_id))

    def delete_person(self, library_id: str, person_id: str) -> m.PersonDeleted:
        """Delete a person and their vectors."""
        return self._send(api.delete_person(library_id, person_id))

    def list_faces(self, library_id: str, person_id: str) -> m.PersonFaces:
        """A person's reference faces."""
        return self._send(api.list_faces(library_id, person_id))

    def delete_face(self, library_id: str, person_id: str, face_id: str) -> m.FaceDeleted:
        """Delete one reference face."""
        return self._send(api.delete_face(library_id, person_id, face_id))

    def compare(self, source: str | Path, target: str | Path) -> m.Comparison:
        """1:1 compare of the largest face of two images (URLs or local files, uploaded first)."""
        return self._send(api.compare(self.media_url(source, "image"), self.media_url(target, "image")))

    # Keys and usage

    def list_keys(self) -> list[m.ApiKey]:
        """The account's keys (prefix and metadata only)."""
        return self._send(api.list_keys()).get("keys", [])

    def create_key(self, name: str = "", expires_in_seconds: int | None = None) -> m.CreatedKey:
        """A new key of the account; its secret is in ``["key"]``, shown this once."""
        return self._send(api.create_key(name, expires_in_seconds))

    def rotate_key(self, key_id: str, grace_seconds: int | None = None) -> m.RotatedKey:
        """Replace a key; the old one keeps working for ``grace_seconds`` (server default when None)."""
        return self._send(api.rotate_key(key_id, grace_seconds))

    def revoke_key(self, key_id: str) -> m.ApiKey:
        """Revoke a key now."""
        return self._send(api.revoke_key(key_id))

    def usage(self) -> m.Usage:
        """Plan, limits, this month's minutes, active tasks and this key's request window."""
        return self._send(api.usage())

    # Webhooks

    def list_deliveries(self, task_id: str) -> m.Deliveries:
        """A task's webhook deliveries and their attempts."""
        return self._send(api.list_deliveries(task_id))

    def redeliver(self, task_id: str) -> m.Redelivery:
        """Queue a task's webhook again."""
        return self._send(api.redeliver(task_id))

    def get_webhook_secret(self) -> m.WebhookSecret:
        """The account's webhook signing secret (and the previous one during a rotation)."""
        return self._send(api.get_webhook_secret())

    def rotate_webhook_secret(self, grace_seconds: int | None = None) -> m.WebhookSecret:
        """A new signing secret; deliveries also carry the old one's signature for ``grace_seconds``."""
        return self._send(api.rotate_webhook_secret(grace_seconds))


class AdminClient(_HttpApi):
    """The admin API, authenticated by the gateway's admin token (``Authorization: Bearer``)."""

    def __init__(
        self,
        token: str,
        base_url: str = DEFAULT_URL,
        timeout: float = 30.0,
        max_retries: int = 2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, {"Authorization": f"Bearer {token}"}, timeout, RetryPolicy(max_retries), transport)

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
