"""The gRPC LibraryService on real PostgreSQL, on both vector stores, with a scripted media-decoder."""

from __future__ import annotations

import json

import grpc
import numpy as np
import pytest

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2
from facemint_core.errors import ERROR_CODE_METADATA_KEY, InvalidMedia
from facemint_library.store import Scope, Space
from facemint_library.synthetic import around, identity_centres, unit_rows
from facemint_library.testing import OTHER_TEST_MODEL, TEST_MODEL, LibraryHarness, make_face

DIM = 64
A, B = "acc_a", "acc_b"


def code_of(exc: grpc.aio.AioRpcError) -> str:
    """The public error code carried in the trailing metadata."""
    return dict(exc.trailing_metadata() or ())[ERROR_CODE_METADATA_KEY]


async def expect_error(call: object, status: grpc.StatusCode, code: str, match: str = "") -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == status and code_of(info.value) == code, info.value.details()
    assert match in (info.value.details() or "")
    return str(info.value.details())


def emb(vector: np.ndarray, model: str = TEST_MODEL) -> common_pb2.Embedding:
    return common_pb2.Embedding(values=vector.tolist(), model_id=model, model_version="1")


async def create(lib: LibraryHarness, library_id: str = "staff", account: str = A) -> library_pb2.Library:
    return await lib.stub.CreateLibrary(
        library_pb2.CreateLibraryRequest(account_id=account, library_id=library_id, name="Staff", description="HQ")
    )


async def enrol(
    lib: LibraryHarness, vector: np.ndarray, person: str, library_id: str = "staff", account: str = A, **face: object
) -> library_pb2.ReferenceFace:
    url = f"https://img.test/{person}/{len(lib.decoder.images)}.jpg"
    face.setdefault("model_id", TEST_MODEL)
    lib.decoder.images[url] = [make_face(vector, **face)]  # type: ignore[arg-type]
    return await lib.stub.EnrollFace(
        library_pb2.EnrollFaceRequest(
            account_id=account, library_id=library_id, person_id=person, name=person.title(), image_url=url
        )
    )


async def search(
    lib: LibraryHarness, groups: list[list[np.ndarray]], library_id: str = "staff", account: str = A, top_k: int = 1
) -> list[list[list[tuple[str, float]]]]:
    response = await lib.stub.Search(
        library_pb2.SearchRequest(
            account_id=account,
            library_id=library_id,
            top_k=top_k,
            groups=[library_pb2.QueryGroup(embeddings=[emb(v) for v in g]) for g in groups],
        )
    )
    return [[[(m.person_id, m.score) for m in face.matches] for face in group.faces] for group in response.groups]


@pytest.fixture
def people() -> np.ndarray:
    return identity_centres(np.random.default_rng(42), 6, DIM)


async def test_enrolled_person_is_found_and_a_stranger_is_not(library: LibraryHarness, people: np.ndarray) -> None:
    created = await create(library)
    assert (created.library_id, created.account_id, created.embedding_model_id) == ("staff", A, "")
    rng = np.random.default_rng(0)
    face = await enrol(library, around(rng, people[:1])[0], "alice")
    assert face.face_id.startswith("face_") and face.person_id == "alice" and face.quality == pytest.approx(0.9)
    assert (face.bbox.width, face.bbox.height) == (120, 140)
    request = library.decoder.requests[-1]
    assert request.kind == 1 and request.options.want_embeddings and list(request.options.attributes) == ["quality"]
    [[alice, stranger]] = await search(library, [[around(rng, people[:1])[0], people[5]]])
    assert alice[0][0] == "alice" and 0.70 <= alice[0][1] <= 1.0
    assert stranger == []
    info = await library.stub.GetLibrary(library_pb2.GetLibraryRequest(account_id=A, library_id="staff"))
    assert (info.embedding_model_id, info.person_count, info.face_count) == (TEST_MODEL, 1, 1)


async def test_several_images_build_one_person_with_templates_and_a_centroid(
    library: LibraryHarness, people: np.ndarray
) -> None:
    lib = await create(library)
    rng = np.random.default_rng(1)
    for _ in range(3):
        await enrol(library, around(rng, people[:1])[0], "alice")
    person = await library.stub.GetPerson(
        library_pb2.GetPersonRequest(account_id=A, library_id="staff", person_id="alice")
    )
    assert len(person.faces) == 3 and person.name == "Alice"
    space = Space(TEST_MODEL, "1", DIM)
    row = await library.pool.fetchrow("SELECT library_uid FROM libraries WHERE library_id = $1", lib.library_id)
    assert await library.store.count(space, Scope(A, str(row["library_uid"]), "alice")) == 4  # 3 templates + centroid
    # The centroid of three noisy samples is closer to the identity than any one of them.
    [[[(pid, score)]]] = await search(library, [[people[0]]])
    cosines = (
        unit_rows(np.stack([people[0]]))
        @ unit_rows(
            np.array(await library.pool.fetchval("SELECT array_agg(embedding) FROM library_faces"), dtype=np.float32)
        ).T
    )
    assert pid == "alice" and score > library.service.calibrations.get(TEST_MODEL).score(float(cosines.max()))


async def test_faces_of_one_frame_are_assigned_jointly(library: LibraryHarness, people: np.ndarray) -> None:
    await create(library)
    rng = np.random.default_rng(2)
    await enrol(library, people[0], "alice")
    await enrol(library, people[1], "bob")
    twin = unit_rows((people[0] + 0.05 * people[1])[None, :])[0]
    # Two faces that both look like alice in one frame: only one may be alice.
    [[first, second]] = await search(library, [[people[0], twin]], top_k=3)
    assert first[0][0] == "alice" and second == []
    # The same two faces in separate frames are each alice.
    [[a], [b]] = await search(library, [[people[0]], [twin]])
    assert a[0][0] == b[0][0] == "alice"
    # A frame with alice and bob gets both, top_k lists nobody twice within the frame.
    [[x, y]] = await search(library, [[around(rng, people[:1])[0], around(rng, people[1:2])[0]]], top_k=10)
    assert x[0][0] == "alice" and y[0][0] == "bob"
    assert "bob" not in [p for p, _ in x] and "alice" not in [p for p, _ in y]


async def test_top_k_returns_several_matches_above_the_threshold_best_first(
    library: LibraryHarness, people: np.ndarray
) -> None:
    await create(library)
    base = people[0]
    for i, mix in enumerate((0.0, 0.3, 0.6, 5.0)):
        await enrol(library, unit_rows((base + mix * people[i + 1])[None, :])[0], f"p{i}")
    [[matches]] = await search(library, [[base]], top_k=10)
    names = [p for p, _ in matches]
    scores = [s for _, s in matches]
    assert names[:3] == ["p0", "p1", "p2"] and "p3" not in names
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.70
    [[only]] = await search(library, [[base]], top_k=1)
    assert [p for p, _ in only] == ["p0"]
    await expect_error(
        library.stub.Search(library_pb2.SearchRequest(account_id=A, library_id="staff", top_k=11)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
        "top_k",
    )


def probe_of(centres: np.ndarray, cosines: dict[int, float], rng: np.random.Generator) -> np.ndarray:
    """A unit vector at the given cosines to some of the centres, random in the directions orthogonal to them."""
    chosen = centres[list(cosines)]
    known = np.linalg.lstsq(chosen, np.array(list(cosines.values())), rcond=None)[0]  # in the centres' span
    basis, _ = np.linalg.qr(chosen.T)
    rest = rng.standard_normal(centres.shape[1])
    rest -= basis @ (basis.T @ rest)
    rest *= np.sqrt(1.0 - float(known @ known)) / np.linalg.norm(rest)
    return (known + rest).astype(np.float32)


async def test_a_best_person_below_the_threshold_is_matched_only_with_a_clear_margin_over_a_cohort(
    library: LibraryHarness,
) -> None:
    rng = np.random.default_rng(7)
    centres = identity_centres(rng, 8, 512)  # 512-d: unrelated persons score cosine 0 +- 0.045
    rule = library.service.calibrations.get(TEST_MODEL).identification
    assert rule is not None and rule.min_cohort == 5
    await create(library, "big")
    for i in range(6):
        await enrol(library, centres[i], f"p{i}", library_id="big")
    await create(library, "small")
    for i in range(2):
        await enrol(library, centres[i], f"p{i}", library_id="small")
    clear = probe_of(centres, {0: 0.33}, rng)  # score 0.62: below 0.70, far above everyone else
    close = probe_of(centres, {0: 0.33, 1: 0.25}, rng)  # score 0.62, second 0.53: too close
    faint = probe_of(centres, {0: 0.24}, rng)  # score 0.52: below the floor
    stranger = centres[7]
    [[clear_big, close_big, faint_big, stranger_big]] = await search(
        library, [[clear, close, faint, stranger]], library_id="big", top_k=3
    )
    assert [p for p, _ in clear_big] == ["p0"] and 0.60 <= clear_big[0][1] < 0.70
    assert close_big == faint_big == stranger_big == []
    # A library of two persons has no cohort: only 0.70 counts.
    [[clear_small]] = await search(library, [[clear]], library_id="small")
    assert clear_small == []
    # A stronger face of p0 in the same frame takes p0; the weak one is then left without a match.
    [[strong, weak]] = await search(library, [[around(rng, centres[:1], 0.9)[0], clear]], library_id="big")
    assert strong[0][0] == "p0" and strong[0][1] >= 0.70 and weak == []


async def test_other_accounts_get_not_found_on_every_rpc(library: LibraryHarness, people: np.ndarray) -> None:
    await create(library)
    await enrol(library, people[0], "alice")
    not_found = (grpc.StatusCode.NOT_FOUND, "not_found")
    s = library.stub
    calls = [
        s.GetLibrary(library_pb2.GetLibraryRequest(account_id=B, library_id="staff")),
        s.UpdateLibrary(library_pb2.UpdateLibraryRequest(account_id=B, library_id="staff", name="x")),
        s.DeleteLibrary(library_pb2.DeleteLibraryRequest(account_id=B, library_id="staff")),
        s.ListPersons(library_pb2.ListPersonsRequest(account_id=B, library_id="staff")),
        s.GetPerson(library_pb2.GetPersonRequest(account_id=B, library_id="staff", person_id="alice")),
        s.DeletePerson(library_pb2.DeletePersonRequest(account_id=B, library_id="staff", person_id="alice")),
        s.DeleteFace(library_pb2.DeleteFaceRequest(account_id=B, library_id="staff", person_id="alice", face_id="f")),
        s.Search(library_pb2.SearchRequest(account_id=B, library_id="staff")),
    ]
    for call in calls:
        await expect_error(call, *not_found)
    requests_before = len(library.decoder.requests)
    library.decoder.images["https://img.test/b.jpg"] = [make_face(people[1], TEST_MODEL)]
    await expect_error(
        s.EnrollFace(
            library_pb2.EnrollFaceRequest(
                account_id=B, library_id="staff", person_id="eve", image_url="https://img.test/b.jpg"
            )
        ),
        *not_found,
    )
    assert len(library.decoder.requests) == requests_before, "a foreign caller must not trigger a fetch"
    listed = await s.ListLibraries(library_pb2.ListLibrariesRequest(account_id=B))
    assert list(listed.libraries) == []
    # B's own library with the same id and the very same face never returns A's person.
    await create(library, "staff", account=B)
    assert await search(library, [[people[0]]], library_id="staff", account=B) == [[[]]]
    await enrol(library, people[0], "bob-twin", library_id="staff", account=B)
    [[[(pid, _)]]] = await search(library, [[people[0]]], library_id="staff", account=B)
    [[[(pid_a, _)]]] = await search(library, [[people[0]]])
    assert (pid, pid_a) == ("bob-twin", "alice")


async def test_deleting_a_face_person_or_library_removes_its_vectors(
    library: LibraryHarness, people: np.ndarray
) -> None:
    lib = await create(library)
    uid = str(await library.pool.fetchval("SELECT library_uid FROM libraries WHERE library_id = 'staff'"))
    space = Space(TEST_MODEL, "1", DIM)
    # alice has two very different references; deleting one makes its look-alikes unmatched.
    look_a, look_b = people[0], people[1]
    face_a = await enrol(library, look_a, "alice")
    await enrol(library, look_b, "alice")
    await enrol(library, people[2], "carol")
    assert (await search(library, [[look_a]]))[0][0][0][0] == "alice"
    await library.stub.DeleteFace(
        library_pb2.DeleteFaceRequest(
            account_id=A, library_id=lib.library_id, person_id="alice", face_id=face_a.face_id
        )
    )
    assert await search(library, [[look_a]]) == [[[]]]
    assert (await search(library, [[look_b]]))[0][0][0][0] == "alice"
    assert await library.store.count(space, Scope(A, uid, "alice")) == 2  # one template + centroid
    await library.stub.DeletePerson(
        library_pb2.DeletePersonRequest(account_id=A, library_id="staff", person_id="alice")
    )
    assert await search(library, [[look_b]]) == [[[]]]
    assert await library.store.count(space, Scope(A, uid, "alice")) == 0
    await expect_error(
        library.stub.GetPerson(library_pb2.GetPersonRequest(account_id=A, library_id="staff", person_id="alice")),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    assert (await search(library, [[people[2]]]))[0][0][0][0] == "carol"
    await library.stub.DeleteLibrary(library_pb2.DeleteLibraryRequest(account_id=A, library_id="staff"))
    assert await library.store.count(space, Scope(A, uid)) == 0
    assert await library.store.total() == 0
    # A new library with the same id starts empty.
    await create(library)
    assert await search(library, [[people[2]]]) == [[[]]]


async def test_deleting_the_last_face_keeps_an_empty_person_without_vectors(
    library: LibraryHarness, people: np.ndarray
) -> None:
    await create(library)
    face = await enrol(library, people[0], "alice")
    await library.stub.DeleteFace(
        library_pb2.DeleteFaceRequest(account_id=A, library_id="staff", person_id="alice", face_id=face.face_id)
    )
    assert await library.store.total() == 0
    person = await library.stub.GetPerson(
        library_pb2.GetPersonRequest(account_id=A, library_id="staff", person_id="alice")
    )
    assert list(person.faces) == []
    assert await search(library, [[people[0]]]) == [[[]]]
    await expect_error(
        library.stub.DeleteFace(
            library_pb2.DeleteFaceRequest(account_id=A, library_id="staff", person_id="alice", face_id=face.face_id)
        ),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )


async def test_another_embedding_model_is_refused(library: LibraryHarness, people: np.ndarray) -> None:
    await create(library)
    await enrol(library, people[0], "alice")
    details = await expect_error(
        enrol(library, people[1], "bob", model_id=OTHER_TEST_MODEL),
        grpc.StatusCode.FAILED_PRECONDITION,
        "conflict",
        "bound to embedding model test-model/1",
    )
    assert "other-model" in details
    await expect_error(
        library.stub.Search(
            library_pb2.SearchRequest(
                account_id=A,
                library_id="staff",
                groups=[library_pb2.QueryGroup(embeddings=[emb(people[0], OTHER_TEST_MODEL)])],
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "conflict",
        "search it with the same model",
    )
    await expect_error(
        enrol(library, people[1], "bob", model_id="uncalibrated"),
        grpc.StatusCode.FAILED_PRECONDITION,
        "conflict",
        "no score calibration",
    )


async def test_enrolment_refuses_unusable_reference_images(library: LibraryHarness, people: np.ndarray) -> None:
    await create(library)

    async def enrol_faces(faces: list[common_pb2.Face] | InvalidMedia) -> library_pb2.ReferenceFace:
        url = f"https://img.test/{len(library.decoder.images)}.jpg"
        library.decoder.images[url] = faces
        return await library.stub.EnrollFace(
            library_pb2.EnrollFaceRequest(account_id=A, library_id="staff", person_id="p", image_url=url)
        )

    invalid = (grpc.StatusCode.INVALID_ARGUMENT, "invalid_request")
    await expect_error(enrol_faces([]), grpc.StatusCode.FAILED_PRECONDITION, "no_faces_detected", "no face")
    two = [make_face(people[0], TEST_MODEL), make_face(people[1], TEST_MODEL, bbox=(300, 80, 100, 100))]
    await expect_error(enrol_faces(two), *invalid, "shows 2 faces")
    small = [make_face(people[0], TEST_MODEL, bbox=(0, 0, 30, 30))]
    await expect_error(enrol_faces(small), *invalid, "too small (30 px)")
    poor = [make_face(people[0], TEST_MODEL, quality=0.1)]
    await expect_error(enrol_faces(poor), *invalid, "too poor quality (0.10")
    await expect_error(enrol_faces(InvalidMedia("cannot decode")), *invalid[:1], "invalid_media", "cannot decode")
    # A small face in the background of a good reference photo is ignored.
    background = [make_face(people[0], TEST_MODEL), make_face(people[1], TEST_MODEL, bbox=(0, 0, 24, 24))]
    assert (await enrol_faces(background)).person_id == "p"
    # Without a quality attribute the face is accepted.
    assert (await enrol_faces([make_face(people[2], TEST_MODEL, quality=None)])).quality == 0.0
    await expect_error(
        library.stub.EnrollFace(library_pb2.EnrollFaceRequest(account_id=A, library_id="staff", image_url="x")),
        *invalid,
        "'person_id' is required",
    )
    await expect_error(
        library.stub.EnrollFace(library_pb2.EnrollFaceRequest(account_id=A, library_id="nope", person_id="p")),
        *invalid,
        "'image_url' is required",
    )


async def test_enrolment_updates_name_and_metadata_and_caps_faces(library: LibraryHarness, people: np.ndarray) -> None:
    await create(library)
    library.service.settings.enrol.max_faces_per_person = 2
    library.decoder.images["u1"] = [make_face(people[0], TEST_MODEL)]
    request = library_pb2.EnrollFaceRequest(
        account_id=A,
        library_id="staff",
        person_id="p",
        name="Zhang Wei",
        image_url="u1",
        metadata_json='{"team":"eng"}',
    )
    await library.stub.EnrollFace(request)
    request.name, request.metadata_json = "", ""
    await library.stub.EnrollFace(request)
    person = await library.stub.GetPerson(library_pb2.GetPersonRequest(account_id=A, library_id="staff", person_id="p"))
    assert person.name == "Zhang Wei" and json.loads(person.metadata_json) == {"team": "eng"}
    await expect_error(library.stub.EnrollFace(request), grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "2 ref")
    request.metadata_json = "[1, 2]"
    await expect_error(
        library.stub.EnrollFace(request), grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "metadata"
    )


async def test_compare_scores_the_largest_faces(library: LibraryHarness, people: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    small_stranger = make_face(people[3], TEST_MODEL, bbox=(0, 0, 40, 40))
    library.decoder.images["a"] = [small_stranger, make_face(around(rng, people[:1])[0], TEST_MODEL)]
    library.decoder.images["b"] = [make_face(around(rng, people[:1])[0], TEST_MODEL, bbox=(0, 0, 300, 300))]
    library.decoder.images["c"] = [make_face(people[1], TEST_MODEL)]
    library.decoder.images["empty"] = []
    same = await library.stub.Compare(
        library_pb2.CompareRequest(account_id=A, source_image_url="a", target_image_url="b")
    )
    assert same.is_same_person and same.score >= 0.70 and same.threshold == pytest.approx(0.70)
    other = await library.stub.Compare(
        library_pb2.CompareRequest(account_id=A, source_image_url="a", target_image_url="c")
    )
    assert not other.is_same_person and other.score < 0.70
    # Compare and enrolment ask for faces of at least detect_min_face_size, or the largest smaller one of an image
    # without one (a 16 px face is compared, not reported as no face).
    assert {(r.options.min_face_size, r.options.largest_face_fallback) for r in library.decoder.requests} == {
        (20, True)
    }
    library.decoder.images["tiny"] = [make_face(around(rng, people[:1])[0], TEST_MODEL, bbox=(5, 5, 16, 16))]
    tiny = await library.stub.Compare(
        library_pb2.CompareRequest(account_id=A, source_image_url="b", target_image_url="tiny")
    )
    assert tiny.is_same_person
    await expect_error(
        library.stub.Compare(library_pb2.CompareRequest(account_id=A, source_image_url="a", target_image_url="empty")),
        grpc.StatusCode.FAILED_PRECONDITION,
        "no_faces_detected",
        "target_image_url",
    )


async def test_compare_decides_on_the_unrounded_score(library: LibraryHarness, people: np.ndarray) -> None:
    a = people[0] / np.linalg.norm(people[0])
    other = people[1] - (people[1] @ a) * a
    other /= np.linalg.norm(other)
    cosine = 0.4 - 0.0004 / 1.125  # the test calibration's slope below cosine 0.4: score 0.6996, shown as 0.700
    library.decoder.images["x"] = [make_face(a, TEST_MODEL)]
    library.decoder.images["y"] = [make_face(cosine * a + np.sqrt(1 - cosine**2) * other, TEST_MODEL)]
    result = await library.stub.Compare(
        library_pb2.CompareRequest(account_id=A, source_image_url="x", target_image_url="y")
    )
    assert result.score == pytest.approx(0.70) and not result.is_same_person


async def test_libraries_and_persons_are_listed_by_keyset_pages(library: LibraryHarness, people: np.ndarray) -> None:
    for i in range(5):
        await create(library, f"lib-{i}")
    await create(library, "theirs", account=B)
    seen, cursor = [], ""
    while True:
        page = await library.stub.ListLibraries(library_pb2.ListLibrariesRequest(account_id=A, limit=2, cursor=cursor))
        seen += [lib.library_id for lib in page.libraries]
        cursor = page.next_cursor
        if not cursor:
            break
    assert seen == [f"lib-{i}" for i in range(5)]
    for i in range(3):
        await enrol(library, people[i], f"person-{i}", library_id="lib-0")
    page = await library.stub.ListPersons(library_pb2.ListPersonsRequest(account_id=A, library_id="lib-0", limit=2))
    assert [p.person_id for p in page.persons] == ["person-0", "person-1"] and len(page.persons[0].faces) == 1
    rest = await library.stub.ListPersons(
        library_pb2.ListPersonsRequest(account_id=A, library_id="lib-0", limit=2, cursor=page.next_cursor)
    )
    assert [p.person_id for p in rest.persons] == ["person-2"] and rest.next_cursor == ""
    await expect_error(
        library.stub.ListPersons(library_pb2.ListPersonsRequest(account_id=A, library_id="lib-0", cursor="bogus!")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
        "cursor",
    )


async def test_library_create_update_conflicts_and_not_found(library: LibraryHarness) -> None:
    await create(library)
    await expect_error(create(library), grpc.StatusCode.FAILED_PRECONDITION, "conflict", "already exists")
    updated = await library.stub.UpdateLibrary(
        library_pb2.UpdateLibraryRequest(account_id=A, library_id="staff", description="all staff")
    )
    assert (updated.name, updated.description) == ("Staff", "all staff")
    await expect_error(
        library.stub.GetLibrary(library_pb2.GetLibraryRequest(account_id=A, library_id="missing")),
        grpc.StatusCode.NOT_FOUND,
        "not_found",
    )
    await expect_error(create(library, ""), grpc.StatusCode.INVALID_ARGUMENT, "invalid_request", "library_id")
