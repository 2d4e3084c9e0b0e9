"""Face library routes: libraries, persons and reference faces, and 1:1 compare.

Every route goes to the library service, which owns tenant isolation: library ids are per account, and another
account's library is "not found". Bodies and answers are the models of :mod:`facemint_gateway.contract.library`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facemint.library.v1 import library_pb2
from facemint_gateway.contract import library as contract
from facemint_gateway.contract.base import Page, encode_metadata, parse
from facemint_gateway.http import account_id, created, ok, read_body
from facemint_gateway.services import services


def _library_json(lib: library_pb2.Library) -> dict[str, Any]:
    return {
        "library_id": lib.library_id,
        "name": lib.name,
        "description": lib.description,
        "embedding_model": lib.embedding_model_id or None,
        "person_count": lib.person_count,
        "face_count": lib.face_count,
        "created_at": lib.created_at,
    }


def _face_json(face: library_pb2.ReferenceFace) -> dict[str, Any]:
    box = face.bbox
    return {
        "face_id": face.face_id,
        "person_id": face.person_id,
        "bbox": [round(box.x), round(box.y), round(box.width), round(box.height)],
        "quality": round(face.quality, 3),
        "created_at": face.created_at,
    }


def _person_json(person: library_pb2.Person, with_faces: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "person_id": person.person_id,
        "name": person.name,
        "metadata": json.loads(person.metadata_json) if person.metadata_json else None,
        "face_count": len(person.faces),
        "created_at": person.created_at,
    }
    if with_faces:
        body["faces"] = [_face_json(f) for f in person.faces]
    return body


async def create_library(request: Request) -> Response:
    """POST /v1/library."""
    svc = services(request)
    body = await read_body(request, contract.CreateLibrary, svc.settings.max_body_bytes)
    lib = await svc.call(
        svc.library.CreateLibrary,
        library_pb2.CreateLibraryRequest(
            account_id=account_id(request),
            library_id=body.library_id,
            name=body.name or "",
            description=body.description or "",
        ),
    )
    return created(request, contract.LibraryReply, _library_json(lib), f"/v1/library/{quote(lib.library_id)}")


async def list_libraries(request: Request) -> Response:
    """GET /v1/libraries?limit=&cursor=."""
    svc = services(request)
    q = parse(Page, dict(request.query_params))
    page = await svc.call(
        svc.library.ListLibraries,
        library_pb2.ListLibrariesRequest(account_id=account_id(request), limit=q.limit, cursor=q.cursor),
    )
    libraries = [_library_json(x) for x in page.libraries]
    return ok(request, contract.LibraryList, {"libraries": libraries, "next_cursor": page.next_cursor or None})


async def get_library(request: Request) -> Response:
    """GET /v1/library/{library_id}."""
    svc = services(request)
    lib = await svc.call(
        svc.library.GetLibrary,
        library_pb2.GetLibraryRequest(account_id=account_id(request), library_id=request.path_params["library_id"]),
    )
    return ok(request, contract.LibraryReply, _library_json(lib))


async def update_library(request: Request) -> Response:
    """PATCH /v1/library/{library_id} {name?, description?}."""
    svc = services(request)
    body = await read_body(request, contract.UpdateLibrary, svc.settings.max_body_bytes)
    update = library_pb2.UpdateLibraryRequest(
        account_id=account_id(request), library_id=request.path_params["library_id"]
    )
    for name in body.model_fields_set:  # only the fields given change
        setattr(update, name, getattr(body, name))
    lib = await svc.call(svc.library.UpdateLibrary, update)
    return ok(request, contract.LibraryReply, _library_json(lib))


async def delete_library(request: Request) -> Response:
    """DELETE /v1/library/{library_id}: the library, its persons, faces and vectors."""
    svc = services(request)
    library_id = request.path_params["library_id"]
    await svc.call(
        svc.library.DeleteLibrary,
        library_pb2.DeleteLibraryRequest(account_id=account_id(request), library_id=library_id),
    )
    return ok(request, contract.LibraryDeleted, {"library_id": library_id, "deleted": True})


async def enroll_face(request: Request) -> Response:
    """POST /v1/library/{library_id}/face {person_id, name?, image_url, metadata?}."""
    svc = services(request)
    context = {"metadata_max_bytes": svc.settings.metadata_max_bytes}
    body = await read_body(request, contract.EnrollFace, svc.settings.max_body_bytes, context=context)
    face = await svc.call(
        svc.library.EnrollFace,
        library_pb2.EnrollFaceRequest(
            account_id=account_id(request),
            library_id=request.path_params["library_id"],
            person_id=body.person_id,
            name=body.name or "",
            image_url=body.image_url,
            metadata_json=encode_metadata(body.metadata) if body.metadata is not None else "",
        ),
    )
    location = f"/v1/library/{quote(request.path_params['library_id'])}/person/{quote(face.person_id)}"
    return created(request, contract.ReferenceFaceReply, _face_json(face), location)


async def list_persons(request: Request) -> Response:
    """GET /v1/library/{library_id}/persons?limit=&cursor=."""
    svc = services(request)
    q = parse(Page, dict(request.query_params))
    page = await svc.call(
        svc.library.ListPersons,
        library_pb2.ListPersonsRequest(
            account_id=account_id(request), library_id=request.path_params["library_id"], limit=q.limit, cursor=q.cursor
        ),
    )
    persons = [_person_json(p, with_faces=False) for p in page.persons]
    return ok(request, contract.PersonList, {"persons": persons, "next_cursor": page.next_cursor or None})


async def _person(request: Request) -> library_pb2.Person:
    svc = services(request)
    return await svc.call(
        svc.library.GetPerson,
        library_pb2.GetPersonRequest(
            account_id=account_id(request),
            library_id=request.path_params["library_id"],
            person_id=request.path_params["person_id"],
        ),
    )


async def get_person(request: Request) -> Response:
    """GET /v1/library/{library_id}/person/{person_id}."""
    return ok(request, contract.PersonWithFaces, _person_json(await _person(request), with_faces=True))


async def list_faces(request: Request) -> Response:
    """GET /v1/library/{library_id}/person/{person_id}/faces."""
    person = await _person(request)
    faces = [_face_json(f) for f in person.faces]
    return ok(request, contract.PersonFaces, {"person_id": person.person_id, "faces": faces})


async def delete_person(request: Request) -> Response:
    """DELETE /v1/library/{library_id}/person/{person_id}: the person, its faces and vectors."""
    svc = services(request)
    person_id = request.path_params["person_id"]
    await svc.call(
        svc.library.DeletePerson,
        library_pb2.DeletePersonRequest(
            account_id=account_id(request), library_id=request.path_params["library_id"], person_id=person_id
        ),
    )
    return ok(request, contract.PersonDeleted, {"person_id": person_id, "deleted": True})


async def delete_face(request: Request) -> Response:
    """DELETE /v1/library/{library_id}/person/{person_id}/face/{face_id}."""
    svc = services(request)
    face_id = request.path_params["face_id"]
    await svc.call(
        svc.library.DeleteFace,
        library_pb2.DeleteFaceRequest(
            account_id=account_id(request),
            library_id=request.path_params["library_id"],
            person_id=request.path_params["person_id"],
            face_id=face_id,
        ),
    )
    return ok(request, contract.FaceDeleted, {"face_id": face_id, "deleted": True})


async def compare(request: Request) -> Response:
    """POST /v1/compare {source_image_url, target_image_url}: the largest face of each image."""
    svc = services(request)
    body = await read_body(request, contract.Compare, svc.settings.max_body_bytes)
    result = await svc.call(
        svc.library.Compare,
        library_pb2.CompareRequest(
            account_id=account_id(request),
            source_image_url=body.source_image_url,
            target_image_url=body.target_image_url,
        ),
    )
    return ok(
        request,
        contract.Comparison,
        {
            "score": round(result.score, 3),
            "is_same_person": result.is_same_person,
            "threshold": round(result.threshold, 2),
        },
    )


def routes() -> list[BaseRoute]:
    """The face library and compare routes."""
    person = "/v1/library/{library_id}/person/{person_id}"
    return [
        Route("/v1/library", create_library, methods=["POST"]),
        Route("/v1/libraries", list_libraries, methods=["GET"]),
        Route("/v1/library/{library_id}", get_library, methods=["GET"]),
        Route("/v1/library/{library_id}", update_library, methods=["PATCH"]),
        Route("/v1/library/{library_id}", delete_library, methods=["DELETE"]),
        Route("/v1/library/{library_id}/face", enroll_face, methods=["POST"]),
        Route("/v1/library/{library_id}/persons", list_persons, methods=["GET"]),
        Route(person, get_person, methods=["GET"]),
        Route(person, delete_person, methods=["DELETE"]),
        Route(f"{person}/faces", list_faces, methods=["GET"]),
        Route(f"{person}/face/{{face_id}}", delete_face, methods=["DELETE"]),
        Route("/v1/compare", compare, methods=["POST"]),
    ]
