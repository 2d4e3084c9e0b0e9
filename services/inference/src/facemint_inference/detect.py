"""Face detection pre- and post-processing for SCRFD and YuNet (numpy and OpenCV only).

Each frame is downscaled (or upscaled) to fit a ``size`` x ``size`` square and placed in the top-left corner of
the detector input (``letterbox``), so that mapping back to source pixels is a single division by the scale. The
input is that square, or (``detector_canvas`` with ``square=False``) only as large as the scaled frames need,
rounded up to the largest stride: a 1080p frame then costs 640 x 384 instead of 640 x 640. The detector's
per-stride outputs are decoded into boxes, scores and five keypoints (left eye, right eye, nose, left mouth
corner, right mouth corner, image left/right), filtered by the confidence threshold and suppressed with NMS:
first by IoU, then by containment (a box mostly inside another one is the same face seen twice, for example a
tight box on a face and a loose box around the whole head: the lower-scored of the two goes).

A face only a few detector pixels tall gets a coarse box (the smallest stride is 8 px): a 16 px face in a 1024 px
photo is 10 px at the detector's 640 input, and its box overlaps the face by IoU 0.5 or less about one time in
eight. Such boxes are redrawn (``tile_mosaic``, ``redraw``, ADR 0025): each small detection's neighbourhood is cut
out, scaled so that the face is ``TILE / TILE_CONTEXT`` pixels, and laid with the others as a tile of a mosaic of
the detector's input size; the detector's box on the tile, mapped back, replaces the first box. Scores stay the
first pass's, so what is found does not change, only where its box lies.
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
CONTAINMENT = 0.75
"""A survivor of IoU NMS is dropped when this share of its own or of a better box's area lies in their overlap."""
MAX_CANDIDATES = 5000
REDRAW_BELOW = 12
"""Detections whose shorter box side is under this many detector-input pixels get their box redrawn on a tile
(from about 12 px up the first box already overlaps the face by IoU >= 0.5; redrawing up to 20 px also moved the
keypoints, hence the aligned crops, of faces that the attribute benchmarks measure: ADR 0025)."""
TILE = 128
"""Side of one tile of the redrawing mosaic, pixels."""
TILE_CONTEXT = 2.0
"""A tile shows this many times the box's longer side around its centre (the face is then 64 px on the tile)."""
REDRAW_THRESHOLD = 0.2
"""Detection threshold on the tiles (only the box is taken from them; the score stays the first pass's)."""


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


Decoder = Callable[[dict[str, NDArray[Any]], int, tuple[int, int], float], Candidates]
"""Decodes image ``index`` of a batch of raw outputs for an input of ``(width, height)`` above ``threshold``."""


def fit(shape: tuple[int, ...], size: int) -> tuple[float, int, int]:
    """Scale and scaled ``(width, height)`` of a frame of ``shape`` fitted into a ``size`` square."""
    height, width = shape[:2]
    scale = min(size / width, size / height)
    return scale, max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))


def detector_canvas(shapes: list[tuple[int, ...]], size: int, square: bool) -> tuple[int, int]:
    """``(width, height)`` of the detector input for a batch of frames: the square, or the smallest multiple of
    the largest stride that holds every fitted frame."""
    if square:
        return size, size
    stride = STRIDES[-1]
    fitted = [fit(shape, size) for shape in shapes]
    width = max(w for _, w, _ in fitted)
    height = max(h for _, _, h in fitted)
    return -(-width // stride) * stride, -(-height // stride) * stride


def letterbox(image: NDArray[Any], size: int, canvas: tuple[int, int] | None = None) -> tuple[NDArray[Any], float]:
    """Fit an image into a ``size`` square, keeping its aspect ratio, in the top-left of a black canvas.

    Args:
        image: ``[H, W, 3]`` uint8 BGR frame of any size.
        size: Side of the square the frame is fitted into.
        canvas: ``(width, height)`` of the canvas (at least the fitted frame); ``size`` x ``size`` by default.

    Returns:
        The canvas and the scale (detector pixels per source pixel).
    """
    scale, new_w, new_h = fit(image.shape, size)
    width, height = canvas or (size, size)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out = np.zeros((height, width, 3), dtype=np.uint8)
    out[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    return out, scale


@functools.lru_cache(maxsize=64)
def _grid(input_size: tuple[int, int], stride: int, anchors: int) -> NDArray[Any]:
    """Cell coordinates ``[cells * anchors, 2]`` (column, row), row-major, each repeated ``anchors`` times."""
    width, height = input_size
    rows, cols = np.mgrid[: height // stride, : width // stride]
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


def decode_scrfd(
    outputs: dict[str, NDArray[Any]], index: int, input_size: tuple[int, int], threshold: float
) -> Candidates:
    """Decode SCRFD (``score_S``, ``bbox_S``, ``kps_S``; two anchors per cell; distances in stride units)."""
    parts = []
    for stride in STRIDES:
        scores = outputs[f"score_{stride}"][index, :, 0]
        keep = np.flatnonzero(scores >= threshold)
        if keep.size == 0:
            continue
        centres = _grid(input_size, stride, 2)[keep] * stride
        dist = outputs[f"bbox_{stride}"][index, keep] * stride
        boxes = np.concatenate([centres - dist[:, :2], centres + dist[:, 2:]], axis=1)
        kps = centres[:, None, :] + outputs[f"kps_{stride}"][index, keep].reshape(-1, 5, 2) * stride
        parts.append(Candidates(boxes, scores[keep], kps))
    return _concat(parts)


def decode_yunet(
    outputs: dict[str, NDArray[Any]], index: int, input_size: tuple[int, int], threshold: float
) -> Candidates:
    """Decode YuNet (``cls_S``, ``obj_S``, ``bbox_S``, ``kps_S``; one prior per cell; score sqrt(cls * obj))."""
    parts = []
    for stride in STRIDES:
        cls = np.clip(outputs[f"cls_{stride}"][index, :, 0], 0.0, 1.0)
        obj = np.clip(outputs[f"obj_{stride}"][index, :, 0], 0.0, 1.0)
        scores = np.sqrt(cls * obj)
        keep = np.flatnonzero(scores >= threshold)
        if keep.size == 0:
            continue
        cells = _grid(input_size, stride, 1)[keep]
        raw = outputs[f"bbox_{stride}"][index, keep]
        centres = (cells + raw[:, :2]) * stride
        half = np.exp(raw[:, 2:]) * stride / 2
        boxes = np.concatenate([centres - half, centres + half], axis=1)
        kps = (cells[:, None, :] + outputs[f"kps_{stride}"][index, keep].reshape(-1, 5, 2)) * stride
        parts.append(Candidates(boxes, scores[keep], kps))
    return _concat(parts)


def contained_suppression(boxes: NDArray[Any], order: NDArray[Any]) -> NDArray[Any]:
    """Drop boxes that share most of their area with a better box (IoU NMS misses a small box inside a large one).

    Args:
        boxes: ``[N, 4]`` boxes ``[x1, y1, x2, y2]``.
        order: Indices into ``boxes`` by descending score.

    Returns:
        The kept indices, still by descending score: a box goes when ``CONTAINMENT`` of the smaller of its area and
        a kept better box's area lies in their intersection.
    """
    kept: list[int] = []
    areas = np.maximum(boxes[:, 2] - boxes[:, 0], 0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0)
    for i in order.tolist():
        if kept:
            better = boxes[kept]
            width = np.minimum(better[:, 2], boxes[i, 2]) - np.maximum(better[:, 0], boxes[i, 0])
            height = np.minimum(better[:, 3], boxes[i, 3]) - np.maximum(better[:, 1], boxes[i, 1])
            inter = np.maximum(width, 0) * np.maximum(height, 0)
            if (inter >= CONTAINMENT * np.minimum(areas[kept], areas[i])).any():
                continue
        kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def _nms(boxes: NDArray[Any], scores: NDArray[Any]) -> NDArray[Any]:
    """IoU then containment suppression of boxes sorted by descending score; kept indices in that order."""
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
    by_iou = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), 0.0, NMS_IOU), dtype=np.int64).reshape(-1)
    return contained_suppression(boxes, np.sort(by_iou))


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
    keep = _nms(boxes, scores)
    height, width = frame_shape[:2]
    limits = np.array([width, height, width, height], dtype=np.float32)
    detections = []
    for i in keep:
        box = np.clip(boxes[i] / scale, 0, limits).astype(np.float32)
        detections.append(Detection(box=box, score=float(scores[i]), keypoints=(kps[i] / scale).astype(np.float32)))
    return detections


@dataclass(frozen=True)
class Tile:
    """Where one detection's neighbourhood lies on a redrawing mosaic."""

    mosaic: int
    """Index of the mosaic."""
    origin: tuple[int, int]
    """Top-left ``(x, y)`` of the tile on the mosaic."""
    zoom: float
    """Tile pixels per source pixel."""
    centre: tuple[float, float]
    """The detection's box centre in source pixels (the tile's centre)."""


def needs_redraw(detection: Detection, scale: float) -> bool:
    """Whether a detection's box is small enough at the detector input (``scale``) to be redrawn on a tile."""
    return min(detection.width, detection.height) * scale < REDRAW_BELOW


def tile_mosaic(image: NDArray[Any], detections: list[Detection], side: int) -> tuple[list[NDArray[Any]], list[Tile]]:
    """Lay the neighbourhood of each detection, zoomed, as a ``TILE`` square on grey ``side`` x ``side`` mosaics.

    Args:
        image: ``[H, W, 3]`` uint8 BGR frame the detections are in.
        detections: The detections to redraw.
        side: The mosaics' side (the detector's input size, so that the detector sees them unscaled).

    Returns:
        The mosaics and, per detection, its tile.
    """
    per_row = side // TILE
    per_mosaic = per_row * per_row
    mosaics: list[NDArray[Any]] = [
        np.full((side, side, 3), 127, np.uint8) for _ in range(-(-len(detections) // per_mosaic))
    ]
    tiles = []
    for i, d in enumerate(detections):
        row, col = divmod(i % per_mosaic, per_row)
        zoom = TILE / (TILE_CONTEXT * max(d.width, d.height, 1.0))
        cx, cy = float(d.box[0] + d.box[2]) / 2, float(d.box[1] + d.box[3]) / 2
        matrix = np.array([[zoom, 0, TILE / 2 - zoom * cx], [0, zoom, TILE / 2 - zoom * cy]], dtype=np.float32)
        x, y = col * TILE, row * TILE
        mosaics[i // per_mosaic][y : y + TILE, x : x + TILE] = cv2.warpAffine(
            image, matrix, (TILE, TILE), flags=cv2.INTER_LINEAR, borderValue=(127, 127, 127)
        )
        tiles.append(Tile(i // per_mosaic, (x, y), zoom, (cx, cy)))
    return mosaics, tiles


def redraw(
    detections: list[Detection],
    chosen: list[int],
    tiles: list[Tile],
    found: list[list[Detection]],
    frame_shape: tuple[int, ...],
) -> list[Detection]:
    """Replace the chosen detections' boxes and keypoints with the best detection centred on their tiles, then
    suppress the duplicates that the new boxes reveal.

    Args:
        detections: A frame's detections by descending score.
        chosen: Indices of those laid on tiles (``tile_mosaic``), in the order of ``tiles``.
        tiles: Their tiles.
        found: Per mosaic of this frame, the detector's detections in mosaic pixels.
        frame_shape: Shape of the source frame, ``(H, W, ...)``.

    Returns:
        The frame's detections by descending score, first-pass scores kept; a chosen box stays as it was where no
        tile detection is centred within it.
    """
    height, width = frame_shape[:2]
    limits = np.array([width, height, width, height], dtype=np.float32)
    reach = TILE / (2 * TILE_CONTEXT)
    out = list(detections)
    for index, tile in zip(chosen, tiles, strict=True):
        offset = np.array([tile.origin[0] + TILE / 2, tile.origin[1] + TILE / 2], dtype=np.float32)
        centred = [d for d in found[tile.mosaic] if (np.abs((d.box[:2] + d.box[2:]) / 2 - offset) < reach).all()]
        if not centred:
            continue
        best = max(centred, key=lambda d: d.score)
        centre = np.array(tile.centre, dtype=np.float32)
        box = ((best.box.reshape(2, 2) - offset) / tile.zoom + centre).reshape(4)
        keypoints = (best.keypoints - offset) / tile.zoom + centre
        out[index] = Detection(
            np.clip(box, 0, limits).astype(np.float32), out[index].score, keypoints.astype(np.float32)
        )
    if len(out) < 2:
        return out
    keep = _nms(np.stack([d.box for d in out]), np.array([d.score for d in out], dtype=np.float32))
    return [out[i] for i in keep.tolist()]
