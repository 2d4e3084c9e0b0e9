"""Detection tasks through the real REST API and the real services (issue #4)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from facemint_gateway.contract.tasks import TaskReply, TaskResult
from facemint_local.harness import MediaServer, RunningPlatform
from facemint_local.testmedia import animated, encode, group_image, moving_faces_video, with_declared_duration
from tests.e2e.apiutil import submit, upload, wait

pytestmark = [pytest.mark.e2e]


def centre(box: list[float]) -> tuple[float, float]:
    return box[0] + box[2] / 2, box[1] + box[3] / 2


def assert_same_faces_as(reference: dict[str, Any], task: dict[str, Any]) -> None:
    """The task found the reference's six faces, each centre within 6 source pixels."""
    expected = sorted(centre(f["bbox"]) for f in reference["result"]["frames"][0]["faces"])
    found = sorted(centre(f["bbox"]) for f in task["result"]["frames"][0]["faces"])
    assert len(found) == 6
    for (ex, ey), (fx, fy) in zip(expected, found, strict=True):
        assert abs(ex - fx) <= 6 and abs(ey - fy) <= 6


def test_image_task_returns_the_full_shape(reference: dict[str, Any]) -> None:
    assert set(reference) >= {
        "request_id",
        "task_id",
        "status",
        "type",
        "media",
        "result",
        "created_at",
        "completed_at",
    }
    assert reference["media"]["width"] == 1280 and reference["media"]["height"] == 886
    assert reference["metadata"] == reference["result"]["metadata"] == {"order": 42}  # echoed in the result too
    frames = reference["result"]["frames"]
    assert len(frames) == 1 and frames[0]["timestamp"] == 0.0
    faces = frames[0]["faces"]
    assert len(faces) == 6
    for face in faces:
        x, y, w, h = face["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 1280 and y + h <= 886 and w >= 40
        attrs = face["attributes"]
        assert 0 <= attrs["age"] <= 100
        assert attrs.get("gender", "male") in ("male", "female")
        assert attrs["emotion"] in ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful")
        assert set(attrs["pose"]) == {"yaw", "pitch", "roll"}
        assert isinstance(attrs["glasses"], bool) and isinstance(attrs["mask"], bool)
        assert 0 <= attrs["quality"] <= 1
        assert len(attrs["landmarks"]) == 106
        assert all(isinstance(v, int) for p in attrs["landmarks"] for v in p)  # integer pixels, as the spec shows
        inside = [
            p for p in attrs["landmarks"] if x - w * 0.2 <= p[0] <= x + w * 1.2 and y - h * 0.3 <= p[1] <= y + h * 1.2
        ]
        assert len(inside) >= 100
        assert face["identity"] is None
    assert reference["result"]["summary"]["total_faces"] == 6
    assert reference["created_at"].endswith("Z") and reference["completed_at"].endswith("Z")
    # The result, which the gateway passes on as stored, has the shape the OpenAPI document publishes.
    TaskReply.model_validate(reference, strict=True)
    TaskResult.model_validate(reference["result"], strict=True)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF", "BMP"])
def test_other_image_formats_find_the_same_faces(
    api: httpx.Client, media: MediaServer, reference: dict[str, Any], fmt: str
) -> None:
    params = {"quality": 95} if fmt in ("WEBP", "HEIF") else {}
    url = media.add(f"group-{fmt}.bin", encode(group_image(), fmt, **params))  # no telling extension: sniffed
    task = wait(api, submit(api, type="image", media_url=url))
    assert task["status"] == "succeeded", task
    assert_same_faces_as(reference, task)


def test_exif_rotated_jpeg_is_analysed_upright(
    api: httpx.Client, media: MediaServer, reference: dict[str, Any]
) -> None:
    # Pixels stored turned 90 degrees counter-clockwise, with EXIF orientation 6 ("turn clockwise to view"): the
    # JPEG goes to the inference service undecoded, which must apply the orientation as the decoder would.
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = group_image().transpose(Image.Transpose.ROTATE_90)
    url = media.add("group-exif6.jpg", encode(turned, "JPEG", quality=95, exif=exif.tobytes()))
    task = wait(api, submit(api, type="image", media_url=url))
    assert task["status"] == "succeeded", task
    assert (task["media"]["width"], task["media"]["height"]) == (1280, 886)
    assert_same_faces_as(reference, task)


def test_long_poll_answers_when_the_task_finishes(api: httpx.Client, media: MediaServer) -> None:
    url = media.add("group-longpoll.jpg", encode(group_image(), "JPEG", quality=90))
    task_id = submit(api, type="image", media_url=url)
    started = time.monotonic()
    doc = api.get(f"/v1/task/{task_id}", params={"wait": 25}, timeout=40).json()
    assert doc["status"] == "succeeded", doc  # one request: it waited for the task instead of answering "queued"
    assert time.monotonic() - started < 20


def test_long_poll_times_out_with_the_current_state(
    api: httpx.Client, media: MediaServer, reference: dict[str, Any]
) -> None:
    url = media.add("longpoll.mp4", _long_video(reference, 20.0))
    task_id = submit(api, type="video", media_url=url, sample_rate=10)
    started = time.monotonic()
    doc = api.get(f"/v1/task/{task_id}", params={"wait": 1.0}).json()
    assert time.monotonic() - started >= 0.9
    assert doc["status"] in ("queued", "running"), doc
    assert api.post(f"/v1/task/{task_id}/cancel").status_code == 200
    for bad in ("abc", "-1", "31", "nan"):
        resp = api.get(f"/v1/task/{task_id}", params={"wait": bad})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request", bad
        assert "'wait'" in resp.json()["error"]["message"]


def test_boxes_are_in_source_pixels_of_a_4k_image(
    api: httpx.Client, media: MediaServer, reference: dict[str, Any]
) -> None:
    big = group_image().resize((3840, 2658), Image.Resampling.BICUBIC)
    task = wait(api, submit(api, type="image", media_url=media.add("group-4k.jpg", encode(big, "JPEG", quality=92))))
    assert task["status"] == "succeeded", task
    scale = 3840 / 1280
    expected = sorted(
        (cx * scale, cy * scale) for cx, cy in (centre(f["bbox"]) for f in reference["result"]["frames"][0]["faces"])
    )
    found = sorted(centre(f["bbox"]) for f in task["result"]["frames"][0]["faces"])
    assert len(found) == 6
    for (ex, ey), (fx, fy) in zip(expected, found, strict=True):
        assert abs(ex - fx) <= 15 and abs(ey - fy) <= 15


def _face_crops(reference: dict[str, Any], n: int) -> list[Image.Image]:
    image = group_image()
    faces = sorted(reference["result"]["frames"][0]["faces"], key=lambda f: -f["bbox"][2])[:n]
    crops = []
    for face in faces:
        x, y, w, h = face["bbox"]
        m = int(0.35 * max(w, h))
        crops.append(image.crop((x - m, y - m, x + w + m, y + h + m)).resize((180, 180)))
    return crops


@pytest.mark.parametrize("fmt", ["GIF", "APNG"])
def test_animated_frames_follow_their_delays(
    api: httpx.Client, media: MediaServer, reference: dict[str, Any], fmt: str
) -> None:
    crop = _face_crops(reference, 1)[0]
    frames = []
    for i in range(6):
        canvas = Image.new("RGB", (480, 320), (200, 200, 200))
        if i != 3:
            canvas.paste(crop, (40 + 40 * i, 60))
        frames.append(canvas)
    delays = [200, 300, 500, 500, 250, 250]  # frames start at 0, .2, .5, 1.0, 1.5, 1.75
    url = media.add(f"anim-{fmt}.bin", animated(frames, delays, "GIF" if fmt == "GIF" else "PNG"))
    task = wait(api, submit(api, type="gif", media_url=url, sample_rate=4))
    assert task["status"] == "succeeded", task
    # Each 0.25 s sample instant takes the first frame starting at or after it (as for video), once:
    # instants 0 / .25 / .5 / .75 / 1.0 / 1.25 / 1.5 / 1.75 -> frames starting at 0, .5, 1.0, 1.5, 1.75.
    stamps = [f["timestamp"] for f in task["result"]["frames"]]
    assert stamps == [0.0, 0.5, 1.0, 1.5, 1.75]
    shown = {f["timestamp"]: len(f["faces"]) for f in task["result"]["frames"]}
    assert shown == {0.0: 1, 0.5: 1, 1.0: 0, 1.5: 1, 1.75: 1}


def test_video_tracks_follow_known_ground_truth(
    api: httpx.Client, media: MediaServer, reference: dict[str, Any]
) -> None:
    crops = _face_crops(reference, 2)
    data, truth = moving_faces_video(
        crops, [(0.0, 5.0, (40, 100), (500, 120)), (2.0, 8.0, (700, 300), (300, 250))], fps=10, seconds=8.0
    )
    url = media.add("moving.mp4", data)
    task = wait(api, submit(api, type="video", media_url=url, sample_rate=2, attributes=["quality"]))
    assert task["status"] == "succeeded", task
    assert abs(task["media"]["duration"] - 8.0) < 0.2 and task["media"]["width"] == 960
    frames = task["result"]["frames"]
    assert [f["timestamp"] for f in frames] == [i * 0.5 for i in range(16)]
    for frame in frames:
        expected = [b for b in truth[round(frame["timestamp"] * 10)] if b is not None]
        assert len(frame["faces"]) == len(expected), frame
        for box in expected:
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            assert any(
                abs(cx - centre(f["bbox"])[0]) < 40 and abs(cy - centre(f["bbox"])[1]) < 40 for f in frame["faces"]
            )
    tracks = sorted(task["result"]["face_tracks"], key=lambda t: t["appears_at"])
    assert len(tracks) == 2
    interval = 0.5
    assert abs(tracks[0]["appears_at"] - 0.0) <= interval and abs(tracks[0]["disappears_at"] - 5.0) <= interval
    assert abs(tracks[1]["appears_at"] - 2.0) <= interval and abs(tracks[1]["disappears_at"] - 8.0) <= interval
    ids_by_track = {}
    for frame in frames:
        for face in frame["faces"]:
            ids_by_track.setdefault(face["face_id"], []).append(frame["timestamp"])
    assert len(ids_by_track) == 2  # face ids are stable across frames
    assert task["result"]["summary"] == {"total_faces": 2, "unique_identities": 0}
    TaskResult.model_validate(task["result"], strict=True)  # the published shape, face tracks included


def _long_video(reference: dict[str, Any], seconds: float) -> bytes:
    crops = _face_crops(reference, 1)
    data, _ = moving_faces_video(crops, [(0.0, seconds, (20, 40), (700, 300))], fps=10, seconds=seconds)
    return data


def _billed_minutes(api: httpx.Client, url: str, **spec: Any) -> tuple[dict[str, Any], float]:
    """Run a video task; return it and the minutes it added to this month's usage (one task billed)."""
    before = api.get("/v1/usage").json()
    task = wait(api, submit(api, type="video", media_url=url, **spec))
    after = api.get("/v1/usage").json()
    assert after["tasks_billed"] == before["tasks_billed"] + 1, task
    return task, after["minutes"]["used"] - before["minutes"]["used"]


def test_video_is_billed_for_its_decoded_frames_not_its_declared_duration(
    api: httpx.Client, media: MediaServer, reference: dict[str, Any]
) -> None:
    # A 12 s video whose mvhd, tkhd and mdhd claim 1 s: every frame still decodes, so all 12 s are analysed.
    url = media.add("declares-1s.mp4", with_declared_duration(_long_video(reference, 12.0), 1.0))
    task, minutes = _billed_minutes(api, url, sample_rate=1)
    assert task["status"] == "succeeded", task
    assert task["media"]["duration"] == 1.0  # what the headers declare, shown as is
    assert [f["timestamp"] for f in task["result"]["frames"]] == [float(i) for i in range(12)]
    # frames at 0, 1, ..., 11 s, each standing for a 1 s sampling interval: 12 s = 0.2 minutes
    assert minutes == pytest.approx(12 / 60, abs=2e-4)


def test_video_without_faces_is_billed_for_its_decoded_frames(api: httpx.Client, media: MediaServer) -> None:
    faceless, _ = moving_faces_video([], [], size=(320, 240), fps=10, seconds=6.0)
    url = media.add("faceless-declares-1s.mp4", with_declared_duration(faceless, 1.0))
    task, minutes = _billed_minutes(api, url, sample_rate=2)
    assert task["status"] == "failed" and task["error"]["code"] == "no_faces_detected", task
    assert minutes == pytest.approx(6 / 60, abs=2e-4)  # 0 .. 5.5 s at 2 fps: 6 s, billed as the API says


def test_cancel_stops_a_running_video_task(
    platform: RunningPlatform, api: httpx.Client, media: MediaServer, reference: dict[str, Any]
) -> None:
    url = media.add("long.mp4", _long_video(reference, 40.0))
    task_id = submit(api, type="video", media_url=url, sample_rate=5)
    deadline = time.monotonic() + 60
    while api.get(f"/v1/task/{task_id}").json()["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    resp = api.post(f"/v1/task/{task_id}/cancel")
    assert resp.status_code == 200 and resp.json() == {"request_id": resp.json()["request_id"], "task_id": task_id,
                                                       "status": "cancelled"}  # fmt: skip
    doc = api.get(f"/v1/task/{task_id}").json()
    assert doc["status"] == "cancelled" and doc["completed_at"]
    again = api.post(f"/v1/task/{task_id}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    # The analysis stops within 2 s: the orchestrator's frame counter no longer moves.
    time.sleep(2.0)
    port = platform.service("task-orchestrator")["http_port"]
    first = _frames_total(port)
    time.sleep(1.5)
    assert _frames_total(port) == first


def _frames_total(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for line in text.splitlines():
        if line.startswith("facemint_task_orchestrator_frames_total "):
            return float(line.split()[1])
    raise AssertionError("frames metric missing")


@pytest.mark.parametrize("victim", ["task-orchestrator", "media-decoder"])
def test_task_survives_sigkill_of_a_service(
    platform: RunningPlatform, api: httpx.Client, media: MediaServer, reference: dict[str, Any], victim: str
) -> None:
    url = media.add(f"survive-{victim}.mp4", _long_video(reference, 12.0))
    task_id = submit(api, type="video", media_url=url, sample_rate=5)  # 0.2 s: every second frame at 10 fps
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        doc = api.get(f"/v1/task/{task_id}").json()
        if doc["status"] == "running" and doc.get("progress", {}).get("frames_done", 0) >= 2:
            break
        time.sleep(0.1)
    os.kill(platform.service(victim)["pid"], signal.SIGKILL)
    task = wait(api, task_id, timeout=240)
    assert task["status"] == "succeeded", task
    assert [f["timestamp"] for f in task["result"]["frames"]] == [round(i * 0.2, 3) for i in range(60)]
    assert all(len(f["faces"]) == 1 for f in task["result"]["frames"])
    listed = api.get("/v1/tasks", params={"limit": 100}).json()["tasks"]
    assert [t["task_id"] for t in listed].count(task_id) == 1


def test_list_tasks_filters_and_paginates_with_a_cursor(api: httpx.Client, reference: dict[str, Any]) -> None:
    page1 = api.get("/v1/tasks", params={"limit": 2, "type": "image"}).json()
    assert len(page1["tasks"]) == 2 and page1["next_cursor"]
    page2 = api.get("/v1/tasks", params={"limit": 2, "type": "image", "cursor": page1["next_cursor"]}).json()
    ids1, ids2 = {t["task_id"] for t in page1["tasks"]}, {t["task_id"] for t in page2["tasks"]}
    assert ids1.isdisjoint(ids2)
    created = [t["created_at"] for t in page1["tasks"] + page2["tasks"]]
    assert created == sorted(created, reverse=True)
    succeeded = api.get("/v1/tasks", params={"status": "succeeded", "limit": 100}).json()["tasks"]
    assert succeeded and all(t["status"] == "succeeded" for t in succeeded)
    bad = api.get("/v1/tasks", params={"limit": 500})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"


def test_list_items_are_summaries_unless_results_are_asked_for_and_gzip_is_used(
    api: httpx.Client, reference: dict[str, Any]
) -> None:
    params = {"status": "succeeded", "limit": 100}
    listed = api.get("/v1/tasks", params=params)
    [item] = [t for t in listed.json()["tasks"] if t["task_id"] == reference["task_id"]]
    assert "result" not in item and item["result_summary"] == reference["result"]["summary"]
    assert item["metadata"] == {"order": 42}
    full = api.get("/v1/tasks", params={**params, "include": "result"}, headers={"Accept-Encoding": "gzip"})
    assert full.headers["content-encoding"] == "gzip"  # httpx decodes it
    [item] = [t for t in full.json()["tasks"] if t["task_id"] == reference["task_id"]]
    assert item["result"] == reference["result"]
    assert len(listed.content) < len(full.content)
    plain = api.get("/v1/tasks", params={**params, "include": "result"}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json()["tasks"] == full.json()["tasks"]
    bad = api.get("/v1/tasks", params={"include": "frames"})
    assert bad.status_code == 400 and "'include'" in bad.json()["error"]["message"]


def test_no_faces_fails_the_task_with_no_faces_detected(api: httpx.Client, media: MediaServer) -> None:
    url = media.add("empty.png", encode(Image.new("RGB", (640, 480), (30, 120, 200)), "PNG"))
    task = wait(api, submit(api, type="image", media_url=url, confidence_threshold=0.99))
    assert task["status"] == "failed"
    assert task["error"]["code"] == "no_faces_detected" and "min_face_size=40" in task["error"]["message"]
    assert "confidence_threshold=0.99)" in task["error"]["message"]  # as given, not 0.9900000095367432
    assert "result" not in task


def test_openapi_and_docs_are_served(platform: RunningPlatform) -> None:
    doc = httpx.get(f"{platform.gateway_url}/openapi.json").json()
    assert doc["openapi"].startswith("3.1") and "/v1/create-detection-task" in doc["paths"]
    page = httpx.get(f"{platform.gateway_url}/docs")
    assert page.status_code == 200 and "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "/openapi.json" in httpx.get(f"{platform.gateway_url}/docs/facemint-docs.js").text


def test_signed_upload_flow(api: httpx.Client) -> None:
    signed = upload(api, "image", encode(group_image(), "JPEG"))
    task = wait(api, submit(api, type="image", media_url=signed["media_url"]))
    assert task["status"] == "succeeded" and len(task["result"]["frames"][0]["faces"]) == 6


def test_services_export_their_metrics(platform: RunningPlatform, reference: dict[str, Any]) -> None:
    def metrics(service: str) -> str:
        return httpx.get(f"http://127.0.0.1:{platform.service(service)['http_port']}/metrics").text

    inference = metrics("inference")
    assert 'facemint_inference_model_seconds_count{model="detector"}' in inference
    assert 'facemint_inference_model_seconds_count{model="landmarks"}' in inference
    assert 'facemint_task_orchestrator_tasks_total{status="succeeded",type="image"}' in metrics("task-orchestrator")
    assert "facemint_media_decoder_" in metrics("media-decoder")
    assert "facemint_gateway_http_requests_total{" in metrics("gateway")
