"""The asyncio client of the Facemint public API: :class:`AsyncFacemintClient`, the same methods as
:class:`facemint_sdk.FacemintClient` (same requests, retries and long poll), awaited.

Example::

    async with AsyncFacemintClient(api_key, base_url="http://127.0.0.1:8080") as client:
        task = await client.detect_file("group.jpg", attributes=["age"])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx

from facemint_sdk import _core as api
from facemint_sdk import models as m
from facemint_sdk._core import TERMINAL_STATUSES, Call, RateLimit, RetryPolicy
from facemint_sdk.client import DEFAULT_URL

T = TypeVar("T")


class AsyncFacemintClient:
    """The public API for asyncio, authenticated by an API key (``x-api-key``): the methods of
    :class:`facemint_sdk.client.FacemintClient`, awaited.

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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers={"x-api-key": api_key}, timeout=timeout, transport=transport
        )
        self.retry = RetryPolicy(max_retries, max_retry_wait)
        self.last_rate_limit: RateLimit | None = None
        self._timeout = timeout

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncFacemintClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(call.method, call.path, **call.request_args())
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
            await asyncio.sleep(wait)

    # Tasks

    async def create_detection_task(
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
        return await self._send(api.create_detection_task(type, media_url, idempotency_key, options))

    async def get_task(self, task_id: str, wait: float = 0) -> m.Task:
        """One task, with its result once succeeded; ``wait`` > 0 holds the answer up to that many seconds (at most
        30) until the task is terminal (a long poll)."""
        return await self._send(api.get_task(task_id, wait))

    async def wait_for_task(self, task_id: str, timeout: float = 600.0) -> m.Task:
        """Long-poll until the task succeeds, fails or is cancelled; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            task = await self.get_task(task_id, wait=max(left, 0.001))
            if task.get("status") in TERMINAL_STATUSES:
                return task
            if time.monotonic() >= deadline:
                raise TimeoutError(f"task {task_id} still {task.get('status')} after {timeout:.0f} s")

    async def list_tasks(
        self,
        status: m.TaskStatus | None = None,
        type: m.TaskType | None = None,
        created_after: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> m.TaskPage:
        """One page of the account's tasks, newest first (``next_cursor`` leads to the next)."""
        return await self._send(api.list_tasks(status, type, created_after, limit, cursor))

    async def iter_tasks(
        self, status: m.TaskStatus | None = None, type: m.TaskType | None = None, page_size: int = 100
    ) -> AsyncIterator[m.Task]:
        """Every task matching the filters, following the cursors."""
        cursor: str | None = None
        while True:
            page = await self.list_tasks(status=status, type=type, limit=page_size, cursor=cursor)
            for item in page.get("tasks", []):
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def cancel_task(self, task_id: str) -> m.CancelledTask:
        """Cancel a queued or running task (409 ``conflict`` once it is terminal)."""
        return await self._send(api.cancel_task(task_id))

    # Uploads

    async def create_upload(self, type: m.TaskType, filename: str = "") -> m.UploadCreated:
        """A presigned upload: :meth:`upload` sends the bytes for you."""
        return await self._send(api.create_upload(type, filename))

    async def upload(
        self, source: str | Path | bytes, type: m.TaskType | None = None, filename: str = ""
    ) -> m.UploadCreated:
        """Upload a local file (or bytes) through a presigned upload; its ``media_url`` goes into a task, an
        enrolment or a compare. ``type`` defaults to what the file name says (image when bytes are given)."""
        if isinstance(source, bytes):
            data, filename = source, filename or "media"
        else:
            data, filename = await asyncio.to_thread(Path(source).read_bytes), filename or Path(source).name
        upload = await self.create_upload(type or api.media_type(filename), filename)
        async with httpx.AsyncClient(timeout=max(self._timeout, 300.0)) as store:  # no API key to the store
            api.check_upload(await store.post(upload["upload_url"], **api.upload_form(upload, data, filename)))
        return upload

    async def media_url(self, source: str | Path, type: m.TaskType | None = None) -> str:
        """``source`` when it is an http(s) URL, else the ``media_url`` of an upload of that local file."""
        if isinstance(source, str) and source.startswith(("http://", "https://")):
            return source
        return (await self.upload(source, type))["media_url"]

    async def detect_file(
        self, source: str | Path, *, type: m.TaskType | None = None, timeout: float = 600.0, **options: Any
    ) -> m.Task:
        """Analyse a local file (or URL) in one call: upload, create the task, wait for it; the finished task.

        ``options`` are those of :meth:`create_detection_task` (``attributes=[...]``, ``recognize=1``,
        ``library_id=...``). A failed task is returned as such (``status`` ``failed`` and its ``error``).
        """
        kind = type or api.media_type(str(source))
        created = await self.create_detection_task(kind, await self.media_url(source, kind), **options)
        return await self.wait_for_task(created["task_id"], timeout)

    # Libraries, persons and faces

    async def create_library(
        self, library_id: str, name: str | None = None, description: str | None = None
    ) -> m.Library:
        """Create a face library with your own id."""
        return await self._send(api.create_library(library_id, name, description))

    async def list_libraries(self, limit: int | None = None, cursor: str | None = None) -> m.LibraryPage:
        """One page of your libraries."""
        return await self._send(api.list_libraries(limit, cursor))

    async def iter_libraries(self, page_size: int = 100) -> AsyncIterator[m.Library]:
        """Every library, following the cursors."""
        cursor: str | None = None
        while True:
            page = await self.list_libraries(page_size, cursor)
            for item in page.get("libraries", []):
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def get_library(self, library_id: str) -> m.Library:
        """One library with its person and face counts."""
        return await self._send(api.get_library(library_id))

    async def update_library(
        self, library_id: str, name: str | None = None, description: str | None = None
    ) -> m.Library:
        """Change a library's name or description."""
        return await self._send(api.update_library(library_id, name, description))

    async def delete_library(self, library_id: str) -> m.LibraryDeleted:
        """Delete a library, its persons and every vector."""
        return await self._send(api.delete_library(library_id))

    async def enrol_face(
        self,
        library_id: str,
        person_id: str,
        image: str | Path,
        name: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> m.ReferenceFace:
        """Enrol a reference image (exactly one clear face) under a person, created on first use; ``image`` is an
        http(s) URL or a local file, uploaded first."""
        url = await self.media_url(image, "image")
        return await self._send(api.enrol_face(library_id, person_id, url, name, metadata))

    async def list_persons(self, library_id: str, limit: int | None = None, cursor: str | None = None) -> m.PersonPage:
        """One page of a library's persons."""
        return await self._send(api.list_persons(library_id, limit, cursor))

    async def iter_persons(self, library_id: str, page_size: int = 100) -> AsyncIterator[m.Person]:
        """Every person of a library, following the cursors."""
        cursor: str | None = None
        while True:
            page = await self.list_persons(library_id, page_size, cursor)
            for item in page.get("persons", []):
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def get_person(self, library_id: str, person_id: str) -> m.PersonWithFaces:
        """A person and their reference faces."""
        return await self._send(api.get_person(library_id, person_id))

    async def delete_person(self, library_id: str, person_id: str) -> m.PersonDeleted:
        """Delete a person and their vectors."""
        return await self._send(api.delete_person(library_id, person_id))

    async def list_faces(self, library_id: str, person_id: str) -> m.PersonFaces:
        """A person's reference faces."""
        return await self._send(api.list_faces(library_id, person_id))

    async def delete_face(self, library_id: str, person_id: str, face_id: str) -> m.FaceDeleted:
        """Delete one reference face."""
        return await self._send(api.delete_face(library_id, person_id, face_id))

    async def compare(self, source: str | Path, target: str | Path) -> m.Comparison:
        """1:1 compare of the largest face of two images (URLs or local files, uploaded first)."""
        source_url, target_url = await self.media_url(source, "image"), await self.media_url(target, "image")
        return await self._send(api.compare(source_url, target_url))

    # Keys and usage

    async def list_keys(self) -> list[m.ApiKey]:
        """The account's keys (prefix and metadata only)."""
        return (await self._send(api.list_keys())).get("keys", [])

    async def create_key(self, name: str = "", expires_in_seconds: int | None = None) -> m.CreatedKey:
        """A new key of the account; its secret is in ``["key"]``, shown this once."""
        return await self._send(api.create_key(name, expires_in_seconds))

    async def rotate_key(self, key_id: str, grace_seconds: int | None = None) -> m.RotatedKey:
        """Replace a key; the old one keeps working for ``grace_seconds`` (server default when None)."""
        return await self._send(api.rotate_key(key_id, grace_seconds))

    async def revoke_key(self, key_id: str) -> m.ApiKey:
        """Revoke a key now."""
        return await self._send(api.revoke_key(key_id))

    async def usage(self) -> m.Usage:
        """Plan, limits, this month's minutes, active tasks and this key's request window."""
        return await self._send(api.usage())

    # Webhooks

    async def list_deliveries(self, task_id: str) -> m.Deliveries:
        """A task's webhook deliveries and their attempts."""
        return await self._send(api.list_deliveries(task_id))

    async def redeliver(self, task_id: str) -> m.Redelivery:
        """Queue a task's webhook again."""
        return await self._send(api.redeliver(task_id))

    async def get_webhook_secret(self) -> m.WebhookSecret:
        """The account's webhook signing secret (and the previous one during a rotation)."""
        return await self._send(api.get_webhook_secret())

    async def rotate_webhook_secret(self, grace_seconds: int | None = None) -> m.WebhookSecret:
        """A new signing secret; deliveries also carry the old one's signature for ``grace_seconds``."""
        return await self._send(api.rotate_webhook_secret(grace_seconds))
