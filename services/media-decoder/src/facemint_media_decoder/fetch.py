"""Download media into a spool file, safely: SSRF policy, byte cap enforced while streaming, timeouts.

Presigned S3/GCS URLs are ordinary https URLs whose query string holds the credentials; the query string is
never logged nor put in an error message (:func:`facemint_core.netsafe.redact_url`). The spool file is removed
when the ``fetch_to_spool`` block ends, whatever happens inside it.

A failure that an origin's restart explains (the connection refused, reset or broken, or HTTP 502, 503 or 504: the
object store coming back after a crash, a CDN node blipping) is retried with backoff for a few seconds before it
fails the media; every other failure fails it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from facemint_core.errors import FacemintError, InvalidMedia, InvalidRequest, PayloadTooLarge
from facemint_core.netsafe import (
    BlockedAddress,
    FetchError,
    FetchFailed,
    FetchTimeout,
    InvalidUrl,
    SafeHttpClient,
    TooLarge,
    TooManyRedirects,
    redact_url,
)
from facemint_core.tracing import set_attributes, span
from facemint_media_decoder.metrics import DecoderMetrics
from facemint_media_decoder.sniff import Kind

log = logging.getLogger(__name__)

_FLUSH_BYTES = 1 << 20
_RETRY_STATUSES = frozenset({502, 503, 504})
_FIRST_RETRY_DELAY_SECONDS = 0.25


def _retryable(exc: FetchError) -> bool:
    """True for failures that a restarting origin explains: no HTTP answer at all, or 502/503/504."""
    return isinstance(exc, FetchFailed) and (exc.status_code is None or exc.status_code in _RETRY_STATUSES)


@dataclass(frozen=True)
class Fetched:
    """A downloaded media file.

    Attributes:
        path: The spool file.
        size_bytes: Its size.
    """

    path: Path
    size_bytes: int


def _as_public_error(exc: FetchError, kind: Kind, max_bytes: int) -> tuple[str, FacemintError]:
    """The metrics reason and the public error of a fetch failure."""
    if isinstance(exc, TooLarge):
        return "too_large", PayloadTooLarge(f"the {kind.value} is larger than the {max_bytes}-byte limit for its type")
    if isinstance(exc, InvalidUrl):
        return "invalid_url", InvalidRequest(f"media_url is not usable: {exc}")
    if isinstance(exc, BlockedAddress):
        return "blocked", InvalidMedia(f"media_url points to an address that may not be fetched: {exc}")
    if isinstance(exc, TooManyRedirects):
        return "too_many_redirects", InvalidMedia(f"fetching media_url failed: {exc}")
    if isinstance(exc, FetchTimeout):
        return "timeout", InvalidMedia(f"fetching media_url timed out: {exc}")
    if isinstance(exc, FetchFailed) and exc.status_code is not None:
        return "http_status", InvalidMedia(f"fetching media_url failed: {exc}")
    return "network", InvalidMedia(f"fetching media_url failed: {exc}")


async def _download(
    client: SafeHttpClient, url: str, path: Path, max_bytes: int, kind: Kind, metrics: DecoderMetrics
) -> int:
    """Stream ``url`` into ``path`` (truncated first); the number of bytes written."""
    size = 0
    with open(path, "wb") as out:
        async with client.stream(url, max_bytes=max_bytes) as response:
            response.raise_for_status()
            buffered: list[bytes] = []
            pending = 0
            async for chunk in response.iter_bytes():
                buffered.append(chunk)
                pending += len(chunk)
                if pending >= _FLUSH_BYTES:
                    await asyncio.to_thread(out.write, b"".join(buffered))
                    size += pending
                    metrics.fetched_bytes.labels(kind.value).inc(pending)
                    buffered, pending = [], 0
            out.write(b"".join(buffered))  # under 1 MiB: a page-cache copy, cheaper than a thread hop
            size += pending
            metrics.fetched_bytes.labels(kind.value).inc(pending)
    return size


async def _download_within(
    client: SafeHttpClient,
    url: str,
    path: Path,
    max_bytes: int,
    kind: Kind,
    metrics: DecoderMetrics,
    budget_seconds: float | None,
    ends: float,
) -> int:
    """:func:`_download`, failed as ``invalid_media`` (a :class:`FetchTimeout`) at ``ends`` (``time.monotonic``)
    when there is a ``budget_seconds``."""
    if budget_seconds is None:
        return await _download(client, url, path, max_bytes, kind, metrics)
    try:
        async with asyncio.timeout(max(0.0, ends - time.monotonic())):
            return await _download(client, url, path, max_bytes, kind, metrics)
    except TimeoutError:
        raise FetchTimeout(
            f"the media host did not deliver it within the {budget_seconds:.1f} s this request allows for fetching"
        ) from None


@contextlib.asynccontextmanager
async def fetch_to_spool(
    client: SafeHttpClient,
    url: str,
    *,
    kind: Kind,
    max_bytes: int,
    spool_dir: Path,
    metrics: DecoderMetrics,
    retry_seconds: float = 0.0,
    budget_seconds: float | None = None,
) -> AsyncIterator[Fetched]:
    """Download ``url`` into a new file under ``spool_dir`` and yield it; the file is deleted afterwards.

    Args:
        client: The SSRF-safe client (its policy sets addresses, redirects and timeouts).
        url: The media URL (http, https, presigned object-store URL).
        kind: The declared kind, for messages and metrics.
        max_bytes: The byte cap of the kind; the download stops as soon as it is passed.
        spool_dir: Where the file goes.
        metrics: Where bytes, durations and failures are counted.
        retry_seconds: How long a refused, reset or broken connection, or a 502/503/504 answer, is retried (with
            doubling delays from 0.25 s) before it fails the media.
        budget_seconds: The most the whole fetch (retries included) may take, from the caller's deadline; None
            for the client's own timeouts only.

    Raises:
        PayloadTooLarge: The media is larger than ``max_bytes``.
        InvalidRequest: The URL is malformed or not http(s).
        InvalidMedia: Any other fetch failure (blocked address, redirects, timeout, HTTP status, network).
    """
    fd, name = tempfile.mkstemp(prefix="media-", suffix=".part", dir=spool_dir)
    os.close(fd)
    path = Path(name)
    started = time.perf_counter()
    give_up = time.monotonic() + retry_seconds
    ends = time.monotonic() + (budget_seconds or 0.0)  # the budget covers the retries too
    delay = _FIRST_RETRY_DELAY_SECONDS
    while True:
        try:
            with span("media.fetch", {"facemint.media.kind": kind.value}) as fetch_span:
                size = await _download_within(client, url, path, max_bytes, kind, metrics, budget_seconds, ends)
                set_attributes(fetch_span, {"facemint.media.size_bytes": size})
            break
        except FetchError as exc:
            reason, public = _as_public_error(exc, kind, max_bytes)
            metrics.fetch_errors.labels(reason).inc()
            if _retryable(exc) and time.monotonic() + delay <= give_up:
                extra = {"url": redact_url(url), "reason": reason, "error": str(exc), "delay_seconds": delay}
                log.info("media fetch failed; retrying", extra=extra)
                await asyncio.sleep(delay)
                delay *= 2
                continue
            path.unlink(missing_ok=True)
            log.info("media fetch failed", extra={"url": redact_url(url), "reason": reason, "error": str(exc)})
            raise public from None
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    metrics.fetch_seconds.observe(time.perf_counter() - started)
    log.info("media fetched", extra={"url": redact_url(url), "size_bytes": size, "kind": kind.value})
    try:
        yield Fetched(path, size)
    finally:
        path.unlink(missing_ok=True)
