"""Result assembly: face tracks, face ids, votes, the summary and the billed span."""

from __future__ import annotations

import numpy as np

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2
from facemint_task_orchestrator.assemble import Tracker, analysed_seconds, build_result, iou


def _face(x: float, y: float, emb: list[float] | None = None, size: float = 100) -> common_pb2.Face:
    face = common_pb2.Face(bbox=common_pb2.BBox(x=x, y=y, width=size, height=size), confidence=0.9)
    if emb is not None:
        face.embedding.values.extend(emb)
    face.attributes.age = 30
    face.attributes.mask = False
    return face


def _unit(*values: float) -> list[float]:
    v = np.asarray(values, dtype=np.float32)
    return list(v / np.linalg.norm(v))


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 10, 10)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 1 / 3) < 1e-6


def test_two_people_crossing_keep_their_tracks_by_embedding() -> None:
    a, b = _unit(1, 0, 0), _unit(0, 1, 0)
    frames = [
        (0.0, [_face(0, 0, a), _face(300, 0, b)]),
        (0.5, [_face(140, 0, b), _face(160, 0, a)]),  # they swap sides and overlap
        (1.0, [_face(300, 0, a), _face(0, 0, b)]),
    ]
    result = build_result(frames, ["age"], Tracker(0.3, 0.45, 2), None)
    ids = [[f["face_id"] for f in fr["faces"]] for fr in result["frames"]]
    assert ids == [["f_01", "f_02"], ["f_02", "f_01"], ["f_01", "f_02"]]
    assert result["summary"] == {"total_faces": 2, "unique_identities": 0}
    assert result["frames"][0]["faces"][0]["attributes"] == {"age": 30}
    assert result["frames"][0]["faces"][0]["identity"] is None


def test_track_closes_after_the_gap_and_reports_appearance_times() -> None:
    frames = [(t * 0.5, [_face(10, 10)] if t in (0, 1, 5) else []) for t in range(6)]
    result = build_result(frames, [], Tracker(0.3, 0.45, 2), None)
    tracks = result["face_tracks"]
    assert [(t["appears_at"], t["disappears_at"]) for t in tracks] == [(0.0, 0.5), (2.5, 2.5)]
    assert all(t["person_id"] is None for t in tracks)


def test_track_person_is_the_vote_of_its_faces() -> None:
    emb = _unit(1, 0.1, 0)
    frames = [(i * 0.5, [_face(10 + i, 10, emb)]) for i in range(3)]
    p1 = library_pb2.Match(person_id="p_1", name="One", score=0.9)
    p2 = library_pb2.Match(person_id="p_2", name="Two", score=0.8)
    matches = [[[p1]], [[p2]], [[p1]]]
    result = build_result(frames, [], Tracker(0.3, 0.45, 2), matches)
    assert result["face_tracks"][0]["person_id"] == "p_1"
    assert result["summary"] == {"total_faces": 1, "unique_identities": 1}
    assert result["frames"][1]["faces"][0]["identity"] == {
        "matches": [{"person_id": "p_2", "name": "Two", "score": 0.8}]
    }


def test_analysed_span_runs_from_the_first_frame_to_one_interval_past_the_last() -> None:
    assert analysed_seconds([i / 2 for i in range(120)], 2, None) == 60.0  # 0 .. 59.5 s at 2 fps: a minute
    assert analysed_seconds([10.0, 10.5, 11.0], 2, None) == 1.5  # from start_time 10 s
    assert analysed_seconds([0.0, 1.0, 2.0], 1, 2.4) == 2.4  # cut at end_time
    assert analysed_seconds([0.0, 1.0, 3.0], 2, None) == 3.5  # sparse frames: the span, not frames / rate
    assert analysed_seconds([], 2, None) == 0.0
