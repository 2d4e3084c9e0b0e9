"""Signed uploads: ``POST /v1/uploads`` returns a presigned PUT URL and the ``media_url`` to use in a task.

For media that no URL can reach: the client PUTs the bytes straight to the object store (the gateway never
carries them), then submits the returned ``media_url`` (a presigned GET URL valid for ``media_url_ttl_seconds``).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import lru_cache
from urllib.parse import urlsplit

from minio import Minio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint_core.errors import InvalidRequest, ServiceUnavailable
from facemint_core.ids import new_id
from facemint_gateway.http import account_id, json_body, ok
from facemint_gateway.services import services
from facemint_gateway.settings import ObjectStoreSettings

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


def _presign(settings: ObjectStoreSettings, object_name: str) -> tuple[str, str]:
    client = _client(settings)
    if not client.bucket_exists(settings.bucket):
        client.make_bucket(settings.bucket)
    put = client.presigned_put_object(
        settings.bucket, object_name, expires=timedelta(seconds=settings.upload_url_ttl_seconds)
    )
    get = client.presigned_get_object(
        settings.bucket, object_name, expires=timedelta(seconds=settings.media_url_ttl_seconds)
    )
    return put, get


async def create_upload(request: Request) -> Response:
    """POST /v1/uploads {"type": "image"|"video"|"gif", "filename": "..."}."""
    svc = services(request)
    store = svc.settings.object_store
    if not store.endpoint:
        raise ServiceUnavailable("signed uploads are not configured on this deployment")
    body = await json_body(request, 4096)
    kind = body.get("type", "image")
    if not isinstance(kind, str) or kind not in CONTENT_TYPES:
        raise InvalidRequest("'type' must be one of video, image, gif")
    filename = body.get("filename", "")
    if not isinstance(filename, str) or len(filename) > 200:
        raise InvalidRequest("'filename' must be a string of at most 200 characters")
    upload_id = new_id("upl")
    object_name = f"{account_id(request)}/{upload_id}"
    try:
        put_url, media_url = await asyncio.to_thread(_presign, store, object_name)
    except Exception as exc:
        raise ServiceUnavailable(f"object store unavailable: {type(exc).__name__}") from None
    return ok(
        request,
        {
            "upload_id": upload_id,
            "type": kind,
            "upload_url": put_url,
            "method": "PUT",
            "expires_in": store.upload_url_ttl_seconds,
            "media_url": media_url,
        },
        status=201,
    )


def routes() -> list[BaseRoute]:
    """The upload route."""
    return [Route("/v1/uploads", create_upload, methods=["POST"])]
