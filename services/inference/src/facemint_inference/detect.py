"""Face detection pre- and post-processing for SCRFD and YuNet (numpy and OpenCV only).

Each frame is downscaled (or upscaled) to fit the detector's square input and placed in its top-left corner
(``letterbox``), so that mapping back to source pixels is a single division by the scale. The detector's
per-stride outputs are decoded into boxes, scores and five keypoints (left eye, right eye, nose, left mouth
corner, right mouth corner, image left/right), filtered by the confidence threshold and suppressed with NMS.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

STRIDES = (8, 16, 32)
NMS_IOU = 0.4
MAX_CANDIDATES = 5000


@dataclass(frozen=True)
class Detection:
    """One detected face in source-frame pixels."""

    box: NDArray[Any]
    """``[x1, y1, x2, y2]`` float32."""
    score: float
    keypoints: NDArray[Any]
    """``[5, 2]`` float32: left eye, right eye, nose, left mouth corner, right mouth corner."""

    @property
    def width(self) -> float:
        """Box width in pixels."""
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        """Box height in pixels."""
        return float(self.box[3] - self.box[1])


@dataclass(frozen=True)
class Candidates:
    """Decoded detections of one image in detector pixels, before NMS."""

    boxes: NDArray[Any]
    scores: NDArray[Any]
    keypoints: NDArray[Any]


Decoder = Callable[[dict[str, NDArray[Any]], int, int, float], Candidates]
"""Decodes image ``index`` of a batch of raw outputs for a square input ``size`` above ``threshold``."""


def letterbox(image: NDArray[Any], size: int) -> tuple[NDArray[Any], float]:
    """Fit an image into the top-left of a black ``size`` x ``size`` canvas, keeping its aspect ratio.

    Args:
        image: ``[H, W, 3]`` uint8 BGR frame of any size.
        size: Side of the detector input.

    Returns:
        The canvas and the scale (detector pixels per source pixel).
    """
    height, width = image.shape[:2]
    scale = min(size / width, size / height)
    new_w, new_h = max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    return canvas, scale


@functools.lru_cache(maxsize=32)
def _grid(size: int, stride: int, anchors: int) -> NDArray[Any]:
    """Cell coordinates ``[cells * anchors, 2]`` (column, row), row-major, each repeated ``anchors`` times."""
    cells = size // stride
    rows, cols = np.mgrid[:cells, :cells]
    grid = np.stack([cols, rows], axis=-1).reshape(-1, 2).astype(np.float32)
    return np.repeat(grid, anchors, axis=0)


def _empty() -> Candidates:
    return Candidates(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))


def _concat(parts: list[Candidates]) -> Candidates:
    parts = [p for p in parts if p.scores.size]
    if not parts:
        return _empty()
    return Candidates(
        np.concatenate([p.boxes for p in parts]),
        np.concatenate([p.scores for p in parts]),
        np.concatenate([p.keypoints for p in parts]),
    )


def decode_scrfd(outputs: dict[str, NDArray[Any]], index: int, size: int, threshold: float) -> Candidates:
    """Decode SCRFD (``score_S``, ``bbox_S``, ``kps_S``; two anchors per cell; distances in stride units)."""
    parts = []
    for stride in STRIDES:
        scores = outputs[f"score_{stride}"][index, :, 0]
        keep = np.flatnonzero(scores >= threshold)
        if keep.size == 0:
            continue
        centres = _grid(size, stride, 2)[keep] * stride
        dist = outputs[f"bbox_{stride}"][index, keep] * stride
        boxes = np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1)
        kps = centres[:, None, :] + outputs[f"kps_{stride}"][index, keep].reshape(-1, 5, 2) * stride
        parts.append(Candidates(boxes, scores[keep], kps))
    return _concat(parts)


def decode_yunet(outputs: dict[str, NDArray[Any]], index: int, size: int, threshold: float) -> Candidates:
    """Decode YuNet (``cls_S``, ``obj_S``, ``bbox_S``, ``kps_S``; one prior per cell; score sqrt(cls * obj))."""
    parts = []
    for stride in STRIDES:
        cls = np.clip(outputs[f"cls_{stride}"][index, :, 0], 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"][index, :, 0], 0.0, 1.0)
        scores = np.sqrt(cls * obj)
        keep = np.flatnonzero(scores >= threshold)
        if keep.size == 0:
            continue
        cells = _grid(size, stride, 1)[keep]
        raw = outputs[f"bbox_{stride}"][index, keep]
        centres = (cells + raw[:, :2]) * stride
        half = np.exp(raw[:, 2:]) * stride / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        kps = (cells[:, None, :] + outputs[f"kps_{stride}"][index, keep].reshape(-1, 5, 2)) * stride
        parts.append(Candidates(boxes, scores[keep], kps))
    return _concat(parts)


def suppress(candidates: Candidates, scale: float, frame_shape: tuple[int, ...]) -> list[Detection]:
    """Apply NMS and map the survivors back to source pixels, clipping boxes to the frame.

    Args:
        candidates: Decoded detections in detector pixels.
        scale: The letterbox scale (detector pixels per source pixel).
        frame_shape: Shape of the source frame, ``(H, W, ...)``.

    Returns:
        Detections by descending score.
    """
    if candidates.scores.size == 0:
        return []
    order = np.argsort(-candidates.scores)[:MAX_CANDIDATES]
    boxes, scores, kps = candidates.boxes[order], candidates.scores[order], candidates.keypoints[order]
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    keep = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, NMS_IOU), dtype=np.int64).reshape(-1)
    height, width = frame_shape[:2]
    limits = np.array([width, height, width, height], dtype=np.float32)
    detections = []
    for i in keep:
        box = np.clip(boxes[i] / scale, 0, limits).astype(np.float32)
        detections.append(Detection(box=box, score=float(scores[i]), keypoints=(kps[i] / scale).astype(np.float32)))
    return detections
