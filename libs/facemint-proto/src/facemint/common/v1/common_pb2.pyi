from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BBox(_message.Message):
    __slots__ = ("x", "y", "width", "height")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    width: float
    height: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., width: _Optional[float] = ..., height: _Optional[float] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Pose(_message.Message):
    __slots__ = ("yaw", "pitch", "roll")
    YAW_FIELD_NUMBER: _ClassVar[int]
    PITCH_FIELD_NUMBER: _ClassVar[int]
    ROLL_FIELD_NUMBER: _ClassVar[int]
    yaw: float
    pitch: float
    roll: float
    def __init__(self, yaw: _Optional[float] = ..., pitch: _Optional[float] = ..., roll: _Optional[float] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values", "model_id", "model_version", "raw_norm")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RAW_NORM_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    model_id: str
    model_version: str
    raw_norm: float
    def __init__(self, values: _Optional[_Iterable[float]] = ..., model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., raw_norm: _Optional[float] = ...) -> None: ...

class Attributes(_message.Message):
    __slots__ = ("age", "gender", "emotion", "pose", "glasses", "mask", "quality", "landmarks")
    AGE_FIELD_NUMBER: _ClassVar[int]
    GENDER_FIELD_NUMBER: _ClassVar[int]
    EMOTION_FIELD_NUMBER: _ClassVar[int]
    POSE_FIELD_NUMBER: _ClassVar[int]
    GLASSES_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    LANDMARKS_FIELD_NUMBER: _ClassVar[int]
    age: int
    gender: str
    emotion: str
    pose: Pose
    glasses: bool
    mask: bool
    quality: float
    landmarks: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, age: _Optional[int] = ..., gender: _Optional[str] = ..., emotion: _Optional[str] = ..., pose: _Optional[_Union[Pose, _Mapping]] = ..., glasses: _Optional[bool] = ..., mask: _Optional[bool] = ..., quality: _Optional[float] = ..., landmarks: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class Face(_message.Message):
    __slots__ = ("bbox", "confidence", "keypoints", "attributes", "embedding")
    BBOX_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    KEYPOINTS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    bbox: BBox
    confidence: float
    keypoints: _containers.RepeatedCompositeFieldContainer[Point]
    attributes: Attributes
    embedding: Embedding
    def __init__(self, bbox: _Optional[_Union[BBox, _Mapping]] = ..., confidence: _Optional[float] = ..., keypoints: _Optional[_Iterable[_Union[Point, _Mapping]]] = ..., attributes: _Optional[_Union[Attributes, _Mapping]] = ..., embedding: _Optional[_Union[Embedding, _Mapping]] = ...) -> None: ...

class AnalyzeOptions(_message.Message):
    __slots__ = ("min_face_size", "confidence_threshold", "attributes", "want_embeddings")
    MIN_FACE_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    WANT_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    min_face_size: int
    confidence_threshold: float
    attributes: _containers.RepeatedScalarFieldContainer[str]
    want_embeddings: bool
    def __init__(self, min_face_size: _Optional[int] = ..., confidence_threshold: _Optional[float] = ..., attributes: _Optional[_Iterable[str]] = ..., want_embeddings: _Optional[bool] = ...) -> None: ...
