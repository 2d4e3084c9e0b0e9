"""Recovery after a server crash (``make bench-recovery``), through the local platform.

PostgreSQL, NATS and the object store are SIGKILLed in turn (``--rounds`` times each), each just after ``--inflight``
image tasks (the group photo, fetched from the object store, with a webhook to a local receiver) were submitted; the
supervisor is not held, so the times are the real recovery. For each kill: seconds
until the supervisor had restarted the server (its new PID in ``platform.json``), until the gateway's ``/readyz``
answered 200 again, until a task submitted then had succeeded, and until every task was terminal; whether the
gateway reported not-ready meanwhile; how the tasks ended and how many delivery ids their webhooks carried.
Run: ``python -m bench.recovery``; the table is printed and written to ``bench/results/recovery-<date>.md``
(and ``.json``).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from bench.common import fmt, machine, machine_line, markdown_table, now, write_results
from facemint_local.harness import WebhookReceiver, kill_server_under_load, start_platform, upload_media
from facemint_local.testmedia import T1, read

SERVERS = ("postgres", "nats", "object_store")


def main() -> None:
    """Kill each server once and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--inflight", type=int, default=4, help="tasks submitted just before each kill")
    parser.add_argument("--rounds", type=int, default=3, help="kills of each server")
    args = parser.parse_args()
    info = machine()
    runs: list[dict[str, Any]] = []
    receiver = WebhookReceiver()
    with tempfile.TemporaryDirectory(prefix="facemint-recovery-") as tmp:
        platform = start_platform(Path(tmp) / "platform")
        try:
            with httpx.Client(
                base_url=platform.gateway_url, headers={"x-api-key": platform.api_key}, timeout=30
            ) as api:
                body = {
                    "type": "image",
                    "media_url": upload_media(api, "image", read(T1))["media_url"],
                    "callback_url": receiver.url("hooks"),
                }
                for server in [s for _ in range(args.rounds) for s in SERVERS]:
                    recovery = kill_server_under_load(platform, api, server, body, args.inflight)
                    deliveries = receiver.deliveries(set(recovery.tasks))
                    run = asdict(recovery)
                    run["statuses"] = dict(Counter(doc["status"] for doc in recovery.tasks.values()))
                    run["delivery_ids_per_task"] = sorted(len(ids) for ids in deliveries.values())
                    del run["tasks"]
                    runs.append(run)
                    print(run, flush=True)
        finally:
            platform.stop()
            receiver.close()
    medians = [
        [server]
        + [
            fmt(statistics.median(r[key] for r in runs if r["server"] == server), 2)
            for key in ("restarted_seconds", "gateway_ready_seconds", "first_task_seconds", "all_tasks_seconds")
        ]
        for server in SERVERS
    ]
    rows = [
        [
            r["server"],
            r["in_flight_at_kill"],
            fmt(r["restarted_seconds"], 2),
            fmt(r["gateway_ready_seconds"], 2),
            fmt(r["first_task_seconds"], 2),
            fmt(r["all_tasks_seconds"], 2),
            "yes" if r["gateway_not_ready_seen"] else "no",
            ", ".join(f"{n} {s}" for s, n in sorted(r["statuses"].items())),
            "yes" if r["delivery_ids_per_task"] == [1] * len(r["delivery_ids_per_task"]) else "NO",
            "yes" if r["old_pid_reaped"] else "NO",
        ]
        for r in runs
    ]
    report = "\n".join(
        [
            f"# Recovery after a server SIGKILL ({now()})",
            "",
            f"Machine: {machine_line(info)}. Local platform (`facemint up`), open pack; {args.inflight} image tasks "
            "(group photo from the object store, webhook to a local receiver) submitted just before each kill, plus "
            "one submitted once the gateway was ready again. Seconds after the kill; "
            f"{args.rounds} kills of each server.",
            "",
            "## Median",
            "",
            markdown_table(
                ["server", "restarted s", "gateway ready s", "first new task succeeded s", "all tasks terminal s"],
                medians,
            ),
            "",
            "## Every kill",
            "",
            markdown_table(
                [
                    "server",
                    "tasks not terminal at the kill",
                    "restarted s",
                    "gateway ready s",
                    "first new task succeeded s",
                    "all tasks terminal s",
                    "gateway 503 seen",
                    "tasks",
                    "one webhook each",
                    "old pid reaped",
                ],
                rows,
            ),
            "",
        ]
    )
    print(report)
    write_results(
        "recovery",
        report,
        {"machine": info, "date": now(), "inflight": args.inflight, "rounds": args.rounds, "runs": runs},
    )


if __name__ == "__main__":
    main()
