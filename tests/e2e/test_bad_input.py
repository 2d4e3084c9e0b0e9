"""Bad input through the real REST API: each case gets its documented code and every service stays up."""

from __future__ import annotations

import contextlib
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from facemint_local.harness import MediaServer, RunningPlatform
from facemint_local.testmedia import encode, group_image
from tests.e2e.apiutil import submit, upload, wait
from tests.e2e.conftest import MEDIA_HOST

pytestmark = [pytest.mark.e2e]


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (tiny on disk, huge when decoded)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\x00" * (width + 1) * 64, 9)  # a few rows of zeros: the rest is missing
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class NastyServer:
    """Misbehaving origins on 127.0.0.2: redirects to forbidden addresses, endless bodies, silence."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if self.path == "/to-loopback":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:9/secret.jpg")
                    self.end_headers()
                elif self.path == "/to-metadata":
                    self.send_response(301)
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                    self.end_headers()
                elif self.path == "/forever.jpg":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.end_headers()
                    block = b"\xff\xd8\xff\xe0" + b"\0" * (1 << 20)
                    try:
                        while True:
                            self.wfile.write(block)
                    except OSError:
                        return
                elif self.path == "/silent.jpg":
                    time.sleep(30)
                else:
                    self.send_response(404)
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return None

        self.httpd = ThreadingHTTPServer((MEDIA_HOST, 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{MEDIA_HOST}:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def nasty() -> Iterator[NastyServer]:
    server = NastyServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def pids_before(platform: RunningPlatform) -> dict[str, int]:
    return {name: info["pid"] for name, info in platform.reload()["services"].items()}


def _truncated_jpeg() -> bytes:
    data = encode(group_image(), "JPEG", quality=90)
    return data[: len(data) // 3]


MEDIA_CASES = [
    ("truncated.jpg", _truncated_jpeg, "image", "invalid_media"),
    ("empty.jpg", lambda: b"", "image", "invalid_media"),
    ("bomb.png", lambda: _png_header_only(60000, 60000), "image", "invalid_media"),
    ("huge-header.png", lambda: _png_header_only(20000, 20000), "image", "invalid_media"),
    ("notes.mp4", lambda: b"these are my holiday notes, not a video\n" * 50, "video", "invalid_media"),
    ("photo-as-video.mp4", lambda: encode(group_image(), "JPEG"), "video", "invalid_media"),
]


@pytest.mark.parametrize(("name", "make", "kind", "code"), MEDIA_CASES, ids=[c[0] for c in MEDIA_CASES])
def test_bad_media_fails_the_task_with_its_code(
    api: httpx.Client, media: MediaServer, pids_before: dict[str, int], name: str, make: Any, kind: str, code: str
) -> None:
    task = wait(api, submit(api, type=kind, media_url=media.add(name, make())), timeout=60)
    assert task["status"] == "failed", task
    assert task["error"]["code"] == code and task["error"]["message"]


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("/to-loopback", "invalid_media", "127.0.0.1"),
        ("/to-metadata", "invalid_media", "169.254.169.254"),
        ("/forever.jpg", "payload_too_large", "byte limit"),
        ("/silent.jpg", "invalid_media", "time"),
    ],
)
def test_hostile_origins_are_refused(
    api: httpx.Client, nasty: NastyServer, pids_before: dict[str, int], path: str, code: str, words: str
) -> None:
    task = wait(api, submit(api, type="image", media_url=nasty.url(path)), timeout=90)
    assert task["status"] == "failed", task
    assert task["error"]["code"] == code, task["error"]
    assert words in task["error"]["message"].lower() or words in task["error"]["message"]


def test_direct_private_address_is_refused(api: httpx.Client, pids_before: dict[str, int]) -> None:
    task = wait(api, submit(api, type="image", media_url="http://10.1.2.3/x.jpg"), timeout=60)
    assert task["status"] == "failed" and task["error"]["code"] == "invalid_media"


def test_the_object_store_is_reachable_only_through_signed_s3_urls(
    platform: RunningPlatform, api: httpx.Client, pids_before: dict[str, int]
) -> None:
    # An upload of this account, then its bytes asked for on every other port of the object store, as another
    # tenant would through the filer (http://<store>:8888/buckets/<bucket>/<account>/<upload>): unsigned.
    data = encode(group_image(), "JPEG")
    uploaded = upload(api, "image", data)
    signed = urlsplit(uploaded["media_url"])
    store = platform.reload()["servers"]["object_store"]
    listening = {
        c.laddr.port
        for c in psutil.Process(store["pid"]).net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port != store["port"]
    }
    assert listening, "the object store listens on no other port"
    for port in sorted(listening):
        unsigned = f"http://{signed.hostname}:{port}/buckets{signed.path}"
        with contextlib.suppress(httpx.HTTPError):  # gRPC ports do not speak HTTP/1.1
            assert httpx.get(unsigned, timeout=5).content != data, f"port {port} serves the object unsigned"
        task = wait(api, submit(api, type="image", media_url=unsigned), timeout=60)
        assert task["status"] == "failed" and task["error"]["code"] == "invalid_media", (port, task)
        assert "loopback" in task["error"]["message"], (port, task["error"])
    # The signed URL on the S3 port itself still works.
    task = wait(api, submit(api, type="image", media_url=uploaded["media_url"]))
    assert task["status"] == "succeeded", task


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"media_url": "http://x/y.jpg"}', "missing required field 'type'"),
        (b'{"type": "image", "media_url": 42}', "'media_url' must be"),
        (b'{"type": "image", "media_url": "http://x/y.jpg", "sample_rate": "2"}', "sample_rate"),
    ],
)
def test_malformed_requests_get_invalid_request(api: httpx.Client, body: bytes, fragment: str) -> None:
    resp = api.post("/v1/create-detection-task", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "invalid_request" and fragment in error["message"] and error["request_id"]


def test_one_megabyte_metadata_is_refused(api: httpx.Client) -> None:
    body = {"type": "image", "media_url": "http://x/y.jpg", "metadata": {"blob": "x" * (1 << 20)}}
    resp = api.post("/v1/create-detection-task", json=body)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"


def test_missing_or_wrong_key_is_unauthorized(platform: RunningPlatform) -> None:
    for headers in ({}, {"x-api-key": "fm_aaaaaaaa_" + "b" * 32}, {"x-api-key": "nonsense"}):
        resp = httpx.get(f"{platform.gateway_url}/v1/tasks", headers=headers)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "unauthorized"


def test_unknown_task_is_not_found(api: httpx.Client) -> None:
    resp = api.get("/v1/task/task_doesnotexist")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_services_stayed_up_and_decoder_memory_stayed_bounded(
    platform: RunningPlatform, pids_before: dict[str, int], record_property: Any
) -> None:
    """Runs last in this module: no service restarted during the bad-input suite."""
    now = {name: info["pid"] for name, info in platform.reload()["services"].items()}
    assert now == pids_before
    status = Path(f"/proc/{now['media-decoder']}/status").read_text()
    peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
    record_property("media_decoder_peak_rss_mib", peak_kib // 1024)
    print(f"media-decoder peak RSS: {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 1_500_000  # the 60000 x 60000 bomb would need ~10 GiB if decoded
    assert psutil.pid_exists(now["media-decoder"])
