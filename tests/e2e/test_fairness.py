"""One account's costly media must not stall another account's image (issue #13, item 3).

A free-plan account submits the two files of the report: a 5 KB GIF of 230 frames on a 4096x4096 canvas and a
20-minute 32x32 video. While the video runs, another account's small image must finish without waiting for it: in
well under a second more than its idle latency, measured in the same run just before (on main it waited behind
both, 156 s in the report). The issue's figure, within 3x the idle latency, is measured rather than asserted here,
since a ratio of two sub-second timings swings with the load of a 2-core CI machine: `make bench-fairness` reports it
(2.2x, bench/results/fairness-2026-12-02.md). And the GIF must be refused by its work budget rather than hold a
worker for minutes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from facemint_local.harness import MediaServer, RunningPlatform, account_client
from facemint_local.testmedia import encode, group_image, long_tiny_video, sparse_canvas_gif
from tests.e2e.apiutil import submit, wait

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def abuser(platform: RunningPlatform) -> Iterator[httpx.Client]:
    with account_client(platform, "Costly media", "free") as client:
        yield client


def image_seconds(api: httpx.Client, url: str, runs: int, timeout: float = 120) -> float:
    """Median seconds from submit to ``succeeded`` over ``runs`` image tasks, one after the other (long polls, so
    that the end is seen when it happens)."""
    seconds = []
    for _ in range(runs):
        started = time.monotonic()
        task_id = submit(api, type="image", media_url=url)
        while (task := api.get(f"/v1/task/{task_id}", params={"wait": 5}).json())["status"] in ("queued", "running"):
            assert time.monotonic() - started < timeout, f"image task {task_id} not finished after {timeout:.0f} s"
        seconds.append(time.monotonic() - started)
        assert task["status"] == "succeeded", task
    return statistics.median(seconds)


def test_an_image_finishes_within_3x_its_idle_latency_while_another_account_sends_costly_media(
    api: httpx.Client, abuser: httpx.Client, media: MediaServer
) -> None:
    image = media.add("fair-group.jpg", encode(group_image(), "JPEG", quality=90))
    gif = media.add("sparse-canvas.gif", sparse_canvas_gif())
    video = media.add("long-tiny.mp4", long_tiny_video())
    image_seconds(api, image, 1)  # warm-up
    idle = image_seconds(api, image, 5)

    costly = [submit(abuser, type="gif", media_url=gif), submit(abuser, type="video", media_url=video)]
    try:
        deadline = time.monotonic() + 60
        while abuser.get(f"/v1/task/{costly[1]}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the video never started"
            time.sleep(0.2)
        loaded = image_seconds(api, image, 5, timeout=3 * idle + 30)
        assert loaded <= idle + 1.0, f"image: {loaded:.2f} s with another account's costly media, {idle:.2f} s idle"
        assert abuser.get(f"/v1/task/{costly[1]}").json()["status"] == "running"  # it did not wait for the video
        refused = wait(abuser, costly[0], timeout=60)
        assert refused["status"] == "failed" and refused["error"]["code"] == "invalid_media", refused
        assert "work budget" in refused["error"]["message"], refused
    finally:
        for task_id in costly:
            abuser.post(f"/v1/task/{task_id}/cancel")
