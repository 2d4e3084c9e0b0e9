"""Fairness across accounts: one account's image latency while another sends costly media (``make bench-fairness``).

The two files of issue #13, from a free-plan account: a 5 KB GIF of 230 frames on a 4096x4096 canvas and a
20-minute 32x32 video. The other account (the development account) submits a small image with six faces, one task
after the other: N times with the platform idle, then N times while the two costly tasks are queued or running.
Latency is submit -> terminal seen by one long poll (``GET /v1/task/{id}?wait=30``).

Target: the image's median under abuse <= 3 x its idle median.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import machine, machine_line, markdown_table, now, write_results
from facemint_local.harness import MEDIA_HOST, MediaServer, account_client, start_platform, submit_task, wait_task
from facemint_local.testmedia import encode, group_image, long_tiny_video, sparse_canvas_gif


def image_latencies(api: httpx.Client, url: str, runs: int) -> list[float]:
    """Seconds from submit to ``succeeded`` of ``runs`` image tasks, one after the other."""
    seconds = []
    for _ in range(runs):
        started = time.monotonic()
        task = wait_task(api, submit_task(api, {"type": "image", "media_url": url}))
        seconds.append(time.monotonic() - started)
        if task["status"] != "succeeded":
            raise RuntimeError(f"image task did not succeed: {task}")
    return seconds


def row(case: str, seconds: list[float], idle_p50: float) -> list[object]:
    """A table row: n, p50, p95, max, ratio to the idle median, target met."""
    p50 = float(np.median(seconds))
    ratio = p50 / idle_p50
    return [case, len(seconds), f"{p50:.2f}", f"{np.percentile(seconds, 95):.2f}", f"{max(seconds):.2f}",
            f"{ratio:.2f}", "<= 3x", "yes" if ratio <= 3 else "no"]  # fmt: skip


def main() -> None:
    """Run the benchmark and write bench/results/fairness-<date>.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="image tasks per phase")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        platform = start_platform(Path(tmp) / "platform")
        media = MediaServer(Path(tmp) / "media", host=MEDIA_HOST)
        try:
            with (
                httpx.Client(base_url=platform.gateway_url, headers={"x-api-key": platform.api_key}, timeout=60) as api,
                account_client(platform, "costly media", "free") as abuser,
            ):
                image_url = media.add("group.jpg", encode(group_image(), "JPEG", quality=90))
                gif_url = media.add("sparse-canvas.gif", sparse_canvas_gif())
                video_url = media.add("long-tiny.mp4", long_tiny_video())
                image_latencies(api, image_url, 2)  # warm-up
                idle = image_latencies(api, image_url, args.runs)
                submitted = time.monotonic()
                gif = submit_task(abuser, {"type": "gif", "media_url": gif_url})
                video = submit_task(abuser, {"type": "video", "media_url": video_url})
                while abuser.get(f"/v1/task/{video}").json()["status"] == "queued":
                    time.sleep(0.1)
                loaded = image_latencies(api, image_url, args.runs)
                gif_task = wait_task(abuser, gif)
                gif_seconds = time.monotonic() - submitted
                video_task = abuser.get(f"/v1/task/{video}").json()
                abuser.post(f"/v1/task/{video}/cancel")
        finally:
            media.close()
            platform.stop()
    info = machine()
    idle_p50 = float(np.median(idle))
    rows = [row("idle", idle, idle_p50), row("while the GIF and the video of another account run", loaded, idle_p50)]
    table = markdown_table(["image task of account B", "n", "p50 s", "p95 s", "max s", "ratio to idle p50",
                            "target", "met"], rows)  # fmt: skip
    error = gif_task.get("error") or {}
    frames_done = (video_task.get("progress") or {}).get("frames_done", 0)
    report = (
        f"# Fairness benchmark ({now()})\n\nMachine: {machine_line(info)}.\n\n"
        f"The whole local platform (`facemint up`, defaults: 2 general worker slots and 1 image slot in the "
        f"orchestrator) on this machine. Account A (free plan) submits the two files of issue #13: a "
        f"{len(sparse_canvas_gif())}-byte GIF of 230 frames on a 4096x4096 canvas and a 20-minute 32x32 H.264 "
        f"video (2400 frames to analyse at the default sample_rate 2). Account B submits a 1280x886 JPEG with six "
        f"faces, one task after the other, {args.runs} times idle and {args.runs} times once A's video runs; "
        f"latency is submit -> `succeeded` seen by one long poll.\n\n{table}\n\n"
        f"A's GIF: `{gif_task['status']}` `{error.get('code', '')}` {gif_seconds:.1f} s after submission "
        f"({error.get('message', '')}). A's video: `{video_task['status']}` with {frames_done} "
        f"frames analysed when B's last image finished (then cancelled). Before fair scheduling (issue #13), B's "
        f"image waited behind both: 156 s instead of about 1 s, and the GIF held a worker for 5 min 50 s.\n"
    )
    print(report)
    write_results("fairness", report, {"machine": info, "date": now(), "idle_seconds": idle,
                                        "loaded_seconds": loaded, "gif_status": gif_task["status"],
                                        "gif_error": error, "gif_seconds": gif_seconds,
                                        "video_status": video_task["status"],
                                        "video_frames_done": frames_done})  # fmt: skip


if __name__ == "__main__":
    main()
