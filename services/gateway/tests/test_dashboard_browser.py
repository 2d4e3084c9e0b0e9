"""The dashboard end to end in headless Chromium (playwright-core), against a real gateway, orchestrator and store.

The browser signs in with an API key, creates, rotates and revokes keys, views a succeeded task's result drawn over
its image (the task is written to the database directly: no face models run in this test), starts a task through
the signed upload flow (presigned POST form to the S3 store) and another from a media URL, and meets the task limit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from conftest import GatewayStack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BROWSER_DIR = Path(__file__).parent / "browser"
CHROMIUM = Path("/usr/bin/chromium")
FACES = [
    {
        "face_id": "f_01",
        "bbox": [100, 120, 160, 200],
        "confidence": 0.98,
        "attributes": {"age": 31, "gender": "female"},
    },
    {"face_id": "f_02", "bbox": [380, 140, 120, 150], "confidence": 0.91, "attributes": {"emotion": "happy"}},
]
for _face in FACES:
    x, y, w, h = _face["bbox"]  # type: ignore[misc]
    _face["attributes"]["landmarks"] = [[x + w * i / 10, y + h * 0.4] for i in range(1, 10)]  # type: ignore[index]


def _node_modules() -> None:
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, check=True, capture_output=True)


@pytest.fixture
def media_server(tmp_path: Path) -> Iterator[str]:
    """A static HTTP server on 127.0.0.1 serving a 640x480 image at /people.png."""
    image = Image.new("RGB", (640, 480), (90, 110, 140))
    draw = ImageDraw.Draw(image)
    for face in FACES:
        x, y, w, h = face["bbox"]  # type: ignore[misc]
        draw.ellipse([x, y, x + w, y + h], fill=(224, 188, 160))
    image.save(tmp_path / "people.png")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def upload_gateway(start_upload_gateway: Callable[..., str]) -> str:
    """A third gateway process on the same database and orchestrator, with signed uploads configured."""
    return start_upload_gateway()


async def _insert_result_task(dsn: str, account: str, media_url: str) -> str:
    task_id = f"task_dash{uuid.uuid4().hex[:16]}"
    result: dict[str, Any] = {
        "frames": [{"timestamp": 0.0, "faces": FACES}],
        "face_tracks": [],
        "summary": {"total_faces": len(FACES), "unique_identities": 0},
    }
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO tasks (task_id, account_id, type, status, spec, media, result, completed_at,
                                  event_published)
               VALUES ($1, $2, 'image', 'succeeded', $3, $4, $5, now(), true)""",
            task_id,
            account,
            json.dumps({"type": "image", "media_url": media_url, "attributes": ["landmarks", "age"]}),
            json.dumps({"duration": None, "width": 640, "height": 480}),
            json.dumps(result),
        )
        await conn.execute(  # the orchestrator's bill of a succeeded image task: 1 second
            """INSERT INTO usage_monthly AS u (account_id, month, seconds, tasks)
               VALUES ($1, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 1, 1)
               ON CONFLICT (account_id, month) DO UPDATE SET seconds = u.seconds + 1, tasks = u.tasks + 1""",
            account,
        )
        await conn.execute("UPDATE tasks SET billed_seconds = 1 WHERE task_id = $1", task_id)
    finally:
        await conn.close()
    return task_id


async def test_dashboard_manages_keys_shows_results_and_starts_tasks(
    gateway_stack: GatewayStack, upload_gateway: str, media_server: str, tmp_path: Path
) -> None:
    if not CHROMIUM.exists() or shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("needs Debian chromium, node and npm: run `make system-deps`")
    _node_modules()
    account, key, key_id = gateway_stack.new_account()
    result_task = await _insert_result_task(gateway_stack.dsn, account, f"{media_server}/people.png")
    screenshots = tmp_path / "screenshots"
    screenshots.mkdir()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(tmp_path / "upload.png")
    env = os.environ | {
        "BASE_URL": upload_gateway,
        "API_KEY": key,
        "RESULT_TASK_ID": result_task,
        "RESULT_FACES": str(len(FACES)),
        "BOX_PIXEL": "100,220",
        "UPLOAD_FILE": str(tmp_path / "upload.png"),
        "SCREENSHOT_DIR": str(screenshots),
    }
    done = subprocess.run(
        ["node", "dashboard.mjs"], cwd=BROWSER_DIR, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"browser flow failed:\n{done.stdout}\n{done.stderr}"
    out = json.loads(done.stdout.strip().splitlines()[-1])

    assert account in out["who"] and out["minutes"].startswith("0.02 of 60")  # the result task: 1 s billed
    assert out["overlay"]["width"] == 640 and out["overlay"]["painted"] > 1000
    assert "2 face(s) in this frame" in out["summary"]
    assert "concurrent task limit reached" in out["limitMessage"]
    assert (screenshots / "result.png").stat().st_size > 0

    def status(raw: str) -> int:
        return httpx.get(gateway_stack.url + "/v1/usage", headers={"x-api-key": raw}).status_code

    assert status(key) == 200
    assert status(out["createdKey"]) == 200  # rotated with an hour of grace
    assert status(out["rotatedKey"]) == 401  # revoked in the browser
    listed = {
        k["key_id"]: k for k in httpx.get(gateway_stack.url + "/v1/keys", headers={"x-api-key": key}).json()["keys"]
    }
    assert listed[out["createdKeyId"]]["status"] == "rotated" and listed[out["revokedKeyId"]]["status"] == "revoked"
    assert listed[key_id]["status"] == "active"

    uploaded = httpx.get(f"{gateway_stack.url}/v1/task/{out['uploadTaskId']}", headers={"x-api-key": key}).json()
    media_url = uploaded["media"]["url"]
    assert media_url.startswith(f"http://127.0.0.1:{urlport(media_url)}/") and "X-Amz-Signature" in media_url
    fetched = httpx.get(media_url)
    assert fetched.status_code == 200 and fetched.content[:8] == b"\x89PNG\r\n\x1a\n"  # the bytes the browser posted


def urlport(url: str) -> int:
    """The port of an http URL."""
    return httpx.URL(url).port or 80
