"""Result assembly: face records of sampled frames -> the public result (frames, face tracks, summary).

Tracks associate faces across sampled frames greedily, best pair first, by a score that mixes box overlap and
embedding similarity; a track that has not been seen for ``max_gap_samples`` sampled frames is closed. The
``face_id`` of a face is its track's (``f_<n>``, stable within the task), so the same face keeps its id across
frames. With recognition, a track's ``person_id`` is the majority vote of its faces' best matches.

:func:`analysed_seconds` is what a video or GIF task bills: the span the sampled frames cover, from their decoded
timestamps, never the duration the container declares.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2


@dataclass
class Track:
    """A face followed across sampled frames."""

    number: int
    last_box: tuple[float, float, float, float]
    last_index: int
    embedding: np.ndarray | None
    appears_at: float
    disappears_at: float
    votes: Counter[str] = field(default_factory=Counter)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two [x, y, w, h] boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _box(face: common_pb2.Face) -> tuple[float, float, float, float]:
    return (face.bbox.x, face.bbox.y, face.bbox.width, face.bbox.height)


def _embedding(face: common_pb2.Face) -> np.ndarray | None:
    if not face.embedding.values:
        return None
    vec = np.asarray(face.embedding.values, dtype=np.float32)
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else None


class Tracker:
    """Greedy frame-to-frame association of faces into tracks."""

    def __init__(self, min_iou: float, min_similarity: float, max_gap_samples: int) -> None:
        self.min_iou = min_iou
        self.min_similarity = min_similarity
        self.max_gap = max_gap_samples
        self.tracks: list[Track] = []

    def _score(self, track: Track, box: tuple[float, float, float, float], emb: np.ndarray | None) -> float:
        overlap = iou(track.last_box, box)
        sim = float(track.embedding @ emb) if track.embedding is not None and emb is not None else None
        if sim is not None:
            if sim >= self.min_similarity:
                return 1.0 + sim + overlap
            return -1.0 if overlap < 0.5 else overlap  # a different face in the same place
        return overlap if overlap >= self.min_iou else -1.0

    def assign(self, sample: int, timestamp: float, faces: list[common_pb2.Face]) -> list[Track]:
        """Assign the faces of one sampled frame to tracks (new ones when nothing matches)."""
        live = [t for t in self.tracks if sample - t.last_index <= self.max_gap]
        boxes = [_box(f) for f in faces]
        embs = [_embedding(f) for f in faces]
        pairs = sorted(
            ((self._score(t, boxes[i], embs[i]), ti, i) for ti, t in enumerate(live) for i in range(len(faces))),
            reverse=True,
        )
        taken_tracks: set[int] = set()
        chosen: dict[int, Track] = {}
        for score, ti, fi in pairs:
            if score < 0 or ti in taken_tracks or fi in chosen:
                continue
            taken_tracks.add(ti)
            chosen[fi] = live[ti]
        result: list[Track] = []
        for i in range(len(faces)):
            track = chosen.get(i)
            if track is None:
                track = Track(len(self.tracks) + 1, boxes[i], sample, embs[i], timestamp, timestamp)
                self.tracks.append(track)
            else:
                track.last_box, track.last_index, track.disappears_at = boxes[i], sample, timestamp
                emb = embs[i]
                if emb is not None:
                    mixed = emb if track.embedding is None else 0.7 * track.embedding + 0.3 * emb
                    track.embedding = mixed / max(float(np.linalg.norm(mixed)), 1e-6)
            result.append(track)
        return result


def analysed_seconds(timestamps: list[float], sample_rate: int, end_time: float | None) -> float:
    """The span of media that the sampled frames cover, in seconds (what a video or GIF task bills).

    Each sampled frame stands for one sampling interval (``1 / sample_rate``) from its timestamp, so the span runs
    from the first frame to one interval past the last one, cut at ``end_time`` when the request set it. Sampling
    takes at most one frame per interval, so the span is never less than frames / rate; it passes the media's true
    end by less than one interval.

    Args:
        timestamps: Decoded timestamps of the sampled frames, ascending.
        sample_rate: Frames analysed per second.
        end_time: The request's end of the analysed range, if any.
    """
    if not timestamps:
        return 0.0
    end = timestamps[-1] + 1 / sample_rate
    if end_time is not None:
        end = min(end, end_time)
    return max(0.0, end - timestamps[0])


_Scalar = Literal["age", "gender", "emotion", "glasses", "mask"]
_SCALARS: dict[str, _Scalar] = {
    "age": "age", "gender": "gender", "emotion": "emotion", "glasses": "glasses", "mask": "mask",
}  # fmt: skip


def public_attributes(face: common_pb2.Face, requested: list[str]) -> dict[str, Any]:
    """The requested attributes of a face, exactly in the API's shapes (absent values omitted)."""
    a = face.attributes
    out: dict[str, Any] = {}
    for name in requested:
        if name == "pose" and a.HasField("pose"):
            out["pose"] = {"yaw": round(a.pose.yaw, 1), "pitch": round(a.pose.pitch, 1), "roll": round(a.pose.roll, 1)}
        elif name == "landmarks" and a.landmarks:
            out["landmarks"] = [[round(p.x), round(p.y)] for p in a.landmarks]  # integer pixels, as the API shows
        elif name == "quality" and a.HasField("quality"):
            out["quality"] = round(a.quality, 3)
        elif (field := _SCALARS.get(name)) is not None and a.HasField(field):
            out[name] = getattr(a, field)
    return out


def _match_json(m: library_pb2.Match) -> dict[str, Any]:
    return {"person_id": m.person_id, "name": m.name, "score": round(m.score, 3)}


def build_result(
    frames: list[tuple[float, list[common_pb2.Face]]],
    requested: list[str],
    tracker: Tracker,
    matches: list[list[list[library_pb2.Match]]] | None,
) -> dict[str, Any]:
    """Assemble the public ``result`` object.

    Args:
        frames: Sampled frames in order: (timestamp, faces).
        requested: Attribute names the client asked for.
        tracker: A fresh tracker (configured from settings).
        matches: With recognition, per frame, per face, the identity matches; None without recognition.
    """
    out_frames: list[dict[str, Any]] = []
    for sample, (timestamp, faces) in enumerate(frames):
        tracks = tracker.assign(sample, timestamp, faces)
        out_faces = []
        for i, (face, track) in enumerate(zip(faces, tracks, strict=True)):
            identity: dict[str, Any] | None = None
            if matches is not None:
                face_matches = matches[sample][i]
                identity = {"matches": [_match_json(m) for m in face_matches]}
                if face_matches:
                    track.votes[face_matches[0].person_id] += 1
            out_faces.append(
                {
                    "face_id": f"f_{track.number:02d}",
                    "bbox": [round(face.bbox.x), round(face.bbox.y), round(face.bbox.width), round(face.bbox.height)],
                    "confidence": round(face.confidence, 3),
                    "attributes": public_attributes(face, requested),
                    "identity": identity,
                }
            )
        out_frames.append({"timestamp": round(timestamp, 3), "faces": out_faces})
    face_tracks = []
    identities: set[str] = set()
    for track in tracker.tracks:
        person = track.votes.most_common(1)[0][0] if track.votes else None
        if person:
            identities.add(person)
        face_tracks.append(
            {
                "track_id": f"t_{track.number}",
                "person_id": person,
                "appears_at": round(track.appears_at, 3),
                "disappears_at": round(track.disappears_at, 3),
            }
        )
    return {
        "frames": out_frames,
        "face_tracks": face_tracks,
        "summary": {"total_faces": len(tracker.tracks), "unique_identities": len(identities)},
    }
