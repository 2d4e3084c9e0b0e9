"""The images run the whole platform under docker compose (``make test-images``, issue #17).

``make test-images`` builds every image (and the stand-in servers) first; this module brings ``deploy/compose`` up
with the stand-in override under a project name of its own, waits until every container is healthy, then drives the
platform through the gateway's published port only: an image task with every attribute, a GIF, a video, library
enrol + recognition, compare, a signed webhook, and a video task that survives ``docker kill`` of the orchestrator and
inference containers. ``docker compose down -v`` must leave no container, volume or network of the project behind.
Media and webhooks are served from this machine on the compose network's gateway address: no traffic leaves it.
The time from ``up`` to ready is written to ``bench/results/images.json`` beside the build figures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from facemint_local.harness import MediaServer
from facemint_local.procs import free_port
from facemint_local.testmedia import animated, encode, group_image, moving_faces_video
from tests.e2e.apiutil import submit, wait

pytestmark = [pytest.mark.images, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose"
REPORT = ROOT / "bench" / "results" / "images.json"
PRIVATE = '["10.0.0.0/8","172.16.0.0/12","192.168.0.0/16"]'
ATTRIBUTES = ["age", "gender", "emotion", "pose", "glasses", "mask", "quality", "landmarks"]


def compose_command() -> list[str]:
    """``docker compose`` (v2) where the plugin exists, else Debian's ``docker-compose`` (1.29)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed (make system-deps)")


@dataclass
class Stack:
    """A running compose project."""

    project: str
    cmd: list[str]
    gateway_url: str
    admin_token: str
    host_ip: str
    ready_seconds: float

    def container(self, service: str) -> str:
        """The id of the service's container."""
        out = subprocess.run([*self.cmd, "ps", "-q", service], capture_output=True, text=True, check=True)
        return out.stdout.strip()


def _compose(project: str, env_file: Path) -> list[str]:
    files = ["-f", str(COMPOSE / "compose.yaml"), "-f", str(COMPOSE / "compose.standins.yaml")]
    return [*compose_command(), "-p", project, "--env-file", str(env_file), *files]


def _health(container: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "--format", "{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}"
         "{{end}}", container],
        capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip()


def _wait_healthy(cmd: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ids = subprocess.run([*cmd, "ps", "-q"], capture_output=True, text=True, check=True).stdout.split()
        states = {c: _health(c) for c in ids}
        long_running = [s for s in states.values() if s != "exited"]
        if len(long_running) == 9 and all(s == "healthy" for s in long_running):
            return
        time.sleep(1)
    logs = subprocess.run([*cmd, "logs", "--tail", "30"], capture_output=True, text=True).stdout
    raise AssertionError(f"not healthy after {timeout:.0f} s: {states}\n{logs[-6000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    project = f"facemint-imagetest-{os.getpid()}"
    env_file = tmp_path_factory.mktemp("compose") / "facemint.env"
    admin_token = secrets.token_urlsafe(24)
    port = free_port()
    env_file.write_text(
        f"FACEMINT_POSTGRES_PASSWORD={secrets.token_hex(16)}\nFACEMINT_S3_ACCESS_KEY={secrets.token_hex(8)}\n"
        f"FACEMINT_S3_SECRET_KEY={secrets.token_hex(16)}\nFACEMINT_ADMIN_TOKEN={admin_token}\n"
        f"FACEMINT_GATEWAY_PORT={port}\nFACEMINT_ALLOW_HTTP_CALLBACKS=true\n"
        f"FACEMINT_FETCH_ALLOW_CIDRS={PRIVATE}\nFACEMINT_CALLBACK_ALLOW_CIDRS={PRIVATE}\n"
    )
    cmd = _compose(project, env_file)
    started = time.monotonic()
    try:
        subprocess.run([*cmd, "up", "-d"], check=True)
        _wait_healthy(cmd, 420)
        ready = time.monotonic() - started
        label = f"label=com.docker.compose.project={project}"
        network = subprocess.run(
            ["docker", "network", "ls", "-q", "--filter", label], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        host_ip = subprocess.run(
            ["docker", "network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", network],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        yield Stack(project, cmd, f"http://127.0.0.1:{port}", admin_token, host_ip, ready)
    finally:
        subprocess.run([*cmd, "down", "-v", "--remove-orphans"], check=False)
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert not left and not volumes, f"left behind: containers {left}, volumes {volumes}"


@pytest.fixture(scope="module")
def media(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    server = MediaServer(tmp_path_factory.mktemp("media"), host=stack.host_ip)
    yield server
    server.close()


@pytest.fixture(scope="module")
def account(stack: Stack) -> dict[str, Any]:
    resp = httpx.post(
        f"{stack.gateway_url}/admin/v1/accounts",
        json={"name": "Image test", "plan": "scale"},
        headers={"authorization": f"Bearer {stack.admin_token}"},
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


@pytest.fixture(scope="module")
def api(stack: Stack, account: dict[str, Any]) -> Iterator[httpx.Client]:
    key = account["api_key"]["key"]
    with httpx.Client(base_url=stack.gateway_url, headers={"x-api-key": key}, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def reference(api: httpx.Client, media: MediaServer) -> dict[str, Any]:
    url = media.add("group.jpg", encode(group_image(), "JPEG", quality=95))
    task = wait(api, submit(api, type="image", media_url=url, attributes=ATTRIBUTES), timeout=300)
    assert task["status"] == "succeeded", task
    return task


def _crop(reference: dict[str, Any], index: int, size: int = 260, margin: float = 0.4) -> Any:
    faces = sorted(reference["result"]["frames"][0]["faces"], key=lambda f: f["bbox"][0])
    x, y, w, h = faces[index]["bbox"]
    m = int(margin * max(w, h))
    return group_image().crop((x - m, y - m, x + w + m, y + h + m)).resize((size, size))


def test_compose_up_reaches_ready_and_is_recorded(stack: Stack) -> None:
    report = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    report["compose_up_to_ready_seconds"] = round(stack.ready_seconds, 1)
    report["compose"] = " ".join(stack.cmd[: 2 if stack.cmd[0] == "docker" else 1])
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    assert httpx.get(f"{stack.gateway_url}/readyz").status_code == 200


def test_image_task_has_every_attribute(reference: dict[str, Any]) -> None:
    faces = reference["result"]["frames"][0]["faces"]
    assert len(faces) == 6
    for face in faces:
        attrs = face["attributes"]
        assert 0 <= attrs["age"] <= 100 and attrs.get("gender", "male") in ("male", "female")  # omitted if unsure
        assert attrs["emotion"] in ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful")
        assert set(attrs["pose"]) == {"yaw", "pitch", "roll"}
        assert isinstance(attrs["glasses"], bool) and isinstance(attrs["mask"], bool)
        assert 0 <= attrs["quality"] <= 1 and len(attrs["landmarks"]) == 106


def test_gif_task(api: httpx.Client, media: MediaServer, reference: dict[str, Any]) -> None:
    crop = _crop(reference, 0, size=160)
    frames = []
    for shown in (True, False, True):
        canvas = group_image().crop((0, 0, 400, 300)).resize((400, 300))
        canvas.paste((200, 200, 200), (0, 0, 400, 300))
        if shown:
            canvas.paste(crop, (120, 70))
        frames.append(canvas)
    url = media.add("anim.gif", animated(frames, [500, 500, 500], "GIF"))
    task = wait(api, submit(api, type="gif", media_url=url, sample_rate=2))
    assert task["status"] == "succeeded", task
    assert [len(f["faces"]) for f in task["result"]["frames"]] == [1, 0, 1]


def test_video_task(api: httpx.Client, media: MediaServer, reference: dict[str, Any]) -> None:
    data, _ = moving_faces_video([_crop(reference, 2, size=180)], [(0.0, 4.0, (40, 100), (500, 120))], seconds=4.0)
    task = wait(api, submit(api, type="video", media_url=media.add("short.mp4", data), sample_rate=2))
    assert task["status"] == "succeeded", task
    assert [f["timestamp"] for f in task["result"]["frames"]] == [i * 0.5 for i in range(8)]
    assert all(len(f["faces"]) == 1 for f in task["result"]["frames"])


def test_library_enrol_and_recognition(api: httpx.Client, media: MediaServer, reference: dict[str, Any]) -> None:
    assert api.post("/v1/library", json={"library_id": "staff", "name": "Staff"}).status_code == 201
    enrolled = api.post(
        "/v1/library/staff/face",
        json={"person_id": "p_left", "name": "Leftmost",
              "image_url": media.add("left.jpg", encode(_crop(reference, 0), "JPEG", quality=95))},
    )  # fmt: skip
    assert enrolled.status_code == 201, enrolled.text
    url = media.add("group-recognise.jpg", encode(group_image(), "JPEG", quality=95))
    task = wait(api, submit(api, type="image", media_url=url, recognize=1, library_id="staff", top_k=3))
    assert task["status"] == "succeeded", task
    faces = sorted(task["result"]["frames"][0]["faces"], key=lambda f: f["bbox"][0])
    assert [m["person_id"] for m in faces[0]["identity"]["matches"]] == ["p_left"]
    assert all(f["identity"] == {"matches": []} for f in faces[1:])


def test_compare(api: httpx.Client, media: MediaServer, reference: dict[str, Any]) -> None:
    a = media.add("cmp-a.jpg", encode(_crop(reference, 1), "JPEG", quality=95))
    a_again = media.add("cmp-a2.jpg", encode(_crop(reference, 1, margin=0.6), "JPEG", quality=95))
    b = media.add("cmp-b.jpg", encode(_crop(reference, 4), "JPEG", quality=95))
    same = api.post("/v1/compare", json={"source_image_url": a, "target_image_url": a_again})
    assert same.status_code == 200 and same.json()["is_same_person"] is True, same.text
    different = api.post("/v1/compare", json={"source_image_url": a, "target_image_url": b})
    assert different.status_code == 200 and different.json()["is_same_person"] is False, different.text


class _Receiver:
    """Records webhook deliveries (headers and raw body) on the compose network's gateway address."""

    def __init__(self, host: str) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        received = self.deliveries

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def test_webhook_is_delivered_with_a_valid_signature(
    stack: Stack, api: httpx.Client, media: MediaServer, account: dict[str, Any]
) -> None:
    receiver = _Receiver(stack.host_ip)
    try:
        url = media.add("hook.jpg", encode(group_image(), "JPEG", quality=90))
        task_id = submit(api, type="image", media_url=url, callback_url=receiver.url)
        deadline = time.monotonic() + 120
        while not receiver.deliveries and time.monotonic() < deadline:
            time.sleep(0.3)
    finally:
        receiver.httpd.shutdown()
        receiver.httpd.server_close()
    assert receiver.deliveries, "no webhook delivery"
    headers, body = receiver.deliveries[0]
    secret = account.get("webhook_secret") or account["account"]["webhook_secret"]
    expected = hmac.new(secret.encode(), headers["x-facemint-timestamp"].encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(headers["x-facemint-signature"], expected.hexdigest())
    assert json.loads(body)["task_id"] == task_id


def test_video_task_survives_docker_kill_of_orchestrator_and_inference(
    stack: Stack, api: httpx.Client, media: MediaServer, reference: dict[str, Any]
) -> None:
    data, _ = moving_faces_video([_crop(reference, 2, size=180)], [(0.0, 12.0, (20, 40), (700, 300))], seconds=12.0)
    task_id = submit(api, type="video", media_url=media.add("survive.mp4", data), sample_rate=5)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        resp = api.get(f"/v1/task/{task_id}")
        doc = resp.json() if resp.status_code == 200 else {}
        if doc.get("status") == "running" and doc.get("progress", {}).get("frames_done", 0) >= 2:
            break
        time.sleep(0.2)
    orchestrator, inference = stack.container("task-orchestrator"), stack.container("inference")
    subprocess.run(["docker", "kill", orchestrator, inference], check=True, capture_output=True)
    # Docker's restart policy leaves a container that `docker kill` stopped alone: start them as an operator would,
    # inference 10 s later (plus its model loading), so that the job meets an inference outage and must retry.
    subprocess.run(["docker", "start", orchestrator], check=True, capture_output=True)
    time.sleep(10)
    subprocess.run(["docker", "start", inference], check=True, capture_output=True)
    task = wait(api, task_id, timeout=300)
    assert task["status"] == "succeeded", task.get("error")
    assert [f["timestamp"] for f in task["result"]["frames"]] == [round(i * 0.2, 3) for i in range(60)]
    listed = api.get("/v1/tasks", params={"limit": 100}).json()["tasks"]
    assert [t["task_id"] for t in listed].count(task_id) == 1
