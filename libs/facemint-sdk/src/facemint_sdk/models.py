"""Typed shapes of the API's JSON (``TypedDict``), as the OpenAPI document describes them.

They are plain dictionaries at run time: a field the server adds later is kept and reachable by key, and a field
missing from an answer does not break parsing (every class is ``total=False`` but for the request bodies' required
fields). ``tests/test_models.py`` checks every field here against the committed OpenAPI document
(``libs/facemint-js/openapi.json``, refreshed by ``make sdk``) wherever the document declares the schema's fields.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

TaskType = Literal["video", "image", "gif"]
TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Attribute = Literal["age", "gender", "emotion", "pose", "glasses", "mask", "quality", "landmarks"]


class ErrorBody(TypedDict, total=False):
    """The error envelope's inner object (``{"error": {...}}``)."""

    code: str
    message: str
    request_id: str


class TaskError(TypedDict, total=False):
    """Why a task failed."""

    code: str
    message: str


class TaskCreated(TypedDict, total=False):
    """``201`` of ``POST /v1/create-detection-task``."""

    request_id: str
    task_id: str
    status: str
    created_at: str
    estimated_seconds: int


class Match(TypedDict, total=False):
    """One library match of a face."""

    person_id: str
    name: str
    score: float


class Identity(TypedDict, total=False):
    """A face's recognition result (``null`` when recognition is off)."""

    matches: list[Match]


class Pose(TypedDict, total=False):
    """Head pose in degrees."""

    yaw: float
    pitch: float
    roll: float


class FaceAttributes(TypedDict, total=False):
    """The attributes asked for in the task."""

    age: int
    gender: str
    emotion: str
    pose: Pose
    glasses: bool
    mask: bool
    quality: float
    landmarks: list[list[float]]


class Face(TypedDict, total=False):
    """One detected face of a frame."""

    face_id: str
    bbox: list[int]
    confidence: float
    attributes: FaceAttributes
    identity: Identity | None


class Frame(TypedDict, total=False):
    """The faces found at one timestamp (0 for an image)."""

    timestamp: float
    faces: list[Face]


class FaceTrack(TypedDict, total=False):
    """One face followed across frames."""

    track_id: str
    person_id: str | None
    appears_at: float
    disappears_at: float


class Summary(TypedDict, total=False):
    """Counts over the whole task."""

    total_faces: int
    unique_identities: int


class TaskResult(TypedDict, total=False):
    """A succeeded task's result."""

    frames: list[Frame]
    face_tracks: list[FaceTrack]
    summary: Summary


class Media(TypedDict, total=False):
    """What the platform learnt about the media."""

    url: str
    duration: float | None
    width: int | None
    height: int | None


class Progress(TypedDict, total=False):
    """Frames done so far while queued or running."""

    frames_done: int
    frames_total: int


class Task(TypedDict, total=False):
    """``GET /v1/task/{task_id}`` (and the items of ``GET /v1/tasks``)."""

    request_id: str
    task_id: str
    status: str
    type: str
    media: Media
    progress: Progress
    result: TaskResult
    metadata: dict[str, Any]
    created_at: str
    completed_at: str | None
    error: TaskError


class CancelledTask(TypedDict, total=False):
    """``POST /v1/task/{task_id}/cancel``."""

    request_id: str
    task_id: str
    status: str


class TaskPage(TypedDict, total=False):
    """``GET /v1/tasks``."""

    request_id: str
    tasks: list[Task]
    next_cursor: str | None


class UploadCreated(TypedDict, total=False):
    """``201`` of ``POST /v1/uploads``: POST ``fields`` plus the bytes (form field ``file``) to ``upload_url``."""

    request_id: str
    upload_id: str
    type: str
    upload_url: str
    method: str
    fields: dict[str, str]
    max_bytes: int
    expires_in: int
    media_url: str


class Library(TypedDict, total=False):
    """A face library."""

    request_id: str
    library_id: str
    name: str
    description: str
    embedding_model: str | None
    person_count: int
    face_count: int
    created_at: str


class LibraryPage(TypedDict, total=False):
    """``GET /v1/libraries``."""

    request_id: str
    libraries: list[Library]
    next_cursor: str | None


class ReferenceFace(TypedDict, total=False):
    """A reference face enrolled under a person (``201`` of ``POST /v1/library/{id}/face``)."""

    request_id: str
    face_id: str
    person_id: str
    bbox: list[int]
    quality: float
    created_at: str


class Person(TypedDict, total=False):
    """A person of a library, as listed."""

    request_id: str
    person_id: str
    name: str
    metadata: dict[str, Any] | None
    face_count: int
    created_at: str


class PersonWithFaces(Person, total=False):
    """``GET .../person/{person_id}``: a person and their reference faces."""

    faces: list[ReferenceFace]


class PersonPage(TypedDict, total=False):
    """``GET /v1/library/{id}/persons``."""

    request_id: str
    persons: list[Person]
    next_cursor: str | None


class PersonFaces(TypedDict, total=False):
    """``GET /v1/library/{id}/person/{person_id}/faces``."""

    request_id: str
    person_id: str
    faces: list[ReferenceFace]


class LibraryDeleted(TypedDict, total=False):
    """``DELETE /v1/library/{library_id}``."""

    request_id: str
    library_id: str
    deleted: bool


class PersonDeleted(TypedDict, total=False):
    """``DELETE .../person/{person_id}``."""

    request_id: str
    person_id: str
    deleted: bool


class FaceDeleted(TypedDict, total=False):
    """``DELETE .../face/{face_id}``."""

    request_id: str
    face_id: str
    deleted: bool


class Comparison(TypedDict, total=False):
    """``POST /v1/compare``: the largest face of each image."""

    request_id: str
    score: float
    is_same_person: bool
    threshold: float


class ApiKey(TypedDict, total=False):
    """An API key as listed: prefix and metadata, never the secret."""

    request_id: str
    key_id: str
    account_id: str
    prefix: str
    name: str
    status: str
    created_at: str
    last_used_at: str | None
    expires_at: str | None
    revoked_at: str | None
    replaced_by: str | None


class CreatedKey(ApiKey, total=False):
    """A new key: its secret ``key`` is in this answer only."""

    key: str


class RotatedKey(CreatedKey, total=False):
    """The replacement of a rotated key, and the old key (valid for the grace period) in ``previous``."""

    previous: ApiKey


class KeyList(TypedDict, total=False):
    """``GET /v1/keys``."""

    request_id: str
    keys: list[ApiKey]


class Usage(TypedDict, total=False):
    """``GET /v1/usage``: plan, limits and consumption."""

    request_id: str
    account: dict[str, Any]
    limits: dict[str, Any]
    period: dict[str, str]
    minutes: dict[str, Any]
    tasks_billed: int
    concurrent_tasks: dict[str, Any]
    requests: dict[str, Any]


class DeliveryAttempt(TypedDict, total=False):
    """One HTTP attempt of a webhook delivery."""

    number: int
    attempted_at: str
    status_code: int | None
    latency_seconds: float | None
    error: str | None


class Delivery(TypedDict, total=False):
    """A webhook delivery of a task and its attempts."""

    delivery_id: str
    event: str
    url: str
    state: str
    redelivery_of: str | None
    max_attempts: int
    next_attempt_at: str | None
    created_at: str
    completed_at: str | None
    attempts: list[DeliveryAttempt]


class Deliveries(TypedDict, total=False):
    """``GET /v1/task/{task_id}/deliveries``."""

    request_id: str
    task_id: str
    deliveries: list[Delivery]


class Redelivery(TypedDict, total=False):
    """``202`` of ``POST /v1/task/{task_id}/redeliver``."""

    request_id: str
    task_id: str
    delivery: Delivery


class WebhookSecret(TypedDict, total=False):
    """``GET /v1/webhook-secret``: the signing secret and, during a rotation, the one before it."""

    request_id: str
    webhook_secret: str
    previous_webhook_secret: str | None
    previous_expires_at: str | None
    rotated_at: str | None


class WebhookEvent(TypedDict, total=False):
    """The body of a webhook delivery: the task as ``GET /v1/task/{id}`` would return it, in ``result``."""

    event: str
    task_id: str
    status: str
    result: Task


RESPONSES: dict[tuple[str, str], type] = {
    ("post", "/v1/create-detection-task"): TaskCreated,
    ("get", "/v1/task/{task_id}"): Task,
    ("get", "/v1/tasks"): TaskPage,
    ("post", "/v1/task/{task_id}/cancel"): CancelledTask,
    ("post", "/v1/uploads"): UploadCreated,
    ("post", "/v1/library"): Library,
    ("get", "/v1/libraries"): LibraryPage,
    ("get", "/v1/library/{library_id}"): Library,
    ("patch", "/v1/library/{library_id}"): Library,
    ("delete", "/v1/library/{library_id}"): LibraryDeleted,
    ("post", "/v1/library/{library_id}/face"): ReferenceFace,
    ("get", "/v1/library/{library_id}/persons"): PersonPage,
    ("get", "/v1/library/{library_id}/person/{person_id}"): PersonWithFaces,
    ("delete", "/v1/library/{library_id}/person/{person_id}"): PersonDeleted,
    ("get", "/v1/library/{library_id}/person/{person_id}/faces"): PersonFaces,
    ("delete", "/v1/library/{library_id}/person/{person_id}/face/{face_id}"): FaceDeleted,
    ("post", "/v1/compare"): Comparison,
    ("get", "/v1/keys"): KeyList,
    ("post", "/v1/keys"): CreatedKey,
    ("post", "/v1/keys/{key_id}/rotate"): RotatedKey,
    ("post", "/v1/keys/{key_id}/revoke"): ApiKey,
    ("get", "/v1/usage"): Usage,
    ("get", "/v1/task/{task_id}/deliveries"): Deliveries,
    ("post", "/v1/task/{task_id}/redeliver"): Redelivery,
    ("get", "/v1/webhook-secret"): WebhookSecret,
    ("post", "/v1/webhook-secret/rotate"): WebhookSecret,
}
"""The model of each operation's success answer (method, path): the SDK covers these operations, and
``tests/test_models.py`` checks each model against the document."""
