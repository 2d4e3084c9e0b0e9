"""Shared end-to-end fixtures: one local platform for the task and bad-input suites.

Media are served from 127.0.0.2, the only private address the platform may fetch from here besides its object
store's S3 port, so that redirects to 127.0.0.1 and to the cloud-metadata address are refused exactly as they would
be in production.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from facemint_local.harness import MEDIA_HOST, MediaServer, RunningPlatform, api_client, start_platform
from facemint_local.testmedia import encode, group_image
from tests.e2e.apiutil import submit, wait


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(
        tmp_path_factory.mktemp("platform"),
        extra_env={
            "FACEMINT_LOCAL_OBJECT_STORE_HOST": "127.0.0.3",
            "FACEMINT_LOCAL_OBSERVABILITY": "true",  # Prometheus too: tests/e2e/test_observability.py
            "FACEMINT_MEDIA_DECODER_FETCH__READ_TIMEOUT_SECONDS": "3",
            "FACEMINT_MEDIA_DECODER_FETCH__TOTAL_TIMEOUT_SECONDS": "20",
        },
    )
    yield running
    running.stop()


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    server = MediaServer(tmp_path_factory.mktemp("media"), host=MEDIA_HOST)
    yield server
    server.close()


@pytest.fixture(scope="session")
def api(platform: RunningPlatform) -> Iterator[httpx.Client]:
    with api_client(platform) as client:
        yield client


@pytest.fixture(scope="session")
def reference(api: httpx.Client, media: MediaServer) -> dict[str, Any]:
    """The group photo as JPEG, analysed with every attribute: the reference the other formats must agree with."""
    url = media.add("group.jpg", encode(group_image(), "JPEG", quality=95))
    task = wait(api, submit(api, type="image", media_url=url, attributes=["age", "gender", "emotion", "pose",
                                                                          "glasses", "mask", "quality", "landmarks"],
                            metadata={"order": 42}))  # fmt: skip
    assert task["status"] == "succeeded", task
    return task
