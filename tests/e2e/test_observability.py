"""Traces and queue metrics of the real local platform (issue 16, ADR 0018).

The platform here exports its spans to an OTLP/gRPC receiver run by the test (``facemint_local.otlp``, built on the
``opentelemetry-proto`` messages): one trace must follow a video task from the POST through every service to its
webhook. The same platform's ``/metrics`` must show the JetStream consumers, the webhook backlog, the task latency by
type and outcome, the time in queue and every service's readiness after real tasks.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from facemint_core.schemas import service_dsn
from facemint_local.harness import MEDIA_HOST, MediaServer, RunningPlatform, WebhookReceiver, api_client, start_platform
from facemint_local.otlp import OtlpReceiver, render_tree
from facemint_local.testmedia import encode, group_image, long_tiny_video, moving_faces_video
from tests.e2e.apiutil import submit, wait

SERVICES = {"gateway", "task-orchestrator", "media-decoder", "inference", "library", "webhook-dispatcher"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    yield otlp
    otlp.close()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, receiver: OtlpReceiver) -> Iterator[RunningPlatform]:
    env = receiver.platform_env()
    env["FACEMINT_WEBHOOK_DISPATCHER_POLL_INTERVAL_SECONDS"] = "0.5"  # the backlog gauges are refreshed at each poll
    env["FACEMINT_TASK_ORCHESTRATOR_WORKER__SWEEP_INTERVAL_SECONDS"] = "0.5"
    running = start_platform(tmp_path_factory.mktemp("traced"), extra_env=env)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    server = MediaServer(tmp_path_factory.mktemp("media"), host=MEDIA_HOST)
    yield server
    server.close()


@pytest.fixture(scope="module")
def hooks() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def api(traced: RunningPlatform) -> Iterator[httpx.Client]:
    with api_client(traced) as client:
        yield client


@pytest.fixture(scope="module")
def crops(api: httpx.Client, media: MediaServer) -> list[Image.Image]:
    """The two largest faces of the group photo (found by an image task), cropped."""
    task = wait(api, submit(api, type="image", media_url=media.add("group.jpg", encode(group_image(), "JPEG"))))
    assert task["status"] == "succeeded", task
    faces = sorted(task["result"]["frames"][0]["faces"], key=lambda f: -f["bbox"][2])[:2]
    image, out = group_image(), []
    for face in faces:
        x, y, w, h = face["bbox"]
        m = int(0.35 * max(w, h))
        out.append(image.crop((x - m, y - m, x + w + m, y + h + m)).resize((180, 180)))
    return out


def _metrics(platform: RunningPlatform, service: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    port = platform.service(service)["http_port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _wait_for(probe: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = probe()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.3)


def test_one_trace_follows_a_video_task_from_the_post_to_its_webhook(
    api: httpx.Client, media: MediaServer, hooks: WebhookReceiver, receiver: OtlpReceiver, crops: list[Image.Image],
    tmp_path: Path,
) -> None:  # fmt: skip
    created = api.post("/v1/library", json={"library_id": "traced", "name": "Traced"})
    assert created.status_code == 201, created.text
    face = media.add("face.jpg", encode(crops[0], "JPEG", quality=95))
    enrolled = api.post("/v1/library/traced/face", json={"person_id": "p1", "name": "One", "image_url": face})
    assert enrolled.status_code == 201, enrolled.text
    video, _ = moving_faces_video(crops, [(0.0, 2.0, (40, 100), (500, 120)), (0.5, 2.0, (700, 300), (300, 250))],
                                  fps=10, seconds=2.0)  # fmt: skip
    task_id = submit(api, type="video", media_url=media.add("traced.mp4", video), sample_rate=2, recognize=1,
                     library_id="traced", callback_url=hooks.url("hook"))  # fmt: skip
    task = wait(api, task_id)
    assert task["status"] == "succeeded", task
    assert hooks.deliveries({task_id})[task_id], "webhook not delivered"

    attempt = _wait_for(lambda: receiver.find("webhook attempt", **{"facemint.task_id": task_id}))
    assert attempt is not None, "no span of the webhook attempt arrived"
    time.sleep(1.0)  # the services export every 0.2 s: let the last batches arrive
    spans = receiver.trace(attempt["trace_id"])
    tree = render_tree(spans)
    (tmp_path / "trace.txt").write_text(tree + "\n")
    print(f"\ntrace {attempt['trace_id']} of task {task_id}:\n{tree}")

    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if not s["parent_id"]]
    assert len(roots) == 1, tree
    root = roots[0]
    assert root["service"] == "gateway" and root["kind"] == "server", tree
    assert root["name"] == "POST /v1/create-detection-task" and root["attributes"]["facemint.request_id"], root
    polls = receiver.find("GET /v1/task/{task_id}")  # named after the route, not one name per task
    assert polls is not None and polls["attributes"]["http.route"] == "/v1/task/{task_id}"
    orphans = [s for s in spans if s["parent_id"] and s["parent_id"] not in ids]
    assert not orphans, f"spans whose parent is not in the trace: {orphans}\n{tree}"
    assert {s["service"] for s in spans} == SERVICES, tree

    by_id = {s["span_id"]: s for s in spans}

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parent_id"]]

    def one(service: str, name: str) -> dict[str, Any]:
        found = [s for s in spans if s["service"] == service and s["name"] == name]
        assert found, f"no {service} span {name!r}:\n{tree}"
        return found[0]

    # gateway POST -> CreateTask (client, then server in the orchestrator)
    create = one("task-orchestrator", "/facemint.orchestrator.v1.TaskService/CreateTask")
    assert create["kind"] == "server" and parent(create)["service"] == "gateway"
    # the job, taken from JetStream by whichever orchestrator, continues the POST's trace
    job = next(s for s in spans if s["service"] == "task-orchestrator" and s["kind"] == "consumer")
    assert job["name"] == "process facemint.jobs.detect" and parent(job)["service"] == "task-orchestrator"
    analyze = one("media-decoder", "/facemint.media_decoder.v1.MediaDecoderService/AnalyzeMedia")
    assert parent(parent(analyze)) == job  # through the orchestrator's client span
    for name in ("media.fetch", "media.probe", "media.decode"):
        assert parent(one("media-decoder", name)) == analyze
    models = [s for s in spans if s["service"] == "inference" and s["name"].startswith("model ")]
    assert {"model detector", "model embedding"} <= {s["name"] for s in models}, tree
    assert all(s["attributes"]["facemint.model.batch_size"] >= 1 and s["attributes"]["facemint.model.name"]
               for s in models)  # fmt: skip
    search = one("library", "library.search")
    assert parent(search)["name"] == "/facemint.library.v1.LibraryService/Search"
    assert parent(parent(parent(search))) == job
    # the terminal event, consumed by the dispatcher, then the attempt made from the stored delivery
    event = next(s for s in spans if s["service"] == "webhook-dispatcher" and s["kind"] == "consumer")
    assert event["name"] == "process facemint.events.task.succeeded" and parent(event) == job
    assert parent(attempt) == event and attempt["attributes"]["http.response.status_code"] == 204
    # the services' readiness probes of each other (gRPC health checks, every few seconds) are not traced
    assert not [s for s in receiver.spans if "grpc.health" in s["name"]]


def test_queue_and_delivery_metrics_after_real_tasks(
    traced: RunningPlatform, api: httpx.Client, media: MediaServer, crops: list[Image.Image]
) -> None:
    succeeded = wait(api, submit(api, type="image", media_url=media.add("one.jpg", encode(crops[0], "JPEG")),
                                 callback_url=f"http://{MEDIA_HOST}:9/refused"))  # fmt: skip
    assert succeeded["status"] == "succeeded", succeeded
    failed = wait(api, submit(api, type="image", media_url=media.url("missing.jpg")))
    assert failed["status"] == "failed", failed
    cancelled = submit(api, type="video", media_url=media.add("long.mp4", long_tiny_video(300)), sample_rate=2)
    _wait_for(lambda: api.get(f"/v1/task/{cancelled}").json()["status"] == "running", timeout=60)
    assert api.post(f"/v1/task/{cancelled}/cancel").status_code == 200

    # An undecodable event: the dispatcher terminates it as poison.
    async def publish_poison() -> None:
        nc = await nats.connect(f"nats://127.0.0.1:{traced.server('nats')['port']}")
        await nc.jetstream().publish("facemint.events.task.succeeded", b"\xff not a TaskEvent")
        await nc.close()

    asyncio.run(publish_poison())

    for service in sorted(SERVICES):
        ready = _wait_for(lambda service=service: _value(_metrics(traced, service), "facemint_service_ready"))
        assert ready == 1, service

    orch = _metrics(traced, "task-orchestrator")
    h = "facemint_task_orchestrator_task_seconds_count"
    assert _value(orch, h, type="image", outcome="succeeded") >= 2  # type: ignore[operator]
    assert _value(orch, h, type="image", outcome="failed") >= 1  # type: ignore[operator]
    ran_cancelled = _wait_for(
        lambda: _value(_metrics(traced, "task-orchestrator"), h, type="video", outcome="cancelled"), timeout=10
    )
    assert ran_cancelled == 1
    assert _value(orch, "facemint_task_orchestrator_queue_seconds_count", type="image") >= 3  # type: ignore[operator]
    e2e = "facemint_task_orchestrator_task_latency_seconds_count"  # creation -> terminal, queue included
    assert _value(orch, e2e, type="image", outcome="succeeded") >= 2  # type: ignore[operator]
    assert _value(orch, e2e, type="image", outcome="failed") >= 1  # type: ignore[operator]
    for consumer in ("orchestrator-detect", "orchestrator-detect-image"):
        labels = {"stream": "FACEMINT_JOBS", "consumer": consumer}
        for gauge in ("pending", "ack_pending", "redelivered"):
            value = _value(orch, f"facemint_jetstream_consumer_{gauge}_messages", **labels)
            assert value is not None and value >= 0, (gauge, labels)

    events = {"stream": "FACEMINT_EVENTS", "consumer": "webhook-dispatcher"}

    def dispatcher_settled() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        hook = _metrics(traced, "webhook-dispatcher")
        backlog = _value(hook, "facemint_webhook_dispatcher_backlog_deliveries") or 0
        terminated = _value(hook, "facemint_jetstream_terminated_messages_total", **events) or 0
        return hook if backlog >= 1 and terminated >= 1 else None

    hook = _wait_for(dispatcher_settled)
    assert hook is not None, "the refused webhook never showed in the backlog, or the poison event was not counted"
    assert _value(hook, "facemint_webhook_dispatcher_oldest_pending_age_seconds") > 0  # type: ignore[operator]
    assert _value(hook, "facemint_jetstream_terminated_messages_total", **events) == 1
    assert _value(hook, "facemint_jetstream_consumer_pending_messages", **events) == 0


def test_a_job_the_outbox_sweep_enqueues_continues_the_trace_stored_with_its_task(
    traced: RunningPlatform, api: httpx.Client, media: MediaServer, receiver: OtlpReceiver, crops: list[Image.Image]
) -> None:
    """A task stored while its job could not be published (NATS away) is enqueued later by the sweep of whichever
    orchestrator runs it: its processing joins the trace of the request that created it, from ``tasks.traceparent``."""
    url = media.add("swept.jpg", encode(crops[1], "JPEG"))
    template = submit(api, type="image", media_url=url)
    assert wait(api, template)["status"] == "succeeded"
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    task_id = f"task_{secrets.token_hex(12)}"

    async def store_unpublished() -> None:  # the row CreateTask stores, as if its job's publish had failed
        admin = f"postgresql://facemint@127.0.0.1:{traced.server('postgres')['port']}/facemint"
        conn = await asyncpg.connect(service_dsn(admin, "task-orchestrator"))  # the orchestrator owns ``tasks``
        await conn.execute(
            """INSERT INTO tasks (task_id, account_id, type, status, spec, estimated_seconds, request_id, traceparent,
                                  updated_at)
               SELECT $1, account_id, type, 'queued', spec, estimated_seconds, request_id, $3,
                      now() - interval '1 hour'
               FROM tasks WHERE task_id = $2""",
            task_id,
            template,
            f"00-{trace_id}-{span_id}-01",
        )
        await conn.close()

    asyncio.run(store_unpublished())
    assert wait(api, task_id, timeout=60)["status"] == "succeeded"
    job = _wait_for(
        lambda: next((s for s in receiver.trace(trace_id) if s["name"] == "process facemint.jobs.image"), None)
    )
    assert job is not None, "the swept job's processing was not traced"
    assert (job["trace_id"], job["parent_id"]) == (trace_id, span_id)
    time.sleep(1.0)
    services = {s["service"] for s in receiver.trace(trace_id)}
    assert {"task-orchestrator", "media-decoder", "inference"} <= services, render_tree(receiver.trace(trace_id))
