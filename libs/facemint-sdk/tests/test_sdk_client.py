"""FacemintClient and AdminClient against a real local HTTP server with scripted answers: headers, errors,
retries, polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from facemint_sdk import AdminClient, AsyncFacemintClient, FacemintAPIError, FacemintClient
from facemint_sdk._core import media_type

Handler = Callable[[httpx.Request], httpx.Response]
LIMIT_HEADERS = {"x-ratelimit-limit": "60", "x-ratelimit-remaining": "41", "x-ratelimit-reset": "1745229600"}


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    """An answer in the API's error envelope."""
    body = {"error": {"code": code, "message": message, "request_id": "req_1"}}
    return httpx.Response(status, json=body, headers=headers)


@contextlib.contextmanager
def scripted_server(handler: Handler) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 whose answers come from ``handler``; yields its base URL."""

    class Endpoint(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            request = httpx.Request(
                self.command,
                f"http://127.0.0.1{self.path}",
                headers=dict(self.headers),
                content=self.rfile.read(length),
            )
            response = handler(request)
            body = response.read()
            self.send_response(response.status_code)
            for key, value in response.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = do_PATCH = _serve  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def client(handler: Handler, **kwargs: float) -> Iterator[FacemintClient]:
    """A client whose requests are answered by ``handler`` over real HTTP."""
    with scripted_server(handler) as url, FacemintClient("fm_key", url, **kwargs) as api:  # type: ignore[arg-type]
        yield api


def test_create_task_sends_the_key_the_body_and_an_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"task_id": "task_1", "status": "queued"}, headers=LIMIT_HEADERS)

    with client(handler) as api:
        created = api.create_detection_task("video", "https://x/a.mp4", start_time=0, end_time=4, sample_rate=2)
        assert created["task_id"] == "task_1"
        assert api.last_rate_limit is not None and api.last_rate_limit.remaining == 41
    request = seen[0]
    assert request.url.path == "/v1/create-detection-task" and request.headers["x-api-key"] == "fm_key"
    assert json.loads(request.content) == {
        "type": "video",
        "media_url": "https://x/a.mp4",
        "start_time": 0,
        "end_time": 4,
        "sample_rate": 2,
    }
    assert len(request.headers["idempotency-key"]) == 36


def test_errors_carry_the_envelope_code() -> None:
    with client(lambda r: error(403, "forbidden", "task belongs to another account")) as api:
        with pytest.raises(FacemintAPIError) as caught:
            api.get_task("task_1")
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (403, "forbidden", "req_1")


def test_repeatable_requests_retry_after_429_and_503() -> None:
    answers = [error(429, "rate_limited", "slow down", **{"Retry-After": "0"}), error(503, "service_unavailable", "x")]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else httpx.Response(201, json={"task_id": "task_1"})

    with client(handler, max_retry_wait=1.0) as api:
        assert api.create_detection_task("image", "https://x/a.jpg")["task_id"] == "task_1"
    assert not answers


def test_a_long_retry_after_is_not_waited_for() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return error(429, "rate_limited", "monthly minutes exhausted", **{"Retry-After": "86400"})

    with client(handler) as api, pytest.raises(FacemintAPIError) as caught:
        api.create_detection_task("image", "https://x/a.jpg")
    assert caught.value.retry_after == 86400


def test_a_patch_is_not_retried_but_every_post_carries_a_fresh_idempotency_key() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return error(503, "service_unavailable", "down", **{"Retry-After": "0"})

    with client(handler) as api:
        with pytest.raises(FacemintAPIError):
            api.update_library("lib", name="x")
        assert len(calls) == 1
        with pytest.raises(FacemintAPIError):
            api.create_key("ci")
    keys = {r.headers.get("idempotency-key") for r in calls[1:]}
    assert len(calls) == 4 and len(keys) == 1 and None not in keys  # 1 + 2 retries of the same key


def test_wait_for_task_long_polls_until_terminal() -> None:
    statuses = ["queued", "running", "succeeded"]
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        waits.append(float(request.url.params["wait"]))
        return httpx.Response(200, json={"task_id": "task_1", "status": statuses.pop(0)})

    with client(handler) as api:
        assert api.wait_for_task("task_1", timeout=100)["status"] == "succeeded"
    assert len(waits) == 3 and all(25 < w <= 30 for w in waits)


def test_wait_for_task_times_out() -> None:
    with client(lambda r: httpx.Response(200, json={"status": "running"})) as api, pytest.raises(TimeoutError):
        api.wait_for_task("task_1", timeout=0.05)


def test_upload_posts_the_form_to_the_store_without_the_api_key(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    base: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v1/uploads":
            return httpx.Response(201, json={"upload_url": f"{base[0]}/store", "fields": {"key": "up/1"},
                                             "max_bytes": 100, "media_url": "http://store/up/1"})  # fmt: skip
        return httpx.Response(204)

    photo = tmp_path / "clip.mp4"
    photo.write_bytes(b"0123456789")
    with scripted_server(handler) as url, FacemintClient("fm_key", url) as api:
        base.append(url)
        assert api.media_url(photo) == "http://store/up/1"
        assert api.media_url("https://x/a.jpg") == "https://x/a.jpg"
        photo.write_bytes(b"x" * 101)
        with pytest.raises(ValueError, match="at most 100"):
            api.upload(photo)
    created, stored = seen[0], seen[1]
    assert json.loads(created.content) == {"type": "video", "filename": "clip.mp4"}
    assert stored.url.path == "/store" and "x-api-key" not in stored.headers
    assert b'name="key"' in stored.content and b"0123456789" in stored.content


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.JPG", "image"), ("b.gif", "gif"), ("c.mp4", "video"), ("https://s3/x/clip.MOV?X-Amz-Signature=1", "video"),
     ("https://s3/x/anim.gif?sig=a.jpg", "gif"), ("upload", "image")],
)  # fmt: skip
def test_the_task_type_comes_from_the_file_name_or_url_path(name: str, kind: str) -> None:
    assert media_type(name) == kind


async def test_async_client_retries_and_long_polls() -> None:
    answers = [error(429, "rate_limited", "slow down", **{"Retry-After": "0"})]
    statuses = ["running", "succeeded"]

    def handler(request: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop(0)
        return httpx.Response(200, json={"task_id": "task_1", "status": statuses.pop(0)}, headers=LIMIT_HEADERS)

    with scripted_server(handler) as url:
        async with AsyncFacemintClient("fm_key", url) as api:
            task = await api.wait_for_task("task_1", timeout=60)
            assert task["status"] == "succeeded" and api.last_rate_limit is not None
    assert not answers and not statuses


def test_admin_client_sends_the_bearer_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"plans": [{"plan": "free"}]})

    with scripted_server(handler) as url, AdminClient("secret", url) as admin:
        assert admin.plans() == [{"plan": "free"}]
    assert seen[0].headers["authorization"] == "Bearer secret" and seen[0].url.path == "/admin/v1/plans"


async def test_facemint_migrate_applies_then_reports_up_to_date(postgres_server) -> None:  # type: ignore[no-untyped-def]
    import asyncpg

    from facemint_sdk.cli import main

    admin = await asyncpg.connect(postgres_server.dsn)
    name = f"cli_{os.getpid()}_{int(time.time() * 1000)}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = postgres_server.dsn.rsplit("/", 1)[0] + f"/{name}"
    assert await asyncio.to_thread(main, ["migrate", "--dsn", dsn]) == 0
    conn = await asyncpg.connect(dsn)
    try:
        for schema in ("gateway", "orchestrator", "library", "webhook"):
            assert await conn.fetchval(f"SELECT count(*) FROM {schema}.schema_migrations") >= 1
    finally:
        await conn.close()
    assert await asyncio.to_thread(main, ["migrate", "--dsn", dsn]) == 0
    assert await asyncio.to_thread(main, ["migrate", "--dsn", "postgresql://nobody@127.0.0.1:9/none"]) == 1


@pytest.mark.parametrize(
    ("argv", "module"), [(["up"], "facemint_local.supervisor"), (["migrate"], "facemint_core.schemas")]
)
def test_platform_commands_explain_themselves_without_the_platform_packages(
    argv: list[str], module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from facemint_sdk.cli import main

    monkeypatch.setitem(sys.modules, module, None)  # as in an installation of the SDK alone
    assert main([*argv, "--dsn", "postgresql://x"] if argv == ["migrate"] else argv) == 2
    assert "needs a Facemint checkout" in capsys.readouterr().err
