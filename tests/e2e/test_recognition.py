"""Face libraries, recognition in tasks, 1:1 compare and tenant isolation through the real REST API (issue #5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from facemint_local.harness import MediaServer, RunningPlatform, account_client
from facemint_local.testmedia import encode, group_image
from tests.e2e.apiutil import submit, wait

pytestmark = [pytest.mark.e2e]


def _crop(reference: dict[str, Any], index: int, margin: float = 0.4) -> bytes:
    image = group_image()
    faces = sorted(reference["result"]["frames"][0]["faces"], key=lambda f: f["bbox"][0])
    x, y, w, h = faces[index]["bbox"]
    m = int(margin * max(w, h))
    return encode(image.crop((x - m, y - m, x + w + m, y + h + m)).resize((260, 260)), "JPEG", quality=95)


@pytest.fixture(scope="module")
def other_account(platform: RunningPlatform) -> Iterator[httpx.Client]:
    with account_client(platform, "Other tenant", "starter") as client:
        yield client


@pytest.fixture(scope="module")
def library(api: httpx.Client, media: MediaServer, reference: dict[str, Any]) -> str:
    created = api.post("/v1/library", json={"library_id": "e2e-staff", "name": "Staff", "description": "e2e"})
    assert created.status_code == 201, created.text
    enrolled = api.post(
        "/v1/library/e2e-staff/face",
        json={"person_id": "p_left", "name": "Leftmost", "image_url": media.add("left.jpg", _crop(reference, 0)),
              "metadata": {"team": "e2e"}},
    )  # fmt: skip
    assert enrolled.status_code == 201, enrolled.text
    return "e2e-staff"


def test_recognition_matches_the_enrolled_person_only(
    api: httpx.Client, media: MediaServer, reference: dict[str, Any], library: str
) -> None:
    url = media.add("group-recognise.jpg", encode(group_image(), "JPEG", quality=95))
    task = wait(api, submit(api, type="image", media_url=url, recognize=1, library_id=library, top_k=3))
    assert task["status"] == "succeeded", task
    faces = sorted(task["result"]["frames"][0]["faces"], key=lambda f: f["bbox"][0])
    assert len(faces) == 6
    first = faces[0]["identity"]["matches"]
    assert [m["person_id"] for m in first] == ["p_left"] and first[0]["name"] == "Leftmost"
    assert first[0]["score"] >= 0.70
    assert all(f["identity"] == {"matches": []} for f in faces[1:])  # strangers are "no match"
    assert task["result"]["summary"]["unique_identities"] == 1
    assert [t["person_id"] for t in task["result"]["face_tracks"]].count("p_left") == 1


def test_compare_same_and_different_people(api: httpx.Client, media: MediaServer, reference: dict[str, Any]) -> None:
    a = media.add("cmp-a.jpg", _crop(reference, 1))
    a_again = media.add("cmp-a2.jpg", _crop(reference, 1, margin=0.6))
    b = media.add("cmp-b.jpg", _crop(reference, 4))
    same = api.post("/v1/compare", json={"source_image_url": a, "target_image_url": a_again})
    assert same.status_code == 200, same.text
    assert same.json()["is_same_person"] is True and same.json()["threshold"] == 0.70
    different = api.post("/v1/compare", json={"source_image_url": a, "target_image_url": b}).json()
    assert different["is_same_person"] is False and different["score"] < 0.70
    empty = media.add("cmp-empty.png", encode(group_image().crop((0, 0, 40, 40)).resize((300, 300)), "PNG"))
    none = api.post("/v1/compare", json={"source_image_url": a, "target_image_url": empty})
    assert none.status_code == 422 and none.json()["error"]["code"] == "no_faces_detected"


def test_another_tenant_cannot_see_the_library_and_its_tasks(
    api: httpx.Client, other_account: httpx.Client, media: MediaServer, library: str, reference: dict[str, Any]
) -> None:
    lib = f"/v1/library/{library}"
    for method, path in (
        ("GET", lib), ("PATCH", lib), ("GET", f"{lib}/persons"), ("GET", f"{lib}/person/p_left"),
        ("GET", f"{lib}/person/p_left/faces"), ("DELETE", f"{lib}/person/p_left"), ("POST", f"{lib}/face"),
        ("DELETE", lib),
    ):  # fmt: skip
        body = {"name": "x"} if method == "PATCH" else {"person_id": "p_x", "image_url": "http://127.0.0.2/x.jpg"}
        resp = other_account.request(method, path, json=body if method in ("PATCH", "POST") else None)
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", (method, path, resp.text)
    assert all(lib_["library_id"] != library for lib_ in other_account.get("/v1/libraries").json()["libraries"])
    task = {"type": "image", "media_url": media.url("group-recognise.jpg"), "recognize": 1, "library_id": library}
    resp = other_account.post("/v1/create-detection-task", json=task)  # refused at once, before any task exists
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found", resp.text
    mine = reference["task_id"]
    assert other_account.get(f"/v1/task/{mine}").status_code == 403
    assert other_account.post(f"/v1/task/{mine}/cancel").status_code == 403


def test_deleting_the_person_removes_it_from_search(
    api: httpx.Client, media: MediaServer, library: str, other_account: httpx.Client
) -> None:
    assert api.delete(f"/v1/library/{library}/person/p_left").status_code in (200, 204)
    task = wait(api, submit(api, type="image", media_url=media.url("group-recognise.jpg"), recognize=1,
                            library_id=library))  # fmt: skip
    assert task["status"] == "succeeded"
    assert all(f["identity"] == {"matches": []} for f in task["result"]["frames"][0]["faces"])
    assert api.get(f"/v1/library/{library}/person/p_left").status_code == 404
