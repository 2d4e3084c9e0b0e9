"""Fixtures of the media-decoder tests: a local media server, a fetch client, a decoder, fresh metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from decoder_testkit import MediaServer
from prometheus_client import CollectorRegistry

from facemint_core.netsafe import FetchPolicy, SafeHttpClient, parse_networks
from facemint_media_decoder.decode import DecodeLimits, MediaDecoder
from facemint_media_decoder.metrics import DecoderMetrics


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    """A media HTTP server on 127.0.0.1."""
    server = MediaServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def http_client() -> AsyncIterator[SafeHttpClient]:
    """A fetch client whose policy admits 127.0.0.1 only (the media server), with short timeouts."""
    policy = FetchPolicy(
        allow=parse_networks(["127.0.0.1/32"]), connect_timeout=2.0, read_timeout=1.0, total_timeout=10.0
    )
    async with SafeHttpClient(policy) as client:
        yield client


@pytest.fixture
def decoder() -> MediaDecoder:
    """A decoder with the product's default caps."""
    return MediaDecoder(DecodeLimits())


@pytest.fixture
def metrics() -> DecoderMetrics:
    """Decoder metrics in a registry of their own."""
    return DecoderMetrics(CollectorRegistry())
