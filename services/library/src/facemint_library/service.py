"""The gRPC ``LibraryService``: libraries, persons and reference faces, 1:N search and 1:1 compare.

Representation of a person: every reference face is kept as its own vector (a *template*) and the person also has
one *centroid* vector, the re-normalised mean of its templates, rewritten whenever a face is added or deleted. A
query face's cosine to a person is the maximum over the person's templates and centroid, so one good reference is
enough to match, and several references of varied pose and light pull the centroid towards the person's identity.
That cosine is mapped to the API's score by the model's calibration (:mod:`facemint_library.calibration`); a person
is a match at 0.70, or below it when the model's margin rule accepts a face's best person
(:mod:`facemint_library.identification`).

Consistency: metadata lives in PostgreSQL, vectors in the vector store. Writes to the store happen inside the
database transaction that changes the metadata (vectors first, then commit), so a failed write leaves the metadata
unchanged; search results are resolved against the database, so a vector whose metadata is gone never surfaces.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
import grpc
import numpy as np
import numpy.typing as npt

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2, library_pb2_grpc
from facemint_core.errors import Conflict, InternalError, InvalidRequest, NoFacesDetected
from facemint_core.ids import new_id
from facemint_core.timeutil import iso
from facemint_core.tracing import span
from facemint_library import repository as repo
from facemint_library.assignment import rank_matches
from facemint_library.calibration import DECISION_THRESHOLD, Calibrations
from facemint_library.identification import eligible
from facemint_library.media import MediaAnalyzer
from facemint_library.metrics import ENROL_TOTAL, SEARCH_FACES, SEARCH_SECONDS, VECTORS
from facemint_library.settings import LibrarySettings
from facemint_library.store import Scope, Space, VectorPoint, VectorStore

log = logging.getLogger(__name__)

MAX_TOP_K = 10
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 2048
MAX_URL_LENGTH = 8192
LIST_DEFAULT, LIST_MAX = 20, 100


def normalise(values: Iterable[float]) -> tuple[npt.NDArray[np.float32], float]:
    """The L2-normalised vector and the norm it had; InvalidRequest for an empty or zero vector."""
    vec = np.asarray(list(values), dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    if vec.size == 0 or not np.isfinite(norm) or norm == 0.0:
        raise InvalidRequest("an embedding must be a non-zero vector of finite numbers")
    return vec / norm, norm


def centroid(embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The normalised mean of normalised embeddings (rows)."""
    return normalise(embeddings.mean(axis=0))[0]


def _area(face: common_pb2.Face) -> float:
    return float(face.bbox.width) * float(face.bbox.height)


def choose_reference_face(faces: list[common_pb2.Face], min_face_size: int, min_quality: float) -> common_pb2.Face:
    """The one clear face of a reference image.

    Faces whose shorter side is under ``min_face_size`` (people in the background) are not counted; exactly one
    face must remain, with a quality (when the analysis reports one) of at least ``min_quality``.

    Raises:
        NoFacesDetected: no face at all.
        InvalidRequest: several faces, a face too small, or too poor a face.
    """
    if not faces:
        raise NoFacesDetected("no face was found in image_url: a reference image must show exactly one clear face")
    large = [f for f in faces if min(f.bbox.width, f.bbox.height) >= min_face_size]
    if len(large) > 1:
        raise InvalidRequest(f"image_url shows {len(large)} faces: a reference image must show exactly one clear face")
    if not large:
        biggest = max(faces, key=_area)
        side = min(biggest.bbox.width, biggest.bbox.height)
        raise InvalidRequest(
            f"the face in image_url is too small ({side:.0f} px): a reference face needs at least {min_face_size} px"
        )
    face = large[0]
    if face.attributes.HasField("quality") and face.attributes.quality < min_quality:
        raise InvalidRequest(
            f"the face in image_url is of too poor quality ({face.attributes.quality:.2f}, minimum "
            f"{min_quality:.2f}): use a sharp, well-lit, frontal photo"
        )
    if not face.embedding.values:
        raise InternalError("the analysis returned a face without an embedding")
    return face


def _require_id(value: str, name: str) -> str:
    if not value or not value.strip():
        raise InvalidRequest(f"'{name}' is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"'{name}' must be at most {MAX_ID_LENGTH} characters")
    return value


def _require_url(value: str, name: str) -> str:
    if not value.strip():
        raise InvalidRequest(f"'{name}' is required")
    if len(value) > MAX_URL_LENGTH:
        raise InvalidRequest(f"'{name}' must be at most {MAX_URL_LENGTH} characters")
    return value


def _check_text(value: str, name: str) -> str:
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidRequest(f"'{name}' must be at most {MAX_TEXT_LENGTH} characters")
    return value


def _check_metadata(metadata_json: str) -> None:
    if not metadata_json:
        return
    try:
        value = json.loads(metadata_json)
    except ValueError:
        raise InvalidRequest("'metadata' must be a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidRequest("'metadata' must be a JSON object")


def _limit(value: int) -> int:
    if value == 0:
        return LIST_DEFAULT
    if not 1 <= value <= LIST_MAX:
        raise InvalidRequest(f"'limit' must be an integer from 1 to {LIST_MAX}")
    return value


def _space(row: repo.LibraryRow) -> Space:
    return Space(row.embedding_model_id, row.embedding_model_version, row.embedding_dim)


def _model_name(model_id: str, version: str) -> str:
    return f"{model_id}/{version}" if version else model_id


def _library_pb(row: repo.LibraryRow) -> library_pb2.Library:
    return library_pb2.Library(
        library_id=row.library_id,
        account_id=row.account_id,
        name=row.name,
        description=row.description,
        embedding_model_id=row.embedding_model_id,
        created_at=iso(row.created_at),
        person_count=row.person_count,
        face_count=row.face_count,
    )


def _face_pb(face: repo.FaceRow) -> library_pb2.ReferenceFace:
    x, y, w, h = face.bbox
    return library_pb2.ReferenceFace(
        face_id=face.face_id,
        person_id=face.person_id,
        bbox=common_pb2.BBox(x=x, y=y, width=w, height=h),
        quality=face.quality,
        created_at=iso(face.created_at),
    )


def _person_pb(person: repo.PersonRow) -> library_pb2.Person:
    return library_pb2.Person(
        person_id=person.person_id,
        name=person.name,
        metadata_json=person.metadata_json,
        faces=[_face_pb(f) for f in person.faces],
        created_at=iso(person.created_at),
    )


class LibraryService(library_pb2_grpc.LibraryServiceServicer):  # type: ignore[misc]
    """Implements every RPC of ``facemint.library.v1.LibraryService``."""

    def __init__(
        self,
        settings: LibrarySettings,
        pool: asyncpg.Pool,
        store: VectorStore,
        analyzer: MediaAnalyzer,
        calibrations: Calibrations,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.store = store
        self.analyzer = analyzer
        self.calibrations = calibrations

    async def refresh_vector_gauge(self) -> None:
        """Set the vectors gauge from the store."""
        VECTORS.set(await self.store.total())

    # ---- libraries -------------------------------------------------------------------------------------------

    async def CreateLibrary(  # noqa: N802 - gRPC method name
        self, request: library_pb2.CreateLibraryRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.Library:
        """Create a library owned by the calling account."""
        library_id = _require_id(request.library_id, "library_id")
        async with self.pool.acquire() as conn:
            row = await repo.create_library(
                conn,
                _require_id(request.account_id, "account_id"),
                library_id,
                _check_text(request.name, "name"),
                _check_text(request.description, "description"),
            )
        return _library_pb(row)

    async def GetLibrary(  # noqa: N802
        self, request: library_pb2.GetLibraryRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.Library:
        """One library of the account."""
        async with self.pool.acquire() as conn:
            return _library_pb(await repo.get_library(conn, request.account_id, request.library_id))

    async def ListLibraries(  # noqa: N802
        self, request: library_pb2.ListLibrariesRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ListLibrariesResponse:
        """The account's libraries, by id, one keyset page at a time."""
        limit = _limit(request.limit)
        async with self.pool.acquire() as conn:
            rows = await repo.list_libraries(conn, request.account_id, limit + 1, repo.decode_cursor(request.cursor))
        more = len(rows) > limit
        rows = rows[:limit]
        return library_pb2.ListLibrariesResponse(
            libraries=[_library_pb(r) for r in rows],
            next_cursor=repo.encode_cursor(rows[-1].library_id) if more else "",
        )

    async def UpdateLibrary(  # noqa: N802
        self, request: library_pb2.UpdateLibraryRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.Library:
        """Change the name and/or description."""
        name = _check_text(request.name, "name") if request.HasField("name") else None
        description = _check_text(request.description, "description") if request.HasField("description") else None
        async with self.pool.acquire() as conn, conn.transaction():
            lib = await repo.get_library(conn, request.account_id, request.library_id, for_update=True)
            await repo.update_library(conn, lib, name, description)
            row = await repo.get_library(conn, request.account_id, request.library_id)
        return _library_pb(row)

    async def DeleteLibrary(  # noqa: N802
        self, request: library_pb2.DeleteLibraryRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.DeleteLibraryResponse:
        """Delete a library, its persons, faces and every vector."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.get_library(conn, request.account_id, request.library_id, for_update=True)
            if row.bound:
                await self.store.delete_scope(_space(row), Scope(row.account_id, str(row.library_uid)))
            await repo.delete_library(conn, row)
        await self.refresh_vector_gauge()
        return library_pb2.DeleteLibraryResponse()

    # ---- persons and faces -----------------------------------------------------------------------------------

    async def EnrollFace(  # noqa: N802
        self, request: library_pb2.EnrollFaceRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ReferenceFace:
        """Analyse a reference image through the media-decoder and add its face to a person."""
        person_id = _require_id(request.person_id, "person_id")
        image_url = _require_url(request.image_url, "image_url")
        name = _check_text(request.name, "name")
        _check_metadata(request.metadata_json)
        async with self.pool.acquire() as conn:  # ownership first: a foreign caller must not trigger a fetch
            await repo.get_library(conn, request.account_id, request.library_id)
        try:
            faces = await self.analyzer.image_faces(
                image_url, self.settings.detect_min_face_size, context.time_remaining()
            )
            enrol = self.settings.enrol
            face = choose_reference_face(faces, enrol.min_face_size, enrol.min_quality)
        except NoFacesDetected:
            ENROL_TOTAL.labels("no_face").inc()
            raise
        except InvalidRequest:
            ENROL_TOTAL.labels("rejected").inc()
            raise
        embedding = face.embedding
        self.calibrations.get(embedding.model_id)  # a model without calibration could never be matched
        vector, norm = normalise(embedding.values)
        quality = face.attributes.quality if face.attributes.HasField("quality") else 0.0
        bbox = (face.bbox.x, face.bbox.y, face.bbox.width, face.bbox.height)
        face_row = await self._add_face(
            request.account_id,
            request.library_id,
            person_id,
            name,
            request.metadata_json,
            embedding,
            vector,
            embedding.raw_norm or norm,
            bbox,
            quality,
        )
        ENROL_TOTAL.labels("enrolled").inc()
        await self.refresh_vector_gauge()
        return _face_pb(face_row)

    async def _add_face(
        self,
        account_id: str,
        library_id: str,
        person_id: str,
        name: str,
        metadata_json: str,
        embedding: common_pb2.Embedding,
        vector: npt.NDArray[np.float32],
        raw_norm: float,
        bbox: tuple[float, float, float, float],
        quality: float,
    ) -> repo.FaceRow:
        """Store a face and its vectors in one transaction, binding the library to the model on its first face."""
        model = _model_name(embedding.model_id, embedding.model_version)
        point_id = uuid.uuid4()
        upserted = False
        space: Space | None = None
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                lib = await repo.get_library(conn, account_id, library_id, for_update=True)
                if not lib.bound:
                    await repo.bind_model(conn, lib, embedding.model_id, embedding.model_version, vector.size)
                elif (lib.embedding_model_id, lib.embedding_model_version, lib.embedding_dim) != (
                    embedding.model_id,
                    embedding.model_version,
                    vector.size,
                ):
                    bound = _model_name(lib.embedding_model_id, lib.embedding_model_version)
                    raise Conflict(
                        f"library '{library_id}' is bound to embedding model {bound}, but this face was embedded "
                        f"with {model}: enrol it into a library of that model"
                    )
                person = await repo.upsert_person(conn, lib, person_id, name, metadata_json)
                if await repo.count_faces(conn, lib, person_id) >= self.settings.enrol.max_faces_per_person:
                    raise InvalidRequest(
                        f"person '{person_id}' already has {self.settings.enrol.max_faces_per_person} reference faces"
                    )
                face_row = await repo.insert_face(
                    conn, lib, person_id, new_id("face"), point_id, vector, bbox, quality, raw_norm
                )
                person_centroid = centroid(await repo.person_embeddings(conn, lib, person_id))
                space = Space(embedding.model_id, embedding.model_version, vector.size)
                owner = (account_id, str(lib.library_uid), person_id)
                await self.store.ensure_space(space)
                await self.store.upsert(
                    space,
                    [
                        VectorPoint(point_id, vector, *owner, kind="template"),
                        VectorPoint(person.centroid_point_id, person_centroid, *owner, kind="centroid"),
                    ],
                )
                upserted = True
        except BaseException:
            if upserted and space is not None:  # the commit failed after the vectors were written
                await self.store.delete_points(space, Scope(account_id, str(lib.library_uid)), [point_id])
            raise
        return face_row

    async def ListPersons(  # noqa: N802
        self, request: library_pb2.ListPersonsRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.ListPersonsResponse:
        """The library's persons, by id, one keyset page at a time, with their faces."""
        limit = _limit(request.limit)
        async with self.pool.acquire() as conn:
            lib = await repo.get_library(conn, request.account_id, request.library_id)
            rows = await repo.list_persons(conn, lib, limit + 1, repo.decode_cursor(request.cursor))
        more = len(rows) > limit
        rows = rows[:limit]
        return library_pb2.ListPersonsResponse(
            persons=[_person_pb(p) for p in rows],
            next_cursor=repo.encode_cursor(rows[-1].person_id) if more else "",
        )

    async def GetPerson(  # noqa: N802
        self, request: library_pb2.GetPersonRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.Person:
        """One person with its reference faces."""
        async with self.pool.acquire() as conn:
            lib = await repo.get_library(conn, request.account_id, request.library_id)
            return _person_pb(await repo.get_person(conn, lib, request.person_id))

    async def DeletePerson(  # noqa: N802
        self, request: library_pb2.DeletePersonRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.DeletePersonResponse:
        """Delete a person, its faces and all its vectors."""
        async with self.pool.acquire() as conn, conn.transaction():
            lib = await repo.get_library(conn, request.account_id, request.library_id)
            await repo.lock_person(conn, lib, request.person_id)
            if lib.bound:
                scope = Scope(lib.account_id, str(lib.library_uid), request.person_id)
                await self.store.delete_scope(_space(lib), scope)
            await repo.delete_person(conn, lib, request.person_id)
        await self.refresh_vector_gauge()
        return library_pb2.DeletePersonResponse()

    async def DeleteFace(  # noqa: N802
        self, request: library_pb2.DeleteFaceRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.DeleteFaceResponse:
        """Delete one reference face and its vector; recompute (or, for the last face, remove) the centroid."""
        async with self.pool.acquire() as conn, conn.transaction():
            lib = await repo.get_library(conn, request.account_id, request.library_id)
            person = await repo.lock_person(conn, lib, request.person_id)
            face = await repo.get_face(conn, lib, request.person_id, request.face_id)
            await repo.delete_face(conn, face.face_id)
            remaining = await repo.person_embeddings(conn, lib, request.person_id)
            space = _space(lib)
            scope = Scope(lib.account_id, str(lib.library_uid))
            await self.store.delete_points(space, scope, [face.point_id])
            if len(remaining):
                point = VectorPoint(
                    person.centroid_point_id,
                    centroid(remaining),
                    lib.account_id,
                    str(lib.library_uid),
                    person.person_id,
                    kind="centroid",
                )
                await self.store.upsert(space, [point])
            else:
                await self.store.delete_points(space, scope, [person.centroid_point_id])
        await self.refresh_vector_gauge()
        return library_pb2.DeleteFaceResponse()

    # ---- search and compare ----------------------------------------------------------------------------------

    async def Search(  # noqa: N802
        self, request: library_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.SearchResponse:
        """Identify every face of every group; the faces of a group are assigned jointly."""
        start = time.perf_counter()
        top_k = request.top_k or 1
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidRequest(f"'top_k' must be an integer from 1 to {MAX_TOP_K}")
        async with self.pool.acquire() as conn:
            lib = await repo.get_library(conn, request.account_id, request.library_id)
            embeddings = [e for g in request.groups for e in g.embeddings]
            if not lib.bound or not embeddings:
                SEARCH_FACES.labels("unmatched").inc(len(embeddings))
                return library_pb2.SearchResponse(
                    groups=[
                        library_pb2.GroupMatches(faces=[library_pb2.FaceMatches() for _ in g.embeddings])
                        for g in request.groups
                    ]
                )
            queries = self._query_matrix(lib, embeddings)
            calibration = self.calibrations.get(lib.embedding_model_id)
            with span("library.search", {"facemint.library.queries": len(embeddings),
                                         "facemint.library.candidates": self.settings.search_candidates}):  # fmt: skip
                hits = await self.store.search(
                    _space(lib), Scope(lib.account_id, str(lib.library_uid)), queries, self.settings.search_candidates
                )
            best: list[dict[str, float]] = []
            for rows in hits:
                per_person: dict[str, float] = {}
                for hit in rows:
                    per_person[hit.person_id] = max(per_person.get(hit.person_id, -1.0), hit.score)
                best.append(per_person)
            names = await repo.person_names(conn, lib, sorted({p for b in best for p in b}))
        response = library_pb2.SearchResponse()
        offset = 0
        for group in request.groups:
            group_best = best[offset : offset + len(group.embeddings)]
            offset += len(group.embeddings)
            persons = sorted({p for b in group_best for p in b if p in names})
            cosines = np.full((len(group_best), len(persons)), -1.0)
            for i, per_person in enumerate(group_best):
                for j, person in enumerate(persons):
                    cosines[i, j] = per_person.get(person, -1.0)
            scores = calibration.scores(cosines)
            # The cohort of a face: the other persons among its candidates (its best one excluded).
            cohort = [max(0, sum(p in names for p in per_person) - 1) for per_person in group_best]
            ranked = rank_matches(scores, eligible(scores, cohort, calibration.identification), top_k)
            out = response.groups.add()
            for matches in ranked:
                face = out.faces.add()
                for column, score in matches:
                    person = persons[column]
                    face.matches.add(person_id=person, name=names[person], score=round(score, 3))
                SEARCH_FACES.labels("matched" if matches else "unmatched").inc()
        SEARCH_SECONDS.observe(time.perf_counter() - start)
        return response

    def _query_matrix(self, lib: repo.LibraryRow, embeddings: list[common_pb2.Embedding]) -> npt.NDArray[np.float32]:
        bound = _model_name(lib.embedding_model_id, lib.embedding_model_version)
        rows = []
        for emb in embeddings:
            if (emb.model_id, emb.model_version) != (lib.embedding_model_id, lib.embedding_model_version):
                raise Conflict(
                    f"library '{lib.library_id}' is bound to embedding model {bound}; a query face was embedded with "
                    f"{_model_name(emb.model_id, emb.model_version)}: search it with the same model"
                )
            if len(emb.values) != lib.embedding_dim:
                raise InvalidRequest(f"a query embedding has {len(emb.values)} values; {bound} has {lib.embedding_dim}")
            rows.append(normalise(emb.values)[0])
        return np.stack(rows)

    async def Compare(  # noqa: N802
        self, request: library_pb2.CompareRequest, context: grpc.aio.ServicerContext
    ) -> library_pb2.CompareResponse:
        """Compare the largest face of each image."""
        source_url = _require_url(request.source_image_url, "source_image_url")
        target_url = _require_url(request.target_image_url, "target_image_url")
        min_size = self.settings.detect_min_face_size
        source, target = await asyncio.gather(
            self.analyzer.image_faces(source_url, min_size, context.time_remaining()),
            self.analyzer.image_faces(target_url, min_size, context.time_remaining()),
        )
        pair: list[Any] = []
        for faces, field in ((source, "source_image_url"), (target, "target_image_url")):
            if not faces:
                raise NoFacesDetected(f"no face was found in {field}")
            largest = max(faces, key=_area)
            if not largest.embedding.values:
                raise InternalError("the analysis returned a face without an embedding")
            pair.append(largest.embedding)
        a, b = pair
        if (a.model_id, a.model_version) != (b.model_id, b.model_version) or len(a.values) != len(b.values):
            raise Conflict("the two images were embedded with different models; retry")
        cosine = float(np.dot(normalise(a.values)[0], normalise(b.values)[0]))
        score = self.calibrations.get(a.model_id).score(cosine)
        # Decided on the unrounded score: a score of 0.6996 is shown as 0.7 but is not a match (issue #18).
        return library_pb2.CompareResponse(
            score=round(score, 3), is_same_person=score >= DECISION_THRESHOLD, threshold=DECISION_THRESHOLD
        )
