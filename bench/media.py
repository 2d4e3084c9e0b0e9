"""Test media of the accuracy benchmark and of the glasses classifier's training, and the face labels.

A *media key* names one image:

* ``deepface/img1.jpg``: a file under ``../shared/data`` (the development set, see its README);
* ``facenet_pytorch/video.mp4@40``: frame 40 (0-based, decode order) of a video under ``../shared/data``;
* ``insightface-2.1:insightface/data/images/t1.jpg``: a member of a pinned registry package
  (``facemint_local.testmedia``, fetched by ``make testmedia`` and checked by sha256), so these images are
  available on a fresh clone too.

The hand labels (``services/inference/tools/labels/attributes.json``) and the visible-face counts
(``bench/data/detection_counts.json``) are keyed by media key; labelled faces are keyed by their box within the
image, and a detection is matched to a labelled face by box overlap (``match``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

import facemint_local.testmedia as testmedia
from bench.common import REPO_ROOT, SHARED_DATA

LABELS_PATH = REPO_ROOT / "services" / "inference" / "tools" / "labels" / "attributes.json"


def _video_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based, decode order) of a video, decoded from the start."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return np.asarray(frame.to_ndarray(format="bgr24"))
    raise IndexError(f"{path} has no frame {index}")


def available(key: str) -> bool:
    """Whether the image of a media key can be read here (package media always can, given a registry)."""
    if ":" in key.split("/", 1)[0]:
        return True
    return (SHARED_DATA / key.split("@", 1)[0]).is_file()


def load(key: str) -> np.ndarray:
    """Read the image of a media key as ``[H, W, 3]`` uint8 BGR.

    Raises:
        FileNotFoundError: The shared file is missing (``../shared/data`` absent).
        facemint_local.testmedia.TestMediaError: A package member is not pinned, cannot be fetched or fails its check.
    """
    head = key.split("/", 1)[0]
    if ":" in head:
        return testmedia.bgr(key)
    image: np.ndarray | None
    if "@" in key:
        name, index = key.rsplit("@", 1)
        image = _video_frame(SHARED_DATA / name, int(index))
    else:
        path = SHARED_DATA / key
        if not path.is_file():
            raise FileNotFoundError(path)
        image = cv2.imdecode(np.frombuffer(path.read_bytes(), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{key}: not a decodable image")
    return np.ascontiguousarray(image)


def iou(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


MATCH_IOU = 0.4
"""Minimum box overlap between a detection and a labelled face (the two detectors draw boxes differently)."""


def match(boxes: list[np.ndarray], labelled: list[list[float]], threshold: float = MATCH_IOU) -> dict[int, int]:
    """Greedy one-to-one matching of detections to labelled boxes by IoU.

    Returns:
        ``{labelled index: detection index}`` for every labelled face with a detection above ``threshold``.
    """
    pairs = sorted(
        ((iou(box, ref), li, di) for li, ref in enumerate(labelled) for di, box in enumerate(boxes)), reverse=True
    )
    used_l: set[int] = set()
    used_d: set[int] = set()
    out: dict[int, int] = {}
    for overlap, li, di in pairs:
        if overlap < threshold:
            break
        if li in used_l or di in used_d:
            continue
        out[li] = di
        used_l.add(li)
        used_d.add(di)
    return out


def load_labels(path: Path = LABELS_PATH) -> dict[str, Any]:
    """The hand labels: ``{"faces": {media key: [face, ...]}, ...}`` (see ``docs/accuracy.md``)."""
    return dict(json.loads(path.read_text()))
