from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Attempt(_message.Message):
    __slots__ = ("number", "attempted_at", "status_code", "latency_seconds", "error")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    number: int
    attempted_at: str
    status_code: int
    latency_seconds: float
    error: str
    def __init__(self, number: _Optional[int] = ..., attempted_at: _Optional[str] = ..., status_code: _Optional[int] = ..., latency_seconds: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("delivery_id", "task_id", "event", "url", "state", "next_attempt_at", "attempts", "created_at", "redelivery_of", "max_attempts", "completed_at")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REDELIVERY_OF_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    task_id: str
    event: str
    url: str
    state: str
    next_attempt_at: str
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    created_at: str
    redelivery_of: str
    max_attempts: int
    completed_at: str
    def __init__(self, delivery_id: _Optional[str] = ..., task_id: _Optional[str] = ..., event: _Optional[str] = ..., url: _Optional[str] = ..., state: _Optional[str] = ..., next_attempt_at: _Optional[str] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., created_at: _Optional[str] = ..., redelivery_of: _Optional[str] = ..., max_attempts: _Optional[int] = ..., completed_at: _Optional[str] = ...) -> None: ...

class ListDeliveriesRequest(_message.Message):
    __slots__ = ("account_id", "task_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    task_id: str
    def __init__(self, account_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class ListDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class RedeliverRequest(_message.Message):
    __slots__ = ("account_id", "task_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    task_id: str
    def __init__(self, account_id: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class WebhookSecret(_message.Message):
    __slots__ = ("secret", "previous_secret", "previous_expires_at", "rotated_at")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    ROTATED_AT_FIELD_NUMBER: _ClassVar[int]
    secret: str
    previous_secret: str
    previous_expires_at: str
    rotated_at: str
    def __init__(self, secret: _Optional[str] = ..., previous_secret: _Optional[str] = ..., previous_expires_at: _Optional[str] = ..., rotated_at: _Optional[str] = ...) -> None: ...

class GetWebhookSecretRequest(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    def __init__(self, account_id: _Optional[str] = ...) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ("account_id", "grace_seconds")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    grace_seconds: int
    def __init__(self, account_id: _Optional[str] = ..., grace_seconds: _Optional[int] = ...) -> None: ...
