"""Outbound webhook requests through core's SSRF-safe client: no redirects, bounded time and response size."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import cast

from facemint_core.netsafe import (
    BlockedAddress,
    FetchError,
    FetchPolicy,
    InvalidUrl,
    SafeHttpClient,
    parse_endpoints,
    parse_networks,
)
from facemint_webhook_dispatcher.settings import WebhookSettings

USER_AGENT = "Facemint-Webhooks/1.0"


@dataclass(frozen=True)
class PostOutcome:
    """What one POST produced.

    Attributes:
        status_code: The response's HTTP status, or ``None`` when no response arrived in time.
        latency: Seconds from sending to the response headers (or to the failure).
        error: Why no response arrived (``""`` when one did).
        permanent: The request was refused by policy (scheme, address): retrying cannot succeed.
    """

    status_code: int | None
    latency: float
    error: str = ""
    permanent: bool = False


class WebhookSender:
    """POSTs signed bodies to callback URLs that the platform's outbound policy allows."""

    def __init__(self, settings: WebhookSettings) -> None:
        policy = FetchPolicy(
            allow=parse_networks(settings.allow_cidrs),
            allow_endpoints=parse_endpoints(settings.allow_endpoints),
            https_only=not settings.allow_http,
            connect_timeout=settings.timeout_seconds,
            read_timeout=settings.timeout_seconds,
            total_timeout=settings.timeout_seconds,
            max_redirects=0,
            user_agent=USER_AGENT,
        )
        self._client = SafeHttpClient(policy, max_connections=settings.concurrency)
        self._max_response_bytes = settings.max_response_bytes

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> PostOutcome:
        """POST ``body``; a redirect is returned as its 3xx status, never followed.

        The response body is read up to the configured cap and discarded; a failure while reading it does not change
        the outcome, which the status decides.
        """
        start = time.perf_counter()
        try:
            async with self._client.stream(
                url, method="POST", headers=headers, content=body, follow_redirects=False
            ) as response:
                latency = time.perf_counter() - start
                with contextlib.suppress(FetchError):
                    read = 0
                    async with contextlib.aclosing(cast(AsyncGenerator[bytes, None], response.iter_bytes())) as chunks:
                        async for chunk in chunks:
                            read += len(chunk)
                            if read >= self._max_response_bytes:
                                break
                return PostOutcome(response.status_code, latency)
        except (InvalidUrl, BlockedAddress) as exc:
            return PostOutcome(None, time.perf_counter() - start, f"refused: {exc}", permanent=True)
        except FetchError as exc:
            return PostOutcome(None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        """Close pooled connections."""
        await self._client.aclose()
