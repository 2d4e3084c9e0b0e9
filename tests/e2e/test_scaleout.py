"""The scale-out the design promises (issue #13): ``facemint up --replicas 2`` runs two replicas of every stateless
service and a 3-node NATS JetStream cluster with R3 streams. With image and video tasks and their webhooks in
flight, one NATS node (the jobs stream's leader) and one replica of each replicated service are SIGKILLed at once.
Every task must still end exactly once (one terminal state, one terminal event, billed once), every webhook must
arrive signed under one delivery id per task (the deliveries table agreeing), and the long poll and cancel must
work through the surviving gateway replica.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from facemint.orchestrator.v1 import orchestrator_pb2
from facemint_core import streams
from facemint_local.harness import (
    MEDIA_HOST,
    TERMINAL,
    MediaServer,
    RunningPlatform,
    WebhookReceiver,
    api_client,
    pids_alive,
    start_platform,
)
from facemint_local.testmedia import encode, group_image, long_tiny_video, moving_faces_video

pytestmark = [pytest.mark.e2e]

REPLICATED = ("gateway", "task-orchestrator", "media-decoder", "inference", "webhook-dispatcher")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    running = start_platform(tmp_path_factory.mktemp("scaleout"), args=["--replicas", "2"], timeout=300)
    yield running
    running.stop()


def _get(client: httpx.Client, path: str, **params: Any) -> dict[str, Any] | None:
    """A GET that a client would retry: None on a connection error or a 5xx (a replica just died)."""
    try:
        resp = client.get(path, params=params)
    except httpx.HTTPError:
        return None
    return dict(resp.json()) if resp.status_code == 200 else None


def _started_on(platform: RunningPlatform, replica: str) -> set[str]:
    """Task ids the orchestrator replica logged as started."""
    started = set()
    for line in (platform.data_dir / "logs" / f"{replica}.log").read_text().splitlines():
        if '"task started"' in line:
            started.add(json.loads(line).get("task_id", ""))
    return started


async def _nats_facts(url: str, task_ids: set[str]) -> tuple[str, Counter[str], dict[str, int]]:
    """The jobs stream's leader, the terminal events per task id in the events stream, each stream's replicas."""
    nc = await nats.connect(url.split(","))
    try:
        js = nc.jetstream()
        info = await js.stream_info(streams.JOBS_STREAM)
        leader = info.cluster.leader if info.cluster else ""
        replicas = {
            s: (await js.stream_info(s)).config.num_replicas or 1 for s in (streams.JOBS_STREAM, streams.EVENTS_STREAM)
        }
        events: Counter[str] = Counter()
        sub = await js.subscribe(streams.event_subject("*"), ordered_consumer=True)
        while True:
            try:
                msg = await sub.next_msg(timeout=2)
            except nats.errors.TimeoutError:
                break
            task_id = orchestrator_pb2.TaskEvent.FromString(msg.data).task_id
            if task_id in task_ids:
                events[task_id] += 1
        return str(leader), events, replicas
    finally:
        await nc.close()


async def _db_facts(dsn: str) -> tuple[dict[str, Any], tuple[float, int], list[Any]]:
    """The development account's tasks, metered usage and webhook deliveries, from their owners' schemas."""
    conn = await asyncpg.connect(dsn)
    try:
        account = await conn.fetchval("SELECT account_id FROM gateway.accounts WHERE name = 'Development'")
        tasks = {
            r["task_id"]: dict(r)
            for r in await conn.fetch(
                "SELECT task_id, status, attempts, billed_seconds FROM orchestrator.tasks WHERE account_id = $1",
                account,
            )
        }
        usage = await conn.fetchrow(
            "SELECT coalesce(sum(seconds), 0) AS s, coalesce(sum(tasks), 0) AS n FROM orchestrator.usage_monthly"
            " WHERE account_id = $1",
            account,
        )
        deliveries = await conn.fetch(
            "SELECT delivery_id, task_id, state, redelivery_of FROM webhook.webhook_deliveries WHERE account_id = $1",
            account,
        )
        return tasks, (float(usage["s"]), int(usage["n"])), list(deliveries)
    finally:
        await conn.close()


def test_killing_a_nats_node_and_a_replica_of_each_service_loses_and_duplicates_nothing(
    platform: RunningPlatform, tmp_path: Path
) -> None:
    state = platform.reload()
    assert {f"nats-{i}" for i in (1, 2, 3)} <= set(state["servers"])
    assert {*REPLICATED, *(f"{s}-2" for s in REPLICATED), "library", "gateway-front"} == set(state["services"])
    gateway2 = f"http://127.0.0.1:{state['services']['gateway-2']['http_port']}"
    media = MediaServer(tmp_path / "media", host=MEDIA_HOST)
    with (
        api_client(platform) as api,
        httpx.Client(base_url=gateway2, headers={"x-api-key": platform.api_key}, timeout=60) as api2,
    ):
        secret = api.get("/v1/webhook-secret").json()["webhook_secret"]
        receiver = WebhookReceiver(secret=secret, delay=3.0)  # slow: deliveries in flight at the kill
        try:
            face = group_image().crop((731, 316, 866, 492)).resize((135, 176))
            video, _ = moving_faces_video([face], [(0.0, 8.0, (40, 60), (400, 160))], size=(640, 360), seconds=8.0)
            urls = {
                "image": media.add("group.jpg", encode(group_image(), "JPEG", quality=90)),
                "video": media.add("short.mp4", video),
                "long": media.add("long.mp4", long_tiny_video(seconds=300)),
            }
            hook = receiver.url("hook")

            def submit(kind: str, **extra: Any) -> str:
                body = {"type": "video" if kind != "image" else "image", "media_url": urls[kind], "callback_url": hook}
                resp = api.post("/v1/create-detection-task", json={**body, **extra})
                assert resp.status_code == 201, resp.text
                return str(resp.json()["task_id"])

            to_cancel = submit("long", sample_rate=2)
            # 80 sampled frames per video: long enough (several seconds even on a quiet machine) for one to be running
            # on replica 1 when it is killed.
            tasks = [submit("video", sample_rate=10) for _ in range(4)] + [submit("image") for _ in range(6)]
            everything = {to_cancel, *tasks}

            leader, _, replicas = asyncio.run(_nats_facts(state["nats_url"], set()))
            assert replicas == {streams.JOBS_STREAM: 3, streams.EVENTS_STREAM: 3}
            # Kill when replica 1 of the orchestrator runs a task that is not finished: its job must be redelivered.
            deadline = time.monotonic() + 60
            while True:
                assert time.monotonic() < deadline, "no task ran on task-orchestrator"
                held = {
                    t for t in _started_on(platform, "task-orchestrator") & everything
                    if (_get(api, f"/v1/task/{t}") or {}).get("status") == "running"
                }  # fmt: skip
                if held - {to_cancel}:
                    break
                time.sleep(0.2)
            victims = {leader: state["servers"][leader]["pid"]}
            victims |= {name: state["services"][name]["pid"] for name in REPLICATED}
            for pid in victims.values():
                os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()

            # Through the surviving gateway replica: a long poll of the long video, woken by its cancellation.
            polled: dict[str, Any] = {}
            poller = threading.Thread(target=lambda: polled.update(_get(api2, f"/v1/task/{to_cancel}", wait=30) or {}))
            poller.start()
            time.sleep(1.0)
            cancelled = api2.post(f"/v1/task/{to_cancel}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            cancel_sent = time.monotonic()
            poller.join(35)
            assert polled.get("status") == "cancelled", polled
            assert time.monotonic() - cancel_sent < 10  # woken by the cancel, not by the wait's end

            # Every task ends; the clients go through the front (whichever gateway replica answers).
            final: dict[str, dict[str, Any]] = {}
            deadline = killed + 120
            while len(final) < len(everything):
                assert time.monotonic() < deadline, f"not terminal: {sorted(everything - set(final))}"
                for task_id in everything - set(final):
                    doc = _get(api, f"/v1/task/{task_id}", wait=5)
                    if doc is not None and doc["status"] in TERMINAL:
                        final[task_id] = doc
            recovered = time.monotonic() - killed
            assert {t: d["status"] for t, d in final.items()} == {
                **dict.fromkeys(tasks, "succeeded"),
                to_cancel: "cancelled",
            }

            # The killed ones were restarted by the supervisor, and are ready again.
            state = platform.reload()
            for name in victims:
                group = state["servers"] if name == leader else state["services"]
                assert group[name]["restarts"] == 1 and group[name]["pid"] != victims[name], name

            # One terminal event per task, billed once.
            _, events, _ = asyncio.run(_nats_facts(state["nats_url"], everything))
            assert events == Counter(dict.fromkeys(everything, 1)), events
            dsn = f"postgresql://facemint@127.0.0.1:{state['servers']['postgres']['port']}/facemint"
            rows, usage, deliveries = asyncio.run(_db_facts(dsn))
            assert {t: rows[t]["status"] for t in everything} == {t: d["status"] for t, d in final.items()}
            retried = {t: rows[t]["attempts"] for t in held - {to_cancel}}
            assert max(retried.values()) >= 2, f"no job of the killed replica was run again: {retried}"
            billable = [t for t in tasks if rows[t]["billed_seconds"] > 0]
            assert billable == tasks and rows[to_cancel]["billed_seconds"] == 0
            assert usage == (pytest.approx(sum(rows[t]["billed_seconds"] for t in tasks)), len(tasks))
            usage_api = api.get("/v1/usage").json()
            assert usage_api["tasks_billed"] == len(tasks)
            listed = [t["task_id"] for t in api.get("/v1/tasks", params={"limit": 100}).json()["tasks"]]
            assert Counter(listed) == Counter(everything)

            # Every webhook arrived, signed, under one delivery id per task; the deliveries table agrees.
            received = receiver.deliveries(everything)
            assert {t: len(ids) for t, ids in received.items()} == dict.fromkeys(everything, 1), received
            assert receiver.bad_signatures == []
            deadline = time.monotonic() + 30
            while True:
                _, _, deliveries = asyncio.run(_db_facts(dsn))
                if all(d["state"] == "delivered" for d in deliveries) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            table = {(d["task_id"], d["delivery_id"], d["state"], d["redelivery_of"]) for d in deliveries}
            assert len(deliveries) == len(everything)
            assert table == {(t, next(iter(ids)), "delivered", None) for t, ids in received.items()}
            print(
                f"recovered in {recovered:.1f} s; webhook requests {len(receiver.requests)} for {len(everything)} tasks"
            )
        finally:
            receiver.close()
            media.close()


def test_sigterm_stops_every_replica_and_nats_node(platform: RunningPlatform) -> None:
    pids = platform.all_pids()
    assert len(pids) >= 17  # 11 service processes (library once), the front, PostgreSQL, 3 NATS nodes, object store
    assert platform.stop() == 0
    deadline = time.monotonic() + 10
    while pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pids_alive(pids) == []
