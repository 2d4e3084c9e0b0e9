"""What tracing costs an image task (``make bench-tracing``).

Two local platforms run side by side on this machine: one with tracing off (the default), one exporting every span
(sampling ratio 1.0) to an OTLP/gRPC receiver in this process. The image task of ``make bench-tasks`` (1080p photo,
six faces, every attribute, recognition against a one-person library) is sent to each in turn, alternating which
goes first, so that both see the same moments of a machine whose speed drifts; latency is submit -> ``succeeded``
seen by one long poll. Target: the traced platform's median within 5% of the untraced one's.

Latency on a shared machine is noisy, so the benchmark also reports the CPU time each platform's services used per
task (from ``/proc/<pid>/stat`` over the measured loop): what tracing costs in work, whatever else runs beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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


def cpu_seconds(platform: RunningPlatform) -> dict[str, float]:
    """CPU seconds (user + system) each service of a platform has used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for name, service in platform.reload()["services"].items():
        fields = Path(f"/proc/{service['pid']}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def one_task(api: httpx.Client, body: dict[str, Any]) -> float:
    """Submit -> succeeded, ms."""
    start = time.perf_counter()
    done = wait_task(api, submit_task(api, body))
    assert done["status"] == "succeeded", done
    return (time.perf_counter() - start) * 1000


def run(jpeg: bytes, tasks: int, warmup: int, traced_first: bool) -> dict[str, Any]:
    """One pair of platforms started in the given order: latencies (ms), CPU ms per task per service, spans."""
    receiver = OtlpReceiver(keep=False)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        stack.callback(receiver.close)
        platforms: dict[str, RunningPlatform] = {}
        setups = [("off", {}), ("on", receiver.platform_env(batch_delay_ms=5000))]
        for name, env in reversed(setups) if traced_first else setups:
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
        for _ in range(warmup):
            for name, api in apis.items():
                one_task(api, bodies[name])
        spans_before = receiver.received
        cpu_before = {name: cpu_seconds(p) for name, p in platforms.items()}
        latencies: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(tasks):
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            for name in order:
                latencies[name].append(one_task(apis[name], bodies[name]))
        cpu_ms = {
            name: {svc: (used - cpu_before[name][svc]) * 1000 / tasks for svc, used in cpu_seconds(p).items()}
            for name, p in platforms.items()
        }
        time.sleep(6)  # the last batch of spans
        spans = receiver.received - spans_before
    return {"traced_first": traced_first, "latencies_ms": latencies, "cpu_ms_per_task": cpu_ms, "spans": spans,
            "ratio": percentile(latencies["on"], 50) / percentile(latencies["off"], 50),
            "paired_ratio_median": percentile([b / a for a, b in zip(latencies["off"], latencies["on"], strict=True)],
                                              50)}  # fmt: skip


def section(result: dict[str, Any], tasks: int) -> str:
    """The report of one run."""
    latencies, cpu_ms = result["latencies_ms"], result["cpu_ms_per_task"]
    rows = [
        [name, tasks, f"{percentile(values, 50):.1f}", f"{percentile(values, 95):.1f}"]
        for name, values in latencies.items()
    ]
    cpu_rows = [
        [svc, f"{cpu_ms['off'][svc]:.1f}", f"{cpu_ms['on'][svc]:.1f}", f"{cpu_ms['on'][svc] - cpu_ms['off'][svc]:+.1f}"]
        for svc in cpu_ms["off"]
    ]
    cpu_off, cpu_on = sum(cpu_ms["off"].values()), sum(cpu_ms["on"].values())
    cpu_rows.append(["all", f"{cpu_off:.1f}", f"{cpu_on:.1f}", f"{cpu_on - cpu_off:+.1f}"])
    first = "traced" if result["traced_first"] else "untraced"
    return (
        f"## The {first} platform started first\n\n{result['spans']} spans received for the {tasks} traced tasks "
        f"({result['spans'] / tasks:.0f} per task).\n\n"
        f"{markdown_table(['tracing', 'n', 'p50 ms', 'p95 ms'], rows)}\n\n"
        f"Median on/off: {result['ratio']:.3f} ({(result['ratio'] - 1) * 100:+.1f}%); median of the per-pair ratios: "
        f"{result['paired_ratio_median']:.3f}.\n\n"
        f"CPU time per task, by service (ms; the span export included, it runs in each service):\n\n"
        f"{markdown_table(['service', 'off', 'on', 'on - off'], cpu_rows)}\n"
    )


def main() -> None:
    """Run the benchmark (both start orders) and write bench/results/tracing-<date>.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=40, help="tasks per platform and run")
    parser.add_argument("--warmup", type=int, default=3, help="tasks per platform before measuring")
    parser.add_argument(
        "--order",
        choices=("both", "untraced-first", "traced-first"),
        default="both",
        help="which platform starts first; both = one run each way (cancels a start-order bias)",
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="times the order(s) run; one run's ratio moves by 2-3 points"
    )
    args = parser.parse_args()
    jpeg = encode(photo_1080p(), "JPEG", quality=92)
    orders = {"both": [False, True], "untraced-first": [False], "traced-first": [True]}[args.order]
    results = [run(jpeg, args.tasks, args.warmup, traced_first) for _ in range(args.repeats) for traced_first in orders]
    overheads = [(r["ratio"] - 1) * 100 for r in results]
    overhead = sum(overheads) / len(overheads)
    paired = sum((r["paired_ratio_median"] - 1) * 100 for r in results) / len(results)
    verdict = "met" if max(overhead, paired) <= 5 else "not met" if min(overhead, paired) > 5 else "borderline"
    info = machine()
    report = (
        f"# Tracing overhead ({now()})\n\nMachine: {machine_line(info)}; load average before the run "
        f"{os.getloadavg()[0]:.1f}.\n\n"
        f"Two local platforms side by side, tracing off and on (ratio 1.0, OTLP/gRPC to a receiver in the benchmark's "
        f"process, batches every 5 s); the image task of `make bench-tasks` (1080p, six faces, every attribute, "
        f"recognition), alternating between the platforms and which goes first. The platform started second has "
        f"been faster in earlier runs whichever it was, so each start order runs as often as the other and the "
        f"verdict is the mean of the runs' on/off median ratios.\n\n"
        f"**Overhead: {overhead:+.1f}%** (mean of {len(results)} run(s): "
        f"{', '.join(f'{o:+.1f}%' for o in overheads)}); the mean of the runs' medians of the per-pair ratios (each "
        f"traced task over the untraced task next to it) is {paired:+.1f}%. Target: within 5% ({verdict}"
        f"{': the two estimates fall on either side' if verdict == 'borderline' else ''}).\n\n"
        + "\n".join(section(r, args.tasks) for r in results)
    )
    print(report)
    write_results(
        "tracing",
        report,
        {"machine": info, "date": now(), "overhead_percent": overhead, "paired_overhead_percent": paired,
         "verdict": verdict, "runs": results},
    )  # fmt: skip


if __name__ == "__main__":
    main()
