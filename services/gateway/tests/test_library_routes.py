"""Face library and compare routes through the public REST API.

The gateway app runs in process (uvicorn on a free port) against a real PostgreSQL and a real library service
(embedded vector store); the library's media-decoder is scripted (``facemint_library.testing``), so that the faces
and embeddings of each image URL are known exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn

from facemint_core.settings import DatabaseSettings
from facemint_gateway.app import create_app
from facemint_gateway.settings import GatewaySettings
from facemint_library.synthetic import around, identity_centres
from facemint_library.testing import (
    TEST_CALIBRATIONS,
    TEST_MODEL,
    LibraryHarness,
    harness_settings,
    make_face,
    serve_library,
)
from facemint_local.procs import ManagedProcess
from facemint_local.servers import NatsServer

pytestmark = pytest.mark.integration

DIM = 64


@dataclass
class Api:
    """An HTTP client per account, the library service and its scripted media-decoder."""

    a: httpx.AsyncClient
    b: httpx.AsyncClient
    library: LibraryHarness

    def image(self, url: str, *vectors: np.ndarray, **face: Any) -> str:
        """Script the faces of an image URL."""
        self.library.decoder.images[url] = [make_face(v, TEST_MODEL, **face) for v in vectors]
        return url


async def _serve(app: Any) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("gateway did not start")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


@pytest.fixture
async def api(
    fresh_database: str,
    tmp_path: Path,
    nats_server: NatsServer,
    dispatcher_starter: Callable[..., tuple[ManagedProcess, str]],
) -> AsyncIterator[Api]:
    """Gateway + library service on a fresh database, with two accounts on the scale plan (the webhook-dispatcher
    gives them their webhook secrets)."""
    admin_token = secrets.token_urlsafe(16)
    dispatcher, webhook_target = dispatcher_starter(fresh_database, nats_server.url, tmp_path)
    try:
        async with _gateway_and_library(fresh_database, tmp_path, admin_token, webhook_target) as api:
            yield api
    finally:
        dispatcher.stop()


@contextlib.asynccontextmanager
async def _gateway_and_library(
    fresh_database: str, tmp_path: Path, admin_token: str, webhook_target: str
) -> AsyncIterator[Api]:
    async with serve_library(harness_settings("edge", tmp_path, fresh_database), TEST_CALIBRATIONS) as library:
        settings = GatewaySettings(
            database=DatabaseSettings(dsn=fresh_database, min_pool_size=0, max_pool_size=4),
            library_target=library.target,
            webhook_target=webhook_target,
            admin_token=admin_token,
        )
        server, task, port = await _serve(create_app(settings))
        base = f"http://127.0.0.1:{port}"
        clients = []
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as admin:
                for name in ("tenant a", "tenant b"):
                    created = await admin.post(
                        "/admin/v1/accounts",
                        json={"name": name, "plan": "scale"},
                        headers={"Authorization": f"Bearer {admin_token}"},
                    )
                    assert created.status_code == 201, created.text
                    key = created.json()["api_key"]["key"]
                    clients.append(httpx.AsyncClient(base_url=base, headers={"x-api-key": key}, timeout=30))
            yield Api(clients[0], clients[1], library)
        finally:
            for client in clients:
                await client.aclose()
            server.should_exit = True
            await task


def error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()["error"]
    assert body["code"] == code and body["request_id"].startswith("req_")
    return str(body["message"])


@pytest.fixture
def people() -> np.ndarray:
    return identity_centres(np.random.default_rng(7), 4, DIM)


async def test_library_lifecycle_enrol_list_and_delete(api: Api, people: np.ndarray) -> None:
    resp = await api.a.post(
        "/v1/library", json={"library_id": "my-people-lib", "name": "Office staff", "description": "HQ"}
    )
    assert resp.status_code == 201, resp.text
    lib = resp.json()
    assert lib["request_id"].startswith("req_") and lib["library_id"] == "my-people-lib"
    assert (lib["name"], lib["embedding_model"], lib["person_count"], lib["face_count"]) == ("Office staff", None, 0, 0)

    url = api.image("https://cdn.example.com/zhangwei/profile.jpg", people[0])
    resp = await api.a.post(
        "/v1/library/my-people-lib/face",
        json={"person_id": "p_zhang_wei", "name": "Zhang Wei", "image_url": url, "metadata": {"team": "engineering"}},
    )
    assert resp.status_code == 201, resp.text
    face = resp.json()
    assert face["person_id"] == "p_zhang_wei" and face["face_id"].startswith("face_")
    assert face["bbox"] == [100, 80, 120, 140] and face["quality"] == 0.9
    second = api.image("https://cdn.example.com/zhangwei/2.jpg", around(np.random.default_rng(1), people[:1])[0])
    resp = await api.a.post("/v1/library/my-people-lib/face", json={"person_id": "p_zhang_wei", "image_url": second})
    assert resp.status_code == 201, resp.text

    lib = (await api.a.get("/v1/library/my-people-lib")).json()
    assert (lib["embedding_model"], lib["person_count"], lib["face_count"]) == (TEST_MODEL, 1, 2)
    persons = (await api.a.get("/v1/library/my-people-lib/persons")).json()
    assert persons["next_cursor"] is None
    [person] = persons["persons"]
    assert person == {
        "person_id": "p_zhang_wei",
        "name": "Zhang Wei",
        "metadata": {"team": "engineering"},
        "face_count": 2,
        "created_at": person["created_at"],
    }
    detail = (await api.a.get("/v1/library/my-people-lib/person/p_zhang_wei")).json()
    assert len(detail["faces"]) == 2 and detail["metadata"] == {"team": "engineering"}
    faces = (await api.a.get("/v1/library/my-people-lib/person/p_zhang_wei/faces")).json()
    assert [f["face_id"] for f in faces["faces"]] == [f["face_id"] for f in detail["faces"]]

    resp = await api.a.request("DELETE", f"/v1/library/my-people-lib/person/p_zhang_wei/face/{face['face_id']}")
    assert resp.json() == {"request_id": resp.json()["request_id"], "face_id": face["face_id"], "deleted": True}
    assert (await api.a.get("/v1/library/my-people-lib")).json()["face_count"] == 1
    resp = await api.a.delete("/v1/library/my-people-lib/person/p_zhang_wei")
    assert resp.status_code == 200 and resp.json()["deleted"] is True
    error(await api.a.get("/v1/library/my-people-lib/person/p_zhang_wei"), 404, "not_found")
    assert await api.library.store.total() == 0

    resp = await api.a.patch("/v1/library/my-people-lib", json={"name": "Staff"})
    assert resp.json()["name"] == "Staff" and resp.json()["description"] == "HQ"
    resp = await api.a.delete("/v1/library/my-people-lib")
    assert resp.status_code == 200 and resp.json()["library_id"] == "my-people-lib"
    error(await api.a.get("/v1/library/my-people-lib"), 404, "not_found")


async def test_library_ids_are_per_account_and_another_accounts_library_is_not_found(
    api: Api, people: np.ndarray
) -> None:
    assert (await api.a.post("/v1/library", json={"library_id": "lib-a"})).status_code == 201
    url = api.image("https://img.example.com/a.jpg", people[0])
    resp = await api.a.post("/v1/library/lib-a/face", json={"person_id": "alice", "image_url": url})
    face_id = resp.json()["face_id"]
    person = "/v1/library/lib-a/person/alice"
    calls = [
        ("GET", "/v1/library/lib-a", None),
        ("PATCH", "/v1/library/lib-a", {"name": "mine"}),
        ("DELETE", "/v1/library/lib-a", None),
        ("POST", "/v1/library/lib-a/face", {"person_id": "eve", "image_url": url}),
        ("GET", "/v1/library/lib-a/persons", None),
        ("GET", person, None),
        ("DELETE", person, None),
        ("GET", f"{person}/faces", None),
        ("DELETE", f"{person}/face/{face_id}", None),
    ]
    for method, path, body in calls:  # nothing tells account b that account a uses the id
        message = error(await api.b.request(method, path, json=body), 404, "not_found")
        assert "another account" not in message, (method, path)
    assert (await api.b.get("/v1/libraries")).json()["libraries"] == []

    # account b has its own library with the same id, independent of a's
    assert (await api.b.post("/v1/library", json={"library_id": "lib-a", "name": "b's"})).status_code == 201
    resp = await api.b.post("/v1/library/lib-a/face", json={"person_id": "alice", "image_url": url})
    assert resp.status_code == 201, resp.text
    assert (await api.b.delete(f"{person}/face/{face_id}")).status_code == 404  # a's face is not in b's library
    assert (await api.b.get("/v1/library/lib-a")).json()["name"] == "b's"
    assert (await api.a.get("/v1/library/lib-a")).json()["face_count"] == 1
    assert (await api.b.delete("/v1/library/lib-a")).status_code == 200
    lib = (await api.a.get("/v1/library/lib-a")).json()
    assert (lib["name"], lib["person_count"], lib["face_count"]) == ("", 1, 1)
    error(await api.a.post("/v1/library", json={"library_id": "lib-a"}), 409, "conflict")


async def test_libraries_are_listed_by_keyset_pages(api: Api) -> None:
    for i in range(5):
        assert (await api.a.post("/v1/library", json={"library_id": f"lib-{i}"})).status_code == 201
    assert (await api.b.post("/v1/library", json={"library_id": "other"})).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await api.a.get("/v1/libraries", params=params)).json()
        seen += [lib["library_id"] for lib in page["libraries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"lib-{i}" for i in range(5)]
    error(await api.a.get("/v1/libraries", params={"limit": "0"}), 400, "invalid_request")
    error(await api.a.get("/v1/libraries", params={"cursor": "not-a-cursor"}), 400, "invalid_request")


async def test_compare_returns_a_calibrated_score_and_the_decision(api: Api, people: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    a = api.image("https://img.example.com/a.jpg", around(rng, people[:1])[0])
    b = api.image("https://img.example.com/b.jpg", around(rng, people[:1])[0])
    c = api.image("https://img.example.com/c.jpg", people[1])
    none = api.image("https://img.example.com/empty.jpg")
    same = (await api.a.post("/v1/compare", json={"source_image_url": a, "target_image_url": b})).json()
    assert set(same) == {"request_id", "score", "is_same_person", "threshold"}
    assert same["is_same_person"] is True and same["score"] >= 0.70 and same["threshold"] == 0.70
    other = (await api.a.post("/v1/compare", json={"source_image_url": a, "target_image_url": c})).json()
    assert other["is_same_person"] is False and other["score"] < 0.70
    resp = await api.a.post("/v1/compare", json={"source_image_url": a, "target_image_url": none})
    assert "target_image_url" in error(resp, 422, "no_faces_detected")
    resp = await api.a.post(
        "/v1/compare", json={"source_image_url": "https://img.example.com/404.jpg", "target_image_url": a}
    )
    error(resp, 400, "invalid_media")


@pytest.mark.parametrize(
    ("method", "path", "body", "needle"),
    [
        ("POST", "/v1/library", {}, "missing required field 'library_id'"),
        ("POST", "/v1/library", {"library_id": "has space"}, "'library_id' must be 1-128 characters"),
        ("POST", "/v1/library", {"library_id": "x" * 129}, "'library_id' must be 1-128 characters"),
        ("POST", "/v1/library", {"library_id": "ok", "colour": "red"}, "unknown field(s): colour"),
        ("POST", "/v1/library", {"library_id": "ok", "name": 5}, "'name' must be a non-empty string"),
        ("PATCH", "/v1/library/x", {}, "nothing to change"),
        ("PATCH", "/v1/library/x", {"name": 3}, "'name' must be a string"),
        ("POST", "/v1/library/x/face", {"image_url": "https://a.b/c.jpg"}, "missing required field 'person_id'"),
        ("POST", "/v1/library/x/face", {"person_id": "p"}, "missing required field 'image_url'"),
        ("POST", "/v1/library/x/face", {"person_id": "p", "image_url": "ftp://a/b"}, "'image_url' must be an absolute"),
        ("POST", "/v1/library/x/face", {"person_id": "p", "image_url": "https://a.b/c", "metadata": []}, "JSON object"),
        ("POST", "/v1/compare", {"source_image_url": "https://a.b/c.jpg"}, "'target_image_url'"),
    ],
)
async def test_invalid_requests_get_clear_messages(
    api: Api, method: str, path: str, body: dict[str, Any], needle: str
) -> None:
    assert needle in error(await api.a.request(method, path, json=body), 400, "invalid_request")


async def test_enrolment_errors_map_to_the_public_codes(api: Api, people: np.ndarray) -> None:
    assert (await api.a.post("/v1/library", json={"library_id": "lib"})).status_code == 201
    none = api.image("https://img.example.com/none.jpg")
    two = api.image("https://img.example.com/two.jpg", people[0], people[1])
    resp = await api.a.post("/v1/library/lib/face", json={"person_id": "p", "image_url": none})
    error(resp, 422, "no_faces_detected")
    resp = await api.a.post("/v1/library/lib/face", json={"person_id": "p", "image_url": two})
    assert "exactly one clear face" in error(resp, 400, "invalid_request")
    resp = await api.a.post("/v1/library/missing/face", json={"person_id": "p", "image_url": two})
    error(resp, 404, "not_found")


async def test_detection_task_with_a_missing_or_foreign_library_is_refused_at_creation(api: Api) -> None:
    assert (await api.a.post("/v1/library", json={"library_id": "mine"})).status_code == 201
    task = {"type": "image", "media_url": "https://img.example.com/a.jpg", "recognize": 1}
    resp = await api.a.post("/v1/create-detection-task", json={**task, "library_id": "missing"})
    assert "library 'missing' does not exist" in error(resp, 404, "not_found")
    resp = await api.b.post("/v1/create-detection-task", json={**task, "library_id": "mine"})
    assert "library 'mine' does not exist" in error(resp, 404, "not_found")
