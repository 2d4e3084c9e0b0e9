"""Signed uploads: ``POST /v1/uploads`` returns a presigned POST policy and the ``media_url`` to use in a task.

For media that no URL can reach: the client POSTs the bytes straight to the object store as an HTML form upload
(the returned ``fields``, then the file; the gateway never carries them), then submits the returned ``media_url``
(a presigned GET URL valid for ``media_url_ttl_seconds``). The policy binds the object key and a
``content-length-range`` of 1 byte to the kind's size limit (the API's media table), so the store itself refuses a
bigger upload; a presigned PUT cannot carry such a limit.

Objects are named ``<account>/<kind>/<upload_id>``. :func:`sweep_uploads`, run periodically by every gateway,
deletes the objects whose media URL has expired and any object beyond its kind's limit.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from minio import Minio
from minio.datatypes import PostPolicy
from minio.deleteobjects import DeleteObject
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint_core.errors import ServiceUnavailable
from facemint_core.ids import new_id
from facemint_gateway.contract.uploads import CreateUpload, UploadCreated
from facemint_gateway.http import account_id, created, read_body
from facemint_gateway.services import services
from facemint_gateway.settings import ObjectStoreSettings

log = logging.getLogger(__name__)

CONTENT_TYPES = {"image", "video", "gif"}


@lru_cache(maxsize=4)
def _client(settings: ObjectStoreSettings) -> Minio:
    parts = urlsplit(settings.endpoint)
    return Minio(
        parts.netloc,
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        secure=parts.scheme == "https",
        region=settings.region,
    )


def _presign(settings: ObjectStoreSettings, object_name: str, max_bytes: int) -> tuple[dict[str, str], str]:
    """The form fields of a POST upload of exactly ``object_name``, at most ``max_bytes``, and its media URL."""
    client = _client(settings)
    if not client.bucket_exists(settings.bucket):
        client.make_bucket(settings.bucket)
    policy = PostPolicy(settings.bucket, datetime.now(UTC) + timedelta(seconds=settings.upload_url_ttl_seconds))
    policy.add_equals_condition("key", object_name)
    policy.add_content_length_range_condition(1, max_bytes)
    fields = {"key": object_name, **client.presigned_post_policy(policy)}
    get = client.presigned_get_object(
        settings.bucket, object_name, expires=timedelta(seconds=settings.media_url_ttl_seconds)
    )
    return fields, get


def sweep_uploads(settings: ObjectStoreSettings, now: datetime) -> list[str]:
    """Delete the uploads that no task can use any more; returns their object names.

    Deleted: objects older than ``media_url_ttl_seconds`` (their media URL has expired, so nothing can fetch them),
    and objects larger than their kind's limit (from upload URLs issued before the limit was enforced, or a store
    that ignored the policy). Blocking: run it in a thread.
    """
    client = _client(settings)
    if not client.bucket_exists(settings.bucket):
        return []
    expired_before = now - timedelta(seconds=settings.media_url_ttl_seconds)
    largest = max(settings.max_bytes(kind) for kind in CONTENT_TYPES)
    doomed: list[str] = []
    for item in client.list_objects(settings.bucket, recursive=True):
        parts = (item.object_name or "").split("/")
        limit = settings.max_bytes(parts[1]) if len(parts) == 3 and parts[1] in CONTENT_TYPES else largest
        too_old = item.last_modified is not None and item.last_modified < expired_before
        if too_old or (item.size or 0) > limit:
            doomed.append(str(item.object_name))
    for error in client.remove_objects(settings.bucket, (DeleteObject(name) for name in doomed)):
        log.warning("upload sweep could not delete an object", extra={"object": error.name, "error": error.message})
    return doomed


async def sweep_forever(settings: ObjectStoreSettings) -> None:
    """Run :func:`sweep_uploads` every ``sweep_interval_seconds`` (every replica may: deletions are idempotent)."""
    while True:
        try:
            swept = await asyncio.to_thread(sweep_uploads, settings, datetime.now(UTC))
            if swept:
                log.info("expired or oversized uploads deleted", extra={"count": len(swept)})
        except Exception:
            log.warning("upload sweep failed; will retry", exc_info=True)
        await asyncio.sleep(settings.sweep_interval_seconds)


async def create_upload(request: Request) -> Response:
    """POST /v1/uploads {"type": "image"|"video"|"gif", "filename": "..."}."""
    svc = services(request)
    store = svc.settings.object_store
    if not store.endpoint:
        raise ServiceUnavailable("signed uploads are not configured on this deployment")
    kind = (await read_body(request, CreateUpload, 4096)).type
    upload_id = new_id("upl")
    object_name = f"{account_id(request)}/{kind}/{upload_id}"
    max_bytes = store.max_bytes(kind)
    try:
        fields, media_url = await asyncio.to_thread(_presign, store, object_name, max_bytes)
    except Exception as exc:
        raise ServiceUnavailable(f"object store unavailable: {type(exc).__name__}") from None
    return created(
        request,
        UploadCreated,
        {
            "upload_id": upload_id,
            "type": kind,
            "upload_url": f"{store.endpoint.rstrip('/')}/{store.bucket}",
            "method": "POST",
            "fields": fields,
            "max_bytes": max_bytes,
            "expires_in": store.upload_url_ttl_seconds,
            "media_url": media_url,
        },
        media_url,
    )


def routes() -> list[BaseRoute]:
    """The upload route."""
    return [Route("/v1/uploads", create_upload, methods=["POST"])]
