"""The SDKs, the CLI and the examples against the whole local platform.

- The TypeScript client generated from the OpenAPI document alone (``libs/facemint-js``) runs its smoke test with
  Node's test runner: create, wait, list, cancel, library enrol/recognise, compare (issue 15's acceptance).
- The Python SDK (sync and async), the ``facemint`` CLI and ``docs/examples`` do the same through their own code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from facemint_local import testmedia
from facemint_local.harness import MEDIA_HOST, MediaServer, RunningPlatform
from facemint_local.testmedia import encode, group_image
from facemint_sdk import AsyncFacemintClient, FacemintAPIError, FacemintClient, verify_webhook
from facemint_sdk.cli import main as cli

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "libs" / "facemint-js"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Local files: the six-face group photo, two photos of one person and one of another."""
    root = tmp_path_factory.mktemp("sdk-photos")
    files = {
        "group.jpg": encode(group_image(), "JPEG", quality=95),
        "a1.jpg": testmedia.read(testmedia.OBAMA[0]),
        "a2.jpg": testmedia.read(testmedia.OBAMA[1]),
        "b.jpg": testmedia.read(testmedia.BIDEN),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return {name.split(".")[0]: root / name for name in files}


@pytest.fixture(scope="module")
def long_video(media: MediaServer) -> str:
    """A 30 s video with a face throughout: still running when it is cancelled."""
    crop = testmedia.rgb(testmedia.OBAMA[0]).resize((160, 160), Image.Resampling.BICUBIC)
    data, _ = testmedia.moving_faces_video([crop], [(0.0, 30.0, (20, 20), (300, 100))], size=(480, 270),
                                           fps=10, seconds=30.0)  # fmt: skip
    return media.add("sdk-long.mp4", data)


@pytest.fixture(scope="module")
def sdk(platform: RunningPlatform) -> Iterator[FacemintClient]:
    with FacemintClient(platform.api_key, platform.gateway_url) as client:
        yield client


def test_typescript_client_generated_from_the_document_passes_the_smoke(
    platform: RunningPlatform, media: MediaServer, photos: dict[str, Path], long_video: str
) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed: make system-deps installs them"
    if not (JS / "node_modules" / ".package-lock.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=JS, check=True, timeout=300)
    env = {
        **os.environ,
        "FACEMINT_URL": platform.gateway_url,
        "FACEMINT_API_KEY": platform.api_key,
        "FACEMINT_TEST_MEDIA": json.dumps({
            "photo": str(photos["group"]),
            "face_a": media.add("js-a1.jpg", photos["a1"].read_bytes()),
            "face_a2": media.add("js-a2.jpg", photos["a2"].read_bytes()),
            "face_b": media.add("js-b.jpg", photos["b"].read_bytes()),
            "video": long_video,
        }),
    }  # fmt: skip
    run = subprocess.run([node, "--test", "test/"], cwd=JS, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "# fail 0" in run.stdout and "# skipped 0" in run.stdout and "# pass 6" in run.stdout, run.stdout[-3000:]


def test_python_sdk_detects_lists_cancels_recognises_and_compares(
    sdk: FacemintClient, photos: dict[str, Path], long_video: str
) -> None:
    task = sdk.detect_file(photos["group"], attributes=["age", "gender"], metadata={"sdk": "python"})
    assert task["status"] == "succeeded", task
    faces = task["result"]["frames"][0]["faces"]
    assert len(faces) == 6 and all(isinstance(f["attributes"]["age"], int) for f in faces)
    assert sdk.last_rate_limit is not None and sdk.last_rate_limit.limit > 0
    assert task["task_id"] in {t["task_id"] for t in sdk.list_tasks(status="succeeded", limit=100)["tasks"]}

    running = sdk.create_detection_task("video", long_video, sample_rate=10)
    assert sdk.cancel_task(running["task_id"])["status"] == "cancelled"
    assert sdk.wait_for_task(running["task_id"], timeout=60)["status"] == "cancelled"
    with pytest.raises(FacemintAPIError) as again:
        sdk.cancel_task(running["task_id"])
    assert (again.value.status, again.value.code) == (409, "conflict")

    library = f"py-{uuid.uuid4().hex[:8]}"
    assert sdk.create_library(library, name="Python SDK")["library_id"] == library
    face = sdk.enrol_face(library, "p_a", photos["a1"], name="Person A", metadata={"team": "sdk"})
    assert face["person_id"] == "p_a" and len(face["bbox"]) == 4
    assert [p["person_id"] for p in sdk.iter_persons(library)] == ["p_a"]
    assert [f["face_id"] for f in sdk.list_faces(library, "p_a")["faces"]] == [face["face_id"]]
    assert sdk.get_person(library, "p_a")["metadata"] == {"team": "sdk"}
    recognised = sdk.detect_file(photos["a2"], recognize=1, library_id=library)
    matches = recognised["result"]["frames"][0]["faces"][0]["identity"]["matches"]
    assert [m["person_id"] for m in matches] == ["p_a"] and matches[0]["name"] == "Person A"
    assert library in {lib["library_id"] for lib in sdk.iter_libraries()}
    assert sdk.update_library(library, description="renamed")["description"] == "renamed"

    same, different = sdk.compare(photos["a1"], photos["a2"]), sdk.compare(photos["a1"], photos["b"])
    assert same["is_same_person"] is True and different["is_same_person"] is False
    assert sdk.delete_face(library, "p_a", face["face_id"])["deleted"] is True
    assert sdk.delete_library(library)["deleted"] is True
    with pytest.raises(FacemintAPIError) as gone:
        sdk.get_library(library)
    assert gone.value.status == 404


def test_python_sdk_keys_usage_and_webhook_secret(sdk: FacemintClient, platform: RunningPlatform) -> None:
    key = sdk.create_key("sdk-test")
    assert key["key"].startswith("fm_")
    assert key["key_id"] in {k["key_id"] for k in sdk.list_keys()}
    with FacemintClient(key["key"], platform.gateway_url) as other:
        assert "minutes" in other.usage()
    assert sdk.revoke_key(key["key_id"])["status"] == "revoked"

    assert len(sdk.get_webhook_secret()["webhook_secret"]) >= 32


async def test_async_client_round_trip(platform: RunningPlatform, photos: dict[str, Path]) -> None:
    async with AsyncFacemintClient(platform.api_key, platform.gateway_url) as client:
        task = await client.detect_file(photos["group"])
        assert task["status"] == "succeeded" and len(task["result"]["frames"][0]["faces"]) == 6
        ids = [t["task_id"] async for t in client.iter_tasks(status="succeeded", page_size=5)]
        assert task["task_id"] in ids and len(ids) == len(set(ids))
        compared = await client.compare(photos["a1"], photos["b"])
        assert compared["is_same_person"] is False
        assert len((await client.get_webhook_secret())["webhook_secret"]) >= 32


def _cli(capsys: pytest.CaptureFixture[str], platform: RunningPlatform, *args: str) -> tuple[int, str]:
    code = cli([*args, "--url", platform.gateway_url, "--api-key", platform.api_key])
    out, err = capsys.readouterr()
    return code, out + err


def test_cli_detect_library_compare_and_tasks(
    platform: RunningPlatform, photos: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _cli(capsys, platform, "detect", str(photos["group"]), "--attributes", "age,gender")
    assert code == 0 and "6 face(s)" in out and "AGE" not in out and "age=" in out, out
    code, out = _cli(capsys, platform, "detect", str(photos["group"]), "--json")
    task = json.loads(out)
    assert code == 0 and task["status"] == "succeeded" and len(task["result"]["frames"][0]["faces"]) == 6

    library = f"cli-{uuid.uuid4().hex[:8]}"
    assert _cli(capsys, platform, "library", "create", library, "--name", "CLI")[0] == 0
    code, out = _cli(capsys, platform, "library", "enrol", library, "p_a", str(photos["a1"]), "--name", "Person A")
    assert code == 0 and "enrolled face" in out, out
    code, out = _cli(capsys, platform, "library", "list", "--limit", "100")
    assert code == 0 and library in out
    code, out = _cli(capsys, platform, "detect", str(photos["a2"]), "--library", library)
    assert code == 0 and "Person A (" in out, out

    code, out = _cli(capsys, platform, "compare", str(photos["a1"]), str(photos["a2"]))
    assert code == 0 and out.startswith("same person: score"), out
    code, out = _cli(capsys, platform, "compare", str(photos["a1"]), str(photos["b"]))
    assert code == 0 and out.startswith("different people"), out

    code, out = _cli(capsys, platform, "tasks", "list", "--status", "succeeded", "--limit", "1", "--json")
    assert code == 0 and len(json.loads(out)["tasks"]) == 1
    code, out = _cli(capsys, platform, "tasks", "get", "task_000000000000000000000000")
    assert code == 1 and "404 not_found" in out


def _example(name: str, platform: RunningPlatform, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACEMINT_URL": platform.gateway_url, "FACEMINT_API_KEY": platform.api_key}
    script = ROOT / "docs" / "examples" / name
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=300)


def test_examples_run_as_is(platform: RunningPlatform, photos: dict[str, Path]) -> None:
    run = _example("detect_photo.py", platform, str(photos["group"]))
    assert run.returncode == 0 and run.stdout.count("bbox=") == 6 and "'age'" in run.stdout, run.stdout + run.stderr
    library = f"ex-{uuid.uuid4().hex[:8]}"
    run = _example("enrol_and_recognise.py", platform, str(photos["a1"]), str(photos["a2"]), "--library", library,
                   "--person", "obama")  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("enrolled obama") and lines[1].endswith(")") and ": obama (score" in lines[1], lines


def test_verify_webhook_accepts_what_the_dispatcher_signs(
    sdk: FacemintClient, media: MediaServer, photos: dict[str, Path]
) -> None:
    """The helper verifies real deliveries (a receiver that records raw bodies and headers); the delivery is listed."""
    received: list[tuple[dict[str, str], bytes]] = []
    done = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's method name
            received.append((dict(self.headers.items()), self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            return None

    server = ThreadingHTTPServer((MEDIA_HOST, 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = media.add("sdk-verify.jpg", photos["b"].read_bytes())
        created = sdk.create_detection_task("image", url, callback_url=f"http://{MEDIA_HOST}:{server.server_port}/h")
        assert done.wait(120), "no delivery"
    finally:
        server.shutdown()
        server.server_close()
    headers, body = received[0]
    event = verify_webhook(sdk.get_webhook_secret()["webhook_secret"], headers, body)
    assert event["task_id"] == created["task_id"] and event["status"] == "succeeded"
    with pytest.raises(ValueError, match="signature"):
        verify_webhook("whsec_wrong", headers, body)
    deliveries = sdk.list_deliveries(created["task_id"])["deliveries"]
    assert deliveries and deliveries[0]["attempts"][0]["status_code"] == 204
