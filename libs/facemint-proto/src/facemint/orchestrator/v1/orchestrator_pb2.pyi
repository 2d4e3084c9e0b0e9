from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskSpec(_message.Message):
    __slots__ = ("type", "media_url", "start_time", "end_time", "sample_rate", "min_face_size", "confidence_threshold", "attributes", "recognize", "library_id", "top_k", "callback_url", "metadata_json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    MIN_FACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    RECOGNIZE_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    media_url: str
    start_time: float
    end_time: float
    sample_rate: int
    min_face_size: int
    confidence_threshold: float
    attributes: _containers.RepeatedScalarFieldContainer[str]
    recognize: bool
    library_id: str
    top_k: int
    callback_url: str
    metadata_json: str
    def __init__(self, type: _Optional[str] = ..., media_url: _Optional[str] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., sample_rate: _Optional[int] = ..., min_face_size: _Optional[int] = ..., confidence_threshold: _Optional[float] = ..., attributes: _Optional[_Iterable[str]] = ..., recognize: _Optional[bool] = ..., library_id: _Optional[str] = ..., top_k: _Optional[int] = ..., callback_url: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class CreateTaskRequest(_message.Message):
    __slots__ = ("account_id", "request_id", "spec", "creation_id", "limits")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATION_ID_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    request_id: str
    spec: TaskSpec
    creation_id: str
    limits: TaskLimits
    def __init__(self, account_id: _Optional[str] = ..., request_id: _Optional[str] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., creation_id: _Optional[str] = ..., limits: _Optional[_Union[TaskLimits, _Mapping]] = ...) -> None: ...

class TaskLimits(_message.Message):
    __slots__ = ("concurrent_tasks", "monthly_minutes", "plan", "retry_after_seconds")
    CONCURRENT_TASKS_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_MINUTES_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    concurrent_tasks: int
    monthly_minutes: int
    plan: str
    retry_after_seconds: int
    def __init__(self, concurrent_tasks: _Optional[int] = ..., monthly_minutes: _Optional[int] = ..., plan: _Optional[str] = ..., retry_after_seconds: _Optional[int] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("active_tasks", "seconds_used", "tasks_billed")
    ACTIVE_TASKS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_USED_FIELD_NUMBER: _ClassVar[int]
    TASKS_BILLED_FIELD_NUMBER: _ClassVar[int]
    active_tasks: int
    seconds_used: float
    tasks_billed: int
    def __init__(self, active_tasks: _Optional[int] = ..., seconds_used: _Optional[float] = ..., tasks_billed: _Optional[int] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("task_id", "account_id", "status", "spec", "created_at", "started_at", "completed_at", "estimated_seconds", "media_json", "result_json", "error_code", "error_message", "frames_done", "frames_total", "attempts")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_JSON_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DONE_FIELD_NUMBER: _ClassVar[int]
    FRAMES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    account_id: str
    status: str
    spec: TaskSpec
    created_at: str
    started_at: str
    completed_at: str
    estimated_seconds: int
    media_json: str
    result_json: str
    error_code: str
    error_message: str
    frames_done: int
    frames_total: int
    attempts: int
    def __init__(self, task_id: _Optional[str] = ..., account_id: _Optional[str] = ..., status: _Optional[str] = ..., spec: _Optional[_Union[TaskSpec, _Mapping]] = ..., created_at: _Optional[str] = ..., started_at: _Optional[str] = ..., completed_at: _Optional[str] = ..., estimated_seconds: _Optional[int] = ..., media_json: _Optional[str] = ..., result_json: _Optional[str] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ..., frames_done: _Optional[int] = ..., frames_total: _Optional[int] = ..., attempts: _Optional[int] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("account_id", "task_id", "wait_seconds")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    task_id: str
    wait_seconds: float
    def __init__(self, account_id: _Optional[str] = ..., task_id: _Optional[str] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("account_id", "status", "type", "created_after", "limit", "cursor")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    status: str
    type: str
    created_after: str
    limit: int
    cursor: str
    def __init__(self, account_id: _Optional[str] = ..., status: _Optional[str] = ..., type: _Optional[str] = ..., created_after: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_cursor")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    next_cursor: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("account_id", "task_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    task_id: str
    def __init__(self, account_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("event", "task_id", "account_id", "status", "callback_url", "task_json", "occurred_at")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_URL_FIELD_NUMBER: _ClassVar[int]
    TASK_JSON_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    event: str
    task_id: str
    account_id: str
    status: str
    callback_url: str
    task_json: str
    occurred_at: str
    def __init__(self, event: _Optional[str] = ..., task_id: _Optional[str] = ..., account_id: _Optional[str] = ..., status: _Optional[str] = ..., callback_url: _Optional[str] = ..., task_json: _Optional[str] = ..., occurred_at: _Optional[str] = ...) -> None: ...

class TaskJob(_message.Message):
    __slots__ = ("task_id", "account_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    account_id: str
    def __init__(self, task_id: _Optional[str] = ..., account_id: _Optional[str] = ...) -> None: ...
