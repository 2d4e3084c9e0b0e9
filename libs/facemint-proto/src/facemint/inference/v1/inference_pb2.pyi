from facemint.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PixelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PIXEL_FORMAT_UNSPECIFIED: _ClassVar[PixelFormat]
    PIXEL_FORMAT_BGR24: _ClassVar[PixelFormat]
    PIXEL_FORMAT_ENCODED: _ClassVar[PixelFormat]
PIXEL_FORMAT_UNSPECIFIED: PixelFormat
PIXEL_FORMAT_BGR24: PixelFormat
PIXEL_FORMAT_ENCODED: PixelFormat

class Frame(_message.Message):
    __slots__ = ("data", "format", "width", "height", "timestamp", "index")
    DATA_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    format: PixelFormat
    width: int
    height: int
    timestamp: float
    index: int
    def __init__(self, data: _Optional[bytes] = ..., format: _Optional[_Union[PixelFormat, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., timestamp: _Optional[float] = ..., index: _Optional[int] = ...) -> None: ...

class AnalyzeFramesRequest(_message.Message):
    __slots__ = ("frames", "options")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[Frame]
    options: _common_pb2.AnalyzeOptions
    def __init__(self, frames: _Optional[_Iterable[_Union[Frame, _Mapping]]] = ..., options: _Optional[_Union[_common_pb2.AnalyzeOptions, _Mapping]] = ...) -> None: ...

class FrameFaces(_message.Message):
    __slots__ = ("index", "timestamp", "faces")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    index: int
    timestamp: float
    faces: _containers.RepeatedCompositeFieldContainer[_common_pb2.Face]
    def __init__(self, index: _Optional[int] = ..., timestamp: _Optional[float] = ..., faces: _Optional[_Iterable[_Union[_common_pb2.Face, _Mapping]]] = ...) -> None: ...

class AnalyzeFramesResponse(_message.Message):
    __slots__ = ("frames",)
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    frames: _containers.RepeatedCompositeFieldContainer[FrameFaces]
    def __init__(self, frames: _Optional[_Iterable[_Union[FrameFaces, _Mapping]]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "role", "version", "license")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LICENSE_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    version: str
    license: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., version: _Optional[str] = ..., license: _Optional[str] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("pack", "runner", "embedding_model_id", "embedding_model_version", "embedding_dim", "models")
    PACK_FIELD_NUMBER: _ClassVar[int]
    RUNNER_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_DIM_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    pack: str
    runner: str
    embedding_model_id: str
    embedding_model_version: str
    embedding_dim: int
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, pack: _Optional[str] = ..., runner: _Optional[str] = ..., embedding_model_id: _Optional[str] = ..., embedding_model_version: _Optional[str] = ..., embedding_dim: _Optional[int] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
