"""Tasks: ``POST /v1/create-detection-task``, ``GET /v1/task/{task_id}``, ``GET /v1/tasks``, cancel, and the
webhook that reports a finished task."""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from facemint.common.v1 import common_pb2
from facemint_core.vocab import ATTRIBUTES, MAX_SIDE, MEDIA_KINDS, TASK_STATUSES, TASK_TYPES
from facemint_gateway.contract.base import (
    CROSS_FIELD,
    NOT_BLANK,
    RULE,
    URL,
    MediaUrl,
    Metadata,
    Page,
    QueryModel,
    Reply,
    ReplyModel,
    RequestModel,
    Timestamp,
    encode_metadata,
)

TaskType = Literal["video", "image", "gif"]
TaskStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Attribute = Literal["age", "gender", "emotion", "pose", "glasses", "mask", "quality", "landmarks"]
assert get_args(TaskType) == TASK_TYPES and get_args(TaskStatus) == TASK_STATUSES and get_args(Attribute) == ATTRIBUTES

CALLBACK_URL_MAX = 2048
LIBRARY_ID_MAX = 128


class CreateDetectionTask(RequestModel):
    """The body of ``POST /v1/create-detection-task``."""

    type: TaskType = Field(description="The kind of media.")
    media_url: MediaUrl = Field(description="http(s) URL; presigned S3/GCS accepted.")
    start_time: float | None = Field(None, ge=0, description="Video only. Seconds from the start. Default 0.")
    end_time: float | None = Field(None, ge=0, description="Video only. Default: end of file.")
    sample_rate: int = Field(2, ge=1, le=30, description="Frames analysed per second of video.")
    min_face_size: int = Field(40, ge=1, le=MAX_SIDE, description="Smallest face side reported, in pixels.")
    confidence_threshold: float = Field(0.5, ge=0, le=1, description="Lowest detection confidence reported.")
    attributes: list[Attribute] | None = Field(None, description="Attributes to extract. Default none.")
    recognize: int = Field(
        0, ge=0, le=1, description="1: match every face against library_id.", json_schema_extra={"enum": [0, 1]}
    )
    library_id: Annotated[str, Field(min_length=1, max_length=LIBRARY_ID_MAX), NOT_BLANK] | None = Field(
        None, description="Required when recognize=1."
    )
    top_k: int = Field(1, ge=1, le=10, description="Matches per face when recognizing.")
    callback_url: (
        Annotated[str, Field(min_length=1, max_length=CALLBACK_URL_MAX, json_schema_extra={"format": "uri"}), URL]
        | None
    ) = Field(None, description="https URL for the signed webhook.")
    metadata: Metadata | None = Field(
        None, description="A JSON object of up to 2 KB (configurable), echoed back with the task."
    )

    examples = [
        {
            "type": "video",
            "media_url": "https://facemint.io/media.mp4",
            "start_time": 0,
            "end_time": 4,
            "sample_rate": 2,
            "min_face_size": 40,
            "attributes": ["age", "gender", "emotion", "pose", "landmarks"],
            "recognize": 1,
            "library_id": "my-people-lib",
            "callback_url": "https://your-site.example/cb?id=121233",
        }
    ]

    @model_validator(mode="after")
    def _between_fields(self) -> CreateDetectionTask:
        for name in ("start_time", "end_time"):
            if self.type != "video" and getattr(self, name) is not None:
                raise PydanticCustomError(CROSS_FIELD, "'{name}' applies to video tasks only", {"name": name})
        if self.start_time is not None and self.end_time is not None and self.end_time <= self.start_time:
            raise PydanticCustomError(CROSS_FIELD, "'end_time' must be greater than 'start_time'")
        if self.recognize and self.library_id is None:
            raise PydanticCustomError(CROSS_FIELD, "'library_id' is required when recognize=1")
        return self

    def task_spec(self) -> dict[str, Any]:
        """The keyword arguments of the internal ``TaskSpec``, defaults filled in, attributes in result order."""
        spec: dict[str, Any] = {
            "kind": MEDIA_KINDS[self.type],
            "media_url": self.media_url,
            "sample_rate": self.sample_rate,
            "min_face_size": self.min_face_size,
            "confidence_threshold": self.confidence_threshold,
            "attributes": [a for a in ATTRIBUTES if a in (self.attributes or ())],
            "recognize": self.recognize == 1,
            "library_id": self.library_id or "",
            "top_k": self.top_k,
            "callback_url": self.callback_url or "",
        }
        if self.start_time is not None:
            spec["start_time"] = self.start_time
        if self.end_time is not None:
            spec["end_time"] = self.end_time
        if self.metadata is not None:
            spec["metadata"] = common_pb2.JsonDocument(json=encode_metadata(self.metadata).encode())
        return spec


class TaskCreated(Reply):
    """``201`` of ``POST /v1/create-detection-task``."""

    task_id: str
    status: TaskStatus = Field(description="queued for a new task (a replayed creation shows the task's status).")
    created_at: Timestamp
    estimated_seconds: int = Field(description="Expected seconds to the result, from the media's size and queue.")

    examples = [
        {
            "request_id": "req_7f2b1a4c8d",
            "task_id": "task_0195e3ab6f4a7c2d",
            "status": "queued",
            "created_at": "2026-04-21T09:30:00Z",
            "estimated_seconds": 14,
        }
    ]


class Pose(ReplyModel):
    """Head pose in degrees."""

    yaw: float
    pitch: float
    roll: float


class FaceAttributes(ReplyModel):
    """The attributes the task asked for (an attribute that could not be read is left out)."""

    age: int | None = Field(None, ge=0, le=100)
    gender: Literal["male", "female"] | None = None
    emotion: Literal["neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful"] | None = None
    pose: Pose | None = None
    glasses: bool | None = None
    mask: bool | None = None
    quality: float | None = Field(None, ge=0, le=1)
    landmarks: list[Annotated[list[int], Field(min_length=2, max_length=2)]] | None = Field(
        None, min_length=106, max_length=106, description="106 points, [x, y] in integer pixels."
    )


class Match(ReplyModel):
    """A library person a face matches."""

    person_id: str
    name: str
    score: float = Field(description="Cosine similarity, 3 decimals.")


class Identity(ReplyModel):
    """The best matches of a face in the task's library, best first."""

    matches: list[Match]


class Face(ReplyModel):
    """One face of a frame."""

    face_id: str = Field(description="The face's track within the task (f_01, f_02, ...).")
    bbox: list[int] = Field(min_length=4, max_length=4, description="[x, y, width, height] in pixels.")
    confidence: float
    attributes: FaceAttributes
    identity: Identity | None = Field(description="null on every face when the task has recognize=0.")


class Frame(ReplyModel):
    """The faces found at one timestamp (0 for an image)."""

    timestamp: float = Field(description="Seconds from the start of the media (the same time base as duration).")
    faces: list[Face]


class FaceTrack(ReplyModel):
    """One face followed across frames."""

    track_id: str
    person_id: str | None = Field(description="The person most of its frames matched (recognize=1), else null.")
    appears_at: float
    disappears_at: float


class Summary(ReplyModel):
    """Counts over the whole task."""

    total_faces: int
    unique_identities: int


class TaskResult(ReplyModel):
    """A succeeded task's result."""

    frames: list[Frame]
    face_tracks: list[FaceTrack]
    summary: Summary
    metadata: dict[str, Any] | None = Field(None, description="The metadata sent at creation.")


class Media(ReplyModel):
    """The media and what the platform learnt about it (null until probed)."""

    url: str
    duration: float | None
    width: int | None
    height: int | None


class Progress(ReplyModel):
    """Frames analysed so far (while queued or running)."""

    frames_done: int
    frames_total: int


class TaskError(ReplyModel):
    """Why a task failed."""

    code: str
    message: str


class Task(ReplyModel):
    """A task as ``GET /v1/task/{task_id}`` shows it; also an item of ``GET /v1/tasks`` and the webhook's result."""

    task_id: str
    status: TaskStatus
    type: TaskType
    media: Media
    progress: Progress | None = Field(None, description="While queued or running (extension).")
    estimated_seconds: int | None = Field(None, description="While queued or running (extension).")
    result_summary: Summary | None = Field(
        None, description="Items of GET /v1/tasks without include=result: the result's summary instead of the result."
    )
    # The result is assembled by the task-orchestrator and stored as JSON; the gateway passes it on as it is.
    result: TaskResult | None = Field(None, description="When succeeded.")
    metadata: dict[str, Any] | None = Field(None, description="The metadata sent at creation (also in result).")
    created_at: Timestamp
    completed_at: Timestamp | None
    error: TaskError | None = Field(None, description="When failed.")

    @field_validator("result", mode="wrap")
    @classmethod
    def _result_as_stored(cls, value: Any, _: ValidatorFunctionWrapHandler) -> Any:
        return value  # not validated again: the stored JSON text (RawJSON) or its parsed form, passed on unchanged

    @field_serializer("result")
    def _result_unchanged(self, value: Any) -> Any:
        return value

    examples = [
        {
            "task_id": "task_0195e3ab6f4a7c2d",
            "status": "succeeded",
            "type": "image",
            "media": {"url": "https://facemint.io/photo.jpg", "duration": None, "width": 1280, "height": 853},
            "result": {
                "frames": [
                    {
                        "timestamp": 0,
                        "faces": [
                            {
                                "face_id": "f_01",
                                "bbox": [412, 188, 164, 201],
                                "confidence": 0.998,
                                "attributes": {"age": 34, "gender": "female", "emotion": "happy"},
                                "identity": None,
                            }
                        ],
                    }
                ],
                "face_tracks": [{"track_id": "t_1", "person_id": None, "appears_at": 0, "disappears_at": 0}],
                "summary": {"total_faces": 1, "unique_identities": 0},
            },
            "created_at": "2026-04-21T09:30:00Z",
            "completed_at": "2026-04-21T09:30:02Z",
        }
    ]


class TaskReply(Reply, Task):
    """``GET /v1/task/{task_id}``."""

    examples = [{"request_id": "req_7f2b1a4c8d", **Task.examples[0]}]


class TaskList(Reply):
    """``GET /v1/tasks``: a page, newest first."""

    tasks: list[Task]
    next_cursor: str | None = Field(description="Give it as cursor for the next page; null on the last page.")

    examples = [
        {
            "request_id": "req_7f2b1a4c8d",
            "tasks": [
                {
                    **{k: v for k, v in Task.examples[0].items() if k != "result"},
                    "result_summary": {"total_faces": 1, "unique_identities": 0},
                }
            ],
            "next_cursor": None,
        }
    ]


class CancelledTask(Reply):
    """``POST /v1/task/{task_id}/cancel``."""

    task_id: str
    status: Literal["cancelled"]

    examples = [{"request_id": "req_7f2b1a4c8d", "task_id": "task_0195e3ab6f4a7c2d", "status": "cancelled"}]


class TaskQuery(QueryModel):
    """The query of ``GET /v1/task/{task_id}``."""

    wait: float = Field(
        0,
        ge=0,
        description="Extension (long poll): hold the answer up to this many seconds (at most 30 by default: the "
        "deployment's max_task_wait_seconds) until the task is terminal; it returns as soon as the task succeeds, "
        "fails or is cancelled.",
        json_schema_extra={"maximum": 30},
    )

    @field_validator("wait")
    @classmethod
    def _at_most_the_deployments_limit(cls, value: float, info: ValidationInfo) -> float:
        limit = (info.context or {}).get("max_wait_seconds", 30.0)
        if value > limit:
            raise PydanticCustomError(RULE, "a number of seconds from 0 to {limit}", {"limit": f"{limit:g}"})
        return value


class TaskListQuery(Page):
    """The query of ``GET /v1/tasks``."""

    status: TaskStatus | None = Field(None, description="Filter by status.")
    type: TaskType | None = Field(None, description="Filter by type.")
    created_after: Timestamp | None = Field(None, description="Only tasks created after (ISO 8601).")
    include: Literal["result"] | None = Field(
        None, description="Extension: full results in the items; without it a succeeded item has result_summary."
    )


WebhookEventName = Literal["task.succeeded", "task.failed", "task.cancelled"]


class TaskEvent(ReplyModel):
    """The body of a webhook delivery: the task as ``GET /v1/task/{task_id}`` shows it, in ``result``."""

    event: WebhookEventName
    task_id: str
    status: Literal["succeeded", "failed", "cancelled"]
    result: Task

    examples = [
        {
            "event": "task.succeeded",
            "task_id": "task_0195e3ab6f4a7c2d",
            "status": "succeeded",
            "result": Task.examples[0],
        }
    ]
