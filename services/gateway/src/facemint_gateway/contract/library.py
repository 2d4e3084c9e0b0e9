"""Face libraries, their persons and reference faces, and 1:1 compare.

Identifiers chosen by clients (``library_id``, ``person_id``) are 1-128 characters of letters, digits,
``_ - . :`` starting with a letter or digit, so that they are safe in URL paths.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from facemint_gateway.contract.base import (
    CROSS_FIELD,
    NOT_BLANK,
    MediaUrl,
    Metadata,
    Reply,
    ReplyModel,
    RequestModel,
    Timestamp,
)

NAME_MAX = 256
DESCRIPTION_MAX = 2048

ClientId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
        description="1-128 characters of letters, digits, '_', '-', '.' or ':', starting with a letter or digit",
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX), NOT_BLANK]
Description = Annotated[str, Field(min_length=1, max_length=DESCRIPTION_MAX), NOT_BLANK]


class CreateLibrary(RequestModel):
    """The body of ``POST /v1/library``."""

    library_id: ClientId
    name: Name | None = None
    description: Description | None = None

    examples = [{"library_id": "my-people-lib", "name": "Staff", "description": "Everyone with a badge"}]


class UpdateLibrary(RequestModel):
    """The body of ``PATCH /v1/library/{library_id}``: the fields given change (at least one)."""

    name: str = Field("", max_length=NAME_MAX)
    description: str = Field("", max_length=DESCRIPTION_MAX)

    examples = [{"description": "Everyone with a badge, from 2026"}]

    @model_validator(mode="after")
    def _something(self) -> UpdateLibrary:
        if not self.model_fields_set:
            raise PydanticCustomError(CROSS_FIELD, "nothing to change: give 'name' and/or 'description'")
        return self


class EnrollFace(RequestModel):
    """The body of ``POST /v1/library/{library_id}/face``: one reference image with exactly one clear face."""

    person_id: ClientId
    name: Name | None = Field(None, description="The person's display name (set on first enrolment or changed).")
    image_url: MediaUrl = Field(description="http(s) URL of the reference image.")
    metadata: Metadata | None = Field(None, description="A JSON object of up to 2 KB kept with the person.")

    examples = [
        {"person_id": "emp-0042", "name": "Ada Lovelace", "image_url": "https://facemint.io/ada.jpg",
         "metadata": {"team": "research"}}
    ]  # fmt: skip


class Compare(RequestModel):
    """The body of ``POST /v1/compare``: the largest face of each image is compared."""

    source_image_url: MediaUrl
    target_image_url: MediaUrl

    examples = [{"source_image_url": "https://facemint.io/a.jpg", "target_image_url": "https://facemint.io/b.jpg"}]


class Library(ReplyModel):
    """A face library."""

    library_id: str
    name: str
    description: str
    embedding_model: str | None = Field(description="The embedding model of its vectors (null while empty).")
    person_count: int
    face_count: int
    created_at: Timestamp

    examples = [
        {"library_id": "my-people-lib", "name": "Staff", "description": "Everyone with a badge",
         "embedding_model": "arcface-r100", "person_count": 12, "face_count": 31, "created_at": "2026-04-21T09:30:00Z"}
    ]  # fmt: skip


class LibraryReply(Reply, Library):
    """A library (created, read or updated)."""

    examples = [{"request_id": "req_7f2b1a4c8d", **Library.examples[0]}]


class LibraryList(Reply):
    """``GET /v1/libraries``."""

    libraries: list[Library]
    next_cursor: str | None

    examples = [{"request_id": "req_7f2b1a4c8d", "libraries": Library.examples, "next_cursor": None}]


class ReferenceFace(ReplyModel):
    """A reference face enrolled under a person."""

    face_id: str
    person_id: str
    bbox: list[int] = Field(min_length=4, max_length=4, description="[x, y, width, height] in pixels.")
    quality: float
    created_at: Timestamp

    examples = [
        {"face_id": "rf_01J9ZC8W3Q", "person_id": "emp-0042", "bbox": [120, 80, 210, 260], "quality": 0.81,
         "created_at": "2026-04-21T09:30:00Z"}
    ]  # fmt: skip


class ReferenceFaceReply(Reply, ReferenceFace):
    """``201`` of ``POST /v1/library/{library_id}/face``."""

    examples = [{"request_id": "req_7f2b1a4c8d", **ReferenceFace.examples[0]}]


class Person(ReplyModel):
    """A person of a library, as listed."""

    person_id: str
    name: str
    metadata: dict[str, Any] | None
    face_count: int
    created_at: Timestamp

    examples = [
        {"person_id": "emp-0042", "name": "Ada Lovelace", "metadata": {"team": "research"}, "face_count": 1,
         "created_at": "2026-04-21T09:30:00Z"}
    ]  # fmt: skip


class PersonWithFaces(Reply, Person):
    """``GET /v1/library/{library_id}/person/{person_id}``: a person and their reference faces."""

    faces: list[ReferenceFace]

    examples = [{"request_id": "req_7f2b1a4c8d", **Person.examples[0], "faces": ReferenceFace.examples}]


class PersonList(Reply):
    """``GET /v1/library/{library_id}/persons``."""

    persons: list[Person]
    next_cursor: str | None

    examples = [{"request_id": "req_7f2b1a4c8d", "persons": Person.examples, "next_cursor": None}]


class PersonFaces(Reply):
    """``GET /v1/library/{library_id}/person/{person_id}/faces``."""

    person_id: str
    faces: list[ReferenceFace]

    examples = [{"request_id": "req_7f2b1a4c8d", "person_id": "emp-0042", "faces": ReferenceFace.examples}]


class LibraryDeleted(Reply):
    """``DELETE /v1/library/{library_id}``."""

    library_id: str
    deleted: Literal[True]

    examples = [{"request_id": "req_7f2b1a4c8d", "library_id": "my-people-lib", "deleted": True}]


class PersonDeleted(Reply):
    """``DELETE /v1/library/{library_id}/person/{person_id}``."""

    person_id: str
    deleted: Literal[True]

    examples = [{"request_id": "req_7f2b1a4c8d", "person_id": "emp-0042", "deleted": True}]


class FaceDeleted(Reply):
    """``DELETE /v1/library/{library_id}/person/{person_id}/face/{face_id}``."""

    face_id: str
    deleted: Literal[True]

    examples = [{"request_id": "req_7f2b1a4c8d", "face_id": "rf_01J9ZC8W3Q", "deleted": True}]


class Comparison(Reply):
    """``POST /v1/compare``."""

    score: float = Field(description="Cosine similarity of the two faces, 3 decimals.")
    is_same_person: bool = Field(description="score >= threshold.")
    threshold: float

    examples = [{"request_id": "req_7f2b1a4c8d", "score": 0.734, "is_same_person": True, "threshold": 0.42}]
