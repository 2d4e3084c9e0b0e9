"""Signed uploads: ``POST /v1/uploads``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from facemint_gateway.contract.base import Reply, RequestModel
from facemint_gateway.contract.tasks import TaskType


class CreateUpload(RequestModel):
    """The body of ``POST /v1/uploads``."""

    type: TaskType = Field("image", description="The kind of media to be uploaded (sets the size limit).")
    filename: str = Field("", max_length=200, description="For your reference; not used in the object's name.")

    examples = [{"type": "video", "filename": "lobby.mp4"}]


class UploadCreated(Reply):
    """``201`` of ``POST /v1/uploads``: POST ``fields`` plus the bytes (form field ``file``) to ``upload_url``,
    then create a task with ``media_url``."""

    upload_id: str
    type: TaskType
    upload_url: str
    method: Literal["POST"]
    fields: dict[str, str] = Field(description="Form fields of the presigned POST policy, sent before the file.")
    max_bytes: int
    expires_in: int = Field(description="Seconds the upload URL stays valid.")
    media_url: str = Field(description="Presigned GET URL of the object, for media_url of a task.")

    examples = [
        {"request_id": "req_7f2b1a4c8d", "upload_id": "upl_01J9ZC8W3Q", "type": "video",
         "upload_url": "https://s3.example.com/facemint-uploads", "method": "POST",
         "fields": {"key": "acct_01J9ZC7K2M/video/upl_01J9ZC8W3Q", "policy": "eyJl...", "x-amz-signature": "9f2c..."},
         "max_bytes": 2147483648, "expires_in": 900,
         "media_url": "https://s3.example.com/facemint-uploads/acct_01J9ZC7K2M/video/upl_01J9ZC8W3Q?X-Amz-Signature=..."}
    ]  # fmt: skip
