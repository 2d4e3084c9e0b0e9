"""Downloading media into the spool: byte caps while streaming, SSRF refusals, timeouts, no query strings in logs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from decoder_testkit import MediaServer, Route, RouteToLoopback, VideoSpec, public_resolver, video

from facemint_core.errors import InvalidMedia, InvalidRequest, PayloadTooLarge
from facemint_core.netsafe import FetchPolicy, SafeHttpClient
from facemint_local.procs import free_port
from facemint_media_decoder.fetch import fetch_to_spool
from facemint_media_decoder.metrics import DecoderMetrics
from facemint_media_decoder.sniff import Kind


def counter(metrics: DecoderMetrics, name: str, **labels: str) -> float:
    """The value of a ``facemint_media_decoder_<name>_total`` sample."""
    return metrics.registry.get_sample_value(f"facemint_media_decoder_{name}_total", labels) or 0.0


async def test_media_is_spooled_and_removed_afterwards(
    media_server: MediaServer, http_client: SafeHttpClient, metrics: DecoderMetrics, tmp_path: Path
) -> None:
    clip = video(tmp_path / "clip.mp4", VideoSpec(frames=10))
    url = media_server.serve("/bucket/clip.mp4?X-Amz-Signature=s3cr3t&X-Amz-Expires=60", clip)
    spool = tmp_path / "spool"
    spool.mkdir()
    async with fetch_to_spool(
        http_client, url, kind=Kind.VIDEO, max_bytes=10_000_000, spool_dir=spool, metrics=metrics
    ) as fetched:
        assert fetched.path.parent == spool
        assert fetched.path.read_bytes() == clip.read_bytes()
        assert fetched.size_bytes == clip.stat().st_size
    assert list(spool.iterdir()) == []
    assert counter(metrics, "fetched_bytes", kind="video") == clip.stat().st_size


async def test_query_string_of_a_presigned_url_is_never_logged(
    media_server: MediaServer,
    http_client: SafeHttpClient,
    metrics: DecoderMetrics,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = media_server.serve("/ok.bin?X-Amz-Signature=s3cr3t", b"abc")
    missing = media_server.base_url + "/missing.bin?X-Goog-Signature=s3cr3t"
    caplog.set_level(logging.DEBUG)
    async with fetch_to_spool(http_client, url, kind=Kind.IMAGE, max_bytes=100, spool_dir=tmp_path, metrics=metrics):
        pass
    with pytest.raises(InvalidMedia, match="HTTP 404") as info:
        async with fetch_to_spool(
            http_client, missing, kind=Kind.IMAGE, max_bytes=100, spool_dir=tmp_path, metrics=metrics
        ):
            pass
    logged = " ".join(str(record.__dict__) for record in caplog.records)
    assert "/ok.bin" in logged and "/missing.bin" in logged
    assert "s3cr3t" not in logged and "s3cr3t" not in str(info.value)
    assert counter(metrics, "fetch_errors", reason="http_status") == 1


@pytest.mark.parametrize(
    ("kind", "cap"), [(Kind.IMAGE, 50 * 2**20), (Kind.ANIMATED, 200 * 2**20), (Kind.VIDEO, 2048 * 2**20)]
)
async def test_endless_body_stops_at_the_cap_of_its_kind(
    media_server: MediaServer,
    http_client: SafeHttpClient,
    metrics: DecoderMetrics,
    tmp_path: Path,
    kind: Kind,
    cap: int,
) -> None:
    url = media_server.serve("/forever.jpg", Route(forever=True, content_type="image/jpeg"))
    small_cap = cap // 1024  # the product caps, scaled down 1024 times to keep the test fast
    with pytest.raises(PayloadTooLarge, match=f"larger than the {small_cap}-byte limit"):
        async with fetch_to_spool(
            http_client, url, kind=kind, max_bytes=small_cap, spool_dir=tmp_path, metrics=metrics
        ):
            pass
    assert list(tmp_path.iterdir()) == []
    assert counter(metrics, "fetch_errors", reason="too_large") == 1


async def test_declared_length_over_the_cap_is_refused_before_download(
    media_server: MediaServer, http_client: SafeHttpClient, metrics: DecoderMetrics, tmp_path: Path
) -> None:
    url = media_server.serve("/big.png", b"x" * 5000)
    with pytest.raises(PayloadTooLarge):
        async with fetch_to_spool(
            http_client, url, kind=Kind.IMAGE, max_bytes=4999, spool_dir=tmp_path, metrics=metrics
        ):
            pass


async def test_server_that_never_answers_times_out(
    media_server: MediaServer, http_client: SafeHttpClient, metrics: DecoderMetrics, tmp_path: Path
) -> None:
    url = media_server.serve("/hang.mp4", Route(hang=True))
    with pytest.raises(InvalidMedia, match="timed out"):
        async with fetch_to_spool(
            http_client, url, kind=Kind.VIDEO, max_bytes=10**6, spool_dir=tmp_path, metrics=metrics
        ):
            pass
    assert counter(metrics, "fetch_errors", reason="timeout") == 1


@pytest.mark.parametrize(
    ("target", "reason"),
    [("http://127.0.0.1:{port}/secret", "loopback"), ("http://169.254.169.254/latest/meta-data/", "metadata")],
)
async def test_redirect_to_internal_addresses_is_refused(
    media_server: MediaServer, metrics: DecoderMetrics, tmp_path: Path, target: str, reason: str
) -> None:
    port = media_server.server_address[1]
    media_server.serve("/secret", b"internal only")
    media_server.serve("/media.jpg", Route(redirect=target.format(port=port)))
    router = RouteToLoopback()
    # An empty allow-list: only public addresses. cdn.example resolves to a public address that the test
    # network backend routes to the local server; the redirect then points at 127.0.0.1 or the metadata service.
    async with SafeHttpClient(FetchPolicy(), resolver=public_resolver, network_backend=router) as client:
        with pytest.raises(InvalidMedia, match=f"may not be fetched: .*{reason}"):
            async with fetch_to_spool(
                client, f"http://cdn.example:{port}/media.jpg", kind=Kind.IMAGE, max_bytes=10**6,
                spool_dir=tmp_path, metrics=metrics,
            ):  # fmt: skip
                pass
    assert media_server.requested == ["/media.jpg"]
    assert "127.0.0.1" not in router.dialed and "169.254.169.254" not in router.dialed
    assert counter(metrics, "fetch_errors", reason="blocked") == 1


async def test_loopback_url_is_refused_without_allow_list(
    media_server: MediaServer, metrics: DecoderMetrics, tmp_path: Path
) -> None:
    url = media_server.serve("/a.jpg", b"x")
    async with SafeHttpClient(FetchPolicy()) as client:
        with pytest.raises(InvalidMedia, match="loopback"):
            async with fetch_to_spool(client, url, kind=Kind.IMAGE, max_bytes=10, spool_dir=tmp_path, metrics=metrics):
                pass
    assert media_server.requested == []


@pytest.mark.parametrize("url", ["ftp://example.com/a.mp4", "not a url", "file:///etc/passwd"])
async def test_non_http_url_is_an_invalid_request(
    http_client: SafeHttpClient, metrics: DecoderMetrics, tmp_path: Path, url: str
) -> None:
    with pytest.raises(InvalidRequest):
        async with fetch_to_spool(http_client, url, kind=Kind.VIDEO, max_bytes=10, spool_dir=tmp_path, metrics=metrics):
            pass


class _LateOrigin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's method name
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return None


async def test_refused_connection_is_retried_until_the_origin_is_back(
    http_client: SafeHttpClient, metrics: DecoderMetrics, tmp_path: Path
) -> None:
    """An object store restarting after a crash refuses connections for a few seconds: the fetch waits it out."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/bucket/a.bin"

    async def fetch() -> bytes:
        async with fetch_to_spool(
            http_client, url, kind=Kind.IMAGE, max_bytes=100, spool_dir=tmp_path, metrics=metrics, retry_seconds=5
        ) as fetched:
            return fetched.path.read_bytes()

    fetching = asyncio.create_task(fetch())
    await asyncio.sleep(0.6)
    assert not fetching.done()
    origin = ThreadingHTTPServer(("127.0.0.1", port), _LateOrigin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    try:
        assert await asyncio.wait_for(fetching, 10) == b"hello"
    finally:
        origin.shutdown()
        origin.server_close()
    assert counter(metrics, "fetch_errors", reason="network") >= 1


async def test_refused_connection_fails_the_media_once_the_retry_budget_is_spent(
    http_client: SafeHttpClient, metrics: DecoderMetrics, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}/gone.bin"
    started = time.monotonic()
    with pytest.raises(InvalidMedia, match="fetching media_url failed"):
        async with fetch_to_spool(
            http_client, url, kind=Kind.IMAGE, max_bytes=100, spool_dir=tmp_path, metrics=metrics, retry_seconds=1
        ):
            pass
    assert 0.7 <= time.monotonic() - started < 3  # retried after 0.25 s and 0.5 s; the next 1 s would pass the budget
    assert counter(metrics, "fetch_errors", reason="network") == 3
    assert list(tmp_path.iterdir()) == []


async def test_http_404_is_not_retried(
    media_server: MediaServer, http_client: SafeHttpClient, metrics: DecoderMetrics, tmp_path: Path
) -> None:
    missing = media_server.base_url + "/missing.bin"
    with pytest.raises(InvalidMedia, match="HTTP 404"):
        async with fetch_to_spool(
            http_client, missing, kind=Kind.IMAGE, max_bytes=100, spool_dir=tmp_path, metrics=metrics, retry_seconds=5
        ):
            pass
    assert media_server.requested == ["/missing.bin"]
