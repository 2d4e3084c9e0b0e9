from facemint.common.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Library(_message.Message):
    __slots__ = ("library_id", "account_id", "name", "description", "embedding_model_id", "created_at", "person_count", "face_count")
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PERSON_COUNT_FIELD_NUMBER: _ClassVar[int]
    FACE_COUNT_FIELD_NUMBER: _ClassVar[int]
    library_id: str
    account_id: str
    name: str
    description: str
    embedding_model_id: str
    created_at: str
    person_count: int
    face_count: int
    def __init__(self, library_id: _Optional[str] = ..., account_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., embedding_model_id: _Optional[str] = ..., created_at: _Optional[str] = ..., person_count: _Optional[int] = ..., face_count: _Optional[int] = ...) -> None: ...

class CreateLibraryRequest(_message.Message):
    __slots__ = ("account_id", "library_id", "name", "description")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    name: str
    description: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class GetLibraryRequest(_message.Message):
    __slots__ = ("account_id", "library_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ...) -> None: ...

class ListLibrariesRequest(_message.Message):
    __slots__ = ("account_id", "limit", "cursor")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    limit: int
    cursor: str
    def __init__(self, account_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListLibrariesResponse(_message.Message):
    __slots__ = ("libraries", "next_cursor")
    LIBRARIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    libraries: _containers.RepeatedCompositeFieldContainer[Library]
    next_cursor: str
    def __init__(self, libraries: _Optional[_Iterable[_Union[Library, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class UpdateLibraryRequest(_message.Message):
    __slots__ = ("account_id", "library_id", "name", "description")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    name: str
    description: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class DeleteLibraryRequest(_message.Message):
    __slots__ = ("account_id", "library_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ...) -> None: ...

class DeleteLibraryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EnrollFaceRequest(_message.Message):
    __slots__ = ("account_id", "library_id", "person_id", "name", "image_url", "metadata_json")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    person_id: str
    name: str
    image_url: str
    metadata_json: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ..., person_id: _Optional[str] = ..., name: _Optional[str] = ..., image_url: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class ReferenceFace(_message.Message):
    __slots__ = ("face_id", "person_id", "bbox", "quality", "created_at")
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    face_id: str
    person_id: str
    bbox: _common_pb2.BBox
    quality: float
    created_at: str
    def __init__(self, face_id: _Optional[str] = ..., person_id: _Optional[str] = ..., bbox: _Optional[_Union[_common_pb2.BBox, _Mapping]] = ..., quality: _Optional[float] = ..., created_at: _Optional[str] = ...) -> None: ...

class Person(_message.Message):
    __slots__ = ("person_id", "name", "metadata_json", "faces", "created_at")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    FACES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    name: str
    metadata_json: str
    faces: _containers.RepeatedCompositeFieldContainer[ReferenceFace]
    created_at: str
    def __init__(self, person_id: _Optional[str] = ..., name: _Optional[str] = ..., metadata_json: _Optional[str] = ..., faces: _Optional[_Iterable[_Union[ReferenceFace, _Mapping]]] = ..., created_at: _Optional[str] = ...) -> None: ...

class ListPersonsRequest(_message.Message):
    __slots__ = ("account_id", "library_id", "limit", "cursor")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    limit: int
    cursor: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class ListPersonsResponse(_message.Message):
    __slots__ = ("persons", "next_cursor")
    PERSONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    persons: _containers.RepeatedCompositeFieldContainer[Person]
    next_cursor: str
    def __init__(self, persons: _Optional[_Iterable[_Union[Person, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class GetPersonRequest(_message.Message):
    __slots__ = ("account_id", "library_id", "person_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    person_id: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ..., person_id: _Optional[str] = ...) -> None: ...

class DeletePersonRequest(_message.Message):
    __slots__ = ("account_id", "library_id", "person_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    person_id: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ..., person_id: _Optional[str] = ...) -> None: ...

class DeletePersonResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteFaceRequest(_message.Message):
    __slots__ = ("account_id", "library_id", "person_id", "face_id")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    FACE_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    person_id: str
    face_id: str
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ..., person_id: _Optional[str] = ..., face_id: _Optional[str] = ...) -> None: ...

class DeleteFaceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueryGroup(_message.Message):
    __slots__ = ("embeddings",)
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[_common_pb2.Embedding]
    def __init__(self, embeddings: _Optional[_Iterable[_Union[_common_pb2.Embedding, _Mapping]]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("account_id", "library_id", "groups", "top_k")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    LIBRARY_ID_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    library_id: str
    groups: _containers.RepeatedCompositeFieldContainer[QueryGroup]
    top_k: int
    def __init__(self, account_id: _Optional[str] = ..., library_id: _Optional[str] = ..., groups: _Optional[_Iterable[_Union[QueryGroup, _Mapping]]] = ..., top_k: _Optional[int] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("person_id", "name", "score")
    PERSON_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    person_id: str
    name: str
    score: float
    def __init__(self, person_id: _Optional[str] = ..., name: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class FaceMatches(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    def __init__(self, matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ...) -> None: ...

class GroupMatches(_message.Message):
    __slots__ = ("faces",)
    FACES_FIELD_NUMBER: _ClassVar[int]
    faces: _containers.RepeatedCompositeFieldContainer[FaceMatches]
    def __init__(self, faces: _Optional[_Iterable[_Union[FaceMatches, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[GroupMatches]
    def __init__(self, groups: _Optional[_Iterable[_Union[GroupMatches, _Mapping]]] = ...) -> None: ...

class CompareRequest(_message.Message):
    __slots__ = ("account_id", "source_image_url", "target_image_url")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    TARGET_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    source_image_url: str
    target_image_url: str
    def __init__(self, account_id: _Optional[str] = ..., source_image_url: _Optional[str] = ..., target_image_url: _Optional[str] = ...) -> None: ...

class CompareResponse(_message.Message):
    __slots__ = ("score", "is_same_person", "threshold")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    IS_SAME_PERSON_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    score: float
    is_same_person: bool
    threshold: float
    def __init__(self, score: _Optional[float] = ..., is_same_person: _Optional[bool] = ..., threshold: _Optional[float] = ...) -> None: ...
