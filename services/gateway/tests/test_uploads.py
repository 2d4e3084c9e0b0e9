"""Signed uploads against a real SeaweedFS: the store itself refuses an upload over its kind's size limit, and the
sweep deletes the uploads that nothing can use any more (issue #13 item 8)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import pytest
from minio import Minio
from minio.error import S3Error

from facemint_gateway.routes_uploads import sweep_uploads
from facemint_gateway.settings import ObjectStoreSettings
from facemint_local.servers import ObjectStore

if TYPE_CHECKING:
    from conftest import GatewayStack

pytestmark = [pytest.mark.integration]

IMAGE_LIMIT = 64 * 1024


def _minio(store: ObjectStore) -> Minio:
    return Minio(
        httpx.URL(store.endpoint).netloc.decode(), access_key=store.access_key, secret_key=store.secret_key,
        secure=False, region="us-east-1",
    )  # fmt: skip


def _exists(client: Minio, bucket: str, name: str) -> bool:
    try:
        client.stat_object(bucket, name)
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NoSuchObject"):
            return False
        raise
    return True


def test_an_upload_over_its_kinds_limit_is_refused_by_the_store(
    gateway_stack: GatewayStack, start_upload_gateway: Callable[..., str], object_store: ObjectStore
) -> None:
    url = start_upload_gateway(image_max_bytes=str(IMAGE_LIMIT))
    _, key, _ = gateway_stack.new_account()
    created = httpx.post(f"{url}/v1/uploads", json={"type": "image"}, headers={"x-api-key": key})
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["method"] == "POST" and upload["max_bytes"] == IMAGE_LIMIT
    name = upload["fields"]["key"]
    bucket = httpx.URL(upload["upload_url"]).path.strip("/")

    def post(size: int, **fields: str) -> httpx.Response:
        form = {**upload["fields"], **fields}
        return httpx.post(upload["upload_url"], data=form, files={"file": ("photo.jpg", b"x" * size)}, timeout=30)

    too_big = post(IMAGE_LIMIT + 1)
    assert too_big.status_code == 400 and "EntityTooLarge" in too_big.text
    assert not _exists(_minio(object_store), bucket, name)  # nothing of it stays in the store
    assert post(100, key=f"{name}-elsewhere").status_code == 403  # the policy binds the object name
    assert post(IMAGE_LIMIT).status_code == 204
    fetched = httpx.get(upload["media_url"])
    assert fetched.status_code == 200 and fetched.content == b"x" * IMAGE_LIMIT


def test_the_sweep_deletes_expired_and_oversized_uploads(object_store: ObjectStore) -> None:
    settings = ObjectStoreSettings(
        endpoint=object_store.endpoint, access_key=object_store.access_key, secret_key=object_store.secret_key,
        bucket=f"sweep-{uuid.uuid4().hex[:12]}", image_max_bytes=IMAGE_LIMIT,
    )  # fmt: skip
    client = _minio(object_store)
    client.make_bucket(settings.bucket)
    sizes = {
        "acct_a/image/upl_small": 10,
        "acct_a/image/upl_oversized": IMAGE_LIMIT + 1,  # e.g. PUT through a URL issued before limits existed
        "acct_a/video/upl_large": IMAGE_LIMIT + 1,  # within the video limit
        "acct_a/upl_legacy": 10,  # named before kinds were part of the name
    }
    for name, size in sizes.items():
        client.put_object(settings.bucket, name, io.BytesIO(b"x" * size), size)
    now = datetime.now(UTC)
    assert sweep_uploads(settings, now) == ["acct_a/image/upl_oversized"]
    assert not _exists(client, settings.bucket, "acct_a/image/upl_oversized")
    later = now + timedelta(seconds=settings.media_url_ttl_seconds + 60)  # every media URL has expired
    assert sorted(sweep_uploads(settings, later)) == sorted(set(sizes) - {"acct_a/image/upl_oversized"})
    assert list(client.list_objects(settings.bucket, recursive=True)) == []
