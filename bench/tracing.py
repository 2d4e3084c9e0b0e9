"""What tracing costs an image task (``make bench-tracing``).

Two local platforms run side by side on this machine: one with tracing off (the default), one exporting every span
(sampling ratio 1.0) to an OTLP/gRPC receiver in this process. The image task of ``make bench-tasks`` (1080p photo,
six faces, every attribute, recognition against a one-person library) is sent to each in turn, alternating which
goes first, so that both see the same moments of a machine whose speed drifts; latency is submit -> ``succeeded``
seen by one long poll. Target: the traced platform's median within 5% of the untraced one's.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import machine, machine_line, markdown_table, now, write_results
from bench.tasks import ALL_ATTRIBUTES, face_crops, percentile, photo_1080p
from facemint_local.harness import MEDIA_HOST, MediaServer, RunningPlatform, start_platform, submit_task, wait_task
from facemint_local.otlp import OtlpReceiver
from facemint_local.testmedia import encode


def prepare(api: httpx.Client, media: MediaServer, jpeg: bytes) -> dict[str, Any]:
    """Enrol one person of the photo; the task body (recognition included)."""
    image_url = media.add("photo.jpg", jpeg)
    first = wait_task(api, submit_task(api, {"type": "image", "media_url": image_url}))
    boxes = [f["bbox"] for f in first["result"]["frames"][0]["faces"]]
    person_url = media.add("person.jpg", encode(face_crops(photo_1080p(), boxes, 1)[0], "JPEG", quality=95))
    api.post("/v1/library", json={"library_id": "bench", "name": "Bench"}).raise_for_status()
    api.post(
        "/v1/library/bench/face", json={"person_id": "p_1", "name": "One", "image_url": person_url}
    ).raise_for_status()
    return {"type": "image", "media_url": image_url, "attributes": ALL_ATTRIBUTES, "recognize": 1,
            "library_id": "bench"}  # fmt: skip


def one_task(api: httpx.Client, body: dict[str, Any]) -> float:
    """Submit -> succeeded, ms."""
    start = time.perf_counter()
    done = wait_task(api, submit_task(api, body))
    assert done["status"] == "succeeded", done
    return (time.perf_counter() - start) * 1000


def main() -> None:
    """Run the benchmark and write bench/results/tracing-<date>.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=40, help="tasks per platform")
    parser.add_argument("--warmup", type=int, default=3, help="tasks per platform before measuring")
    parser.add_argument("--traced-first", action="store_true", help="start the traced platform first")
    args = parser.parse_args()
    jpeg = encode(photo_1080p(), "JPEG", quality=92)
    receiver = OtlpReceiver(keep=False)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        stack.callback(receiver.close)
        platforms: dict[str, RunningPlatform] = {}
        setups = [("off", {}), ("on", receiver.platform_env(batch_delay_ms=5000))]
        for name, env in reversed(setups) if args.traced_first else setups:
            platforms[name] = start_platform(Path(tmp) / name, extra_env=env)
            stack.callback(platforms[name].stop)
        media = MediaServer(Path(tmp) / "media", host=MEDIA_HOST)
        stack.callback(media.close)
        apis = {
            name: stack.enter_context(
                httpx.Client(base_url=p.gateway_url, headers={"x-api-key": p.api_key}, timeout=60)
            )
            for name, p in platforms.items()
        }
        bodies = {name: prepare(api, media, jpeg) for name, api in apis.items()}
        for _ in range(args.warmup):
            for name, api in apis.items():
                one_task(api, bodies[name])
        spans_before = receiver.received
        latencies: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(args.tasks):
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            for name in order:
                latencies[name].append(one_task(apis[name], bodies[name]))
        time.sleep(6)  # the last batch of spans
        spans = receiver.received - spans_before
    off50, on50 = percentile(latencies["off"], 50), percentile(latencies["on"], 50)
    paired = percentile([b / a for a, b in zip(latencies["off"], latencies["on"], strict=True)], 50)
    overhead = (on50 / off50 - 1) * 100
    rows = [
        [name, args.tasks, f"{percentile(values, 50):.1f}", f"{percentile(values, 95):.1f}"]
        for name, values in latencies.items()
    ]
    info = machine()
    report = (
        f"# Tracing overhead ({now()})\n\nMachine: {machine_line(info)}.\n\n"
        f"Two local platforms side by side, tracing off and on (ratio 1.0, OTLP/gRPC to a receiver in the benchmark's "
        f"process, batches every 5 s); the image task of `make bench-tasks` (1080p, six faces, every attribute, "
        f"recognition), alternating between the platforms and which goes first; the "
        f"{'traced' if args.traced_first else 'untraced'} platform was started first. {spans} spans received for the "
        f"{args.tasks} traced tasks ({spans / args.tasks:.0f} per task).\n\n"
        f"{markdown_table(['tracing', 'n', 'p50 ms', 'p95 ms'], rows)}\n\n"
        f"Median on/off: {on50 / off50:.3f} ({overhead:+.1f}%); median of the per-pair ratios: {paired:.3f}. "
        f"Target: within 5% ({'met' if overhead <= 5 else 'not met'}).\n"
    )
    print(report)
    write_results("tracing", report, {"machine": info, "date": now(), "latencies_ms": latencies,
                                      "spans": spans, "paired_ratio_median": paired})  # fmt: skip


if __name__ == "__main__":
    main()
