from facemint.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MediaKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEDIA_KIND_UNSPECIFIED: _ClassVar[MediaKind]
    MEDIA_KIND_IMAGE: _ClassVar[MediaKind]
    MEDIA_KIND_VIDEO: _ClassVar[MediaKind]
    MEDIA_KIND_ANIMATED: _ClassVar[MediaKind]
MEDIA_KIND_UNSPECIFIED: MediaKind
MEDIA_KIND_IMAGE: MediaKind
MEDIA_KIND_VIDEO: MediaKind
MEDIA_KIND_ANIMATED: MediaKind

class AnalyzeMediaRequest(_message.Message):
    __slots__ = ("task_id", "media_url", "kind", "start_time", "end_time", "sample_rate", "options", "resume_from_index")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    RESUME_FROM_INDEX_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    media_url: str
    kind: MediaKind
    start_time: float
    end_time: float
    sample_rate: int
    options: _common_pb2.AnalyzeOptions
    resume_from_index: int
    def __init__(self, task_id: _Optional[str] = ..., media_url: _Optional[str] = ..., kind: _Optional[_Union[MediaKind, str]] = ..., start_time: _Optional[float] = ..., end_time: _Optional[float] = ..., sample_rate: _Optional[int] = ..., options: _Optional[_Union[_common_pb2.AnalyzeOptions, _Mapping]] = ..., resume_from_index: _Optional[int] = ...) -> None: ...

class MediaInfo(_message.Message):
    __slots__ = ("duration", "width", "height", "container", "expected_frames", "size_bytes")
    DURATION_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    duration: float
    width: int
    height: int
    container: str
    expected_frames: int
    size_bytes: int
    def __init__(self, duration: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., container: _Optional[str] = ..., expected_frames: _Optional[int] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class FrameResult(_message.Message):
    __slots__ = ("index", "timestamp", "faces")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    index: int
    timestamp: float
    faces: _containers.RepeatedCompositeFieldContainer[_common_pb2.Face]
    def __init__(self, index: _Optional[int] = ..., timestamp: _Optional[float] = ..., faces: _Optional[_Iterable[_Union[_common_pb2.Face, _Mapping]]] = ...) -> None: ...

class AnalyzeMediaResponse(_message.Message):
    __slots__ = ("media_info", "frame")
    MEDIA_INFO_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    media_info: MediaInfo
    frame: FrameResult
    def __init__(self, media_info: _Optional[_Union[MediaInfo, _Mapping]] = ..., frame: _Optional[_Union[FrameResult, _Mapping]] = ...) -> None: ...

class ProbeMediaRequest(_message.Message):
    __slots__ = ("media_url", "kind")
    MEDIA_URL_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    media_url: str
    kind: MediaKind
    def __init__(self, media_url: _Optional[str] = ..., kind: _Optional[_Union[MediaKind, str]] = ...) -> None: ...

class ProbeMediaResponse(_message.Message):
    __slots__ = ("media_info",)
    MEDIA_INFO_FIELD_NUMBER: _ClassVar[int]
    media_info: MediaInfo
    def __init__(self, media_info: _Optional[_Union[MediaInfo, _Mapping]] = ...) -> None: ...
