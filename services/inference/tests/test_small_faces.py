"""Boxes of small faces, redrawn by the detector on zoomed tiles (``detect.tile_mosaic`` / ``detect.redraw``).

A face a few detector pixels tall gets a coarse box from the first pass; the photo used here is ``t1.jpg`` shrunk
so that its six faces are about 16 px wide, on a 1024 x 768 grey canvas (the detector sees it at 0.625 x, the
faces at about 10 px), as in a crowd photo.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray
from recording import RecordingRunner

from facemint_inference.detect import TILE, TILE_CONTEXT, Detection, redraw, tile_mosaic
from facemint_inference.pipeline import AnalyzeOptions, Pipeline
from facemint_local.testmedia import T1, bgr

FACE_PX = 16
"""Median face width after shrinking."""
CANVAS = (1024, 768)


def iou(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def shrunk_t1(scale: float) -> NDArray[Any]:
    """``t1.jpg`` scaled by ``scale`` in the top-left corner of a grey canvas."""
    small = cv2.resize(bgr(T1), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((CANVAS[1], CANVAS[0], 3), 127, np.uint8)
    canvas[: small.shape[0], : small.shape[1]] = small
    return canvas


async def test_small_faces_get_boxes_that_overlap_the_face(pipeline: Pipeline) -> None:
    full = (await pipeline.detect([bgr(T1)], 0.5))[0]
    scale = FACE_PX / float(np.median([d.width for d in full]))
    found = (await pipeline.detect([shrunk_t1(scale)], 0.3))[0]
    overlaps = [max(iou(d.box, f.box * scale) for d in found) for f in full]
    assert min(overlaps) >= 0.5, overlaps
    assert np.median(overlaps) >= 0.8, overlaps  # first-pass boxes alone: median 0.68 / 0.77


async def test_boxes_are_redrawn_only_on_frames_with_small_detections(
    recorded: tuple[RecordingRunner, Pipeline],
) -> None:
    recording, pipeline = recorded
    detector = pipeline.pack.detector.name
    full = (await pipeline.detect([bgr(T1)], 0.5))[0]
    assert recording.models().count(detector) == 1
    recording.calls.clear()
    shrunk = shrunk_t1(FACE_PX / float(np.median([d.width for d in full])))
    await pipeline.detect([shrunk], 0.5)
    assert recording.models().count(detector) == 2
    recording.calls.clear()
    await pipeline.analyze([shrunk], AnalyzeOptions.create(min_face_size=1, single_pass=True))
    assert recording.models().count(detector) == 1, "video frames (single_pass) keep the first boxes"


def _detection(box: list[float], score: float) -> Detection:
    x1, y1, x2, y2 = box
    points = np.array([[x1, y1], [x2, y1], [(x1 + x2) / 2, (y1 + y2) / 2], [x1, y2], [x2, y2]], np.float32)
    return Detection(np.array(box, np.float32), score, points)


def test_a_tile_box_maps_back_to_source_pixels_and_keeps_the_first_score() -> None:
    image = np.zeros((400, 600, 3), np.uint8)
    first = [_detection([100, 100, 120, 124], 0.9), _detection([300, 200, 310, 210], 0.6)]
    mosaics, tiles = tile_mosaic(image, first, 640)
    assert len(mosaics) == 1 and mosaics[0].shape == (640, 640, 3)
    zoom = TILE / (TILE_CONTEXT * 24)
    assert tiles[0].origin == (0, 0) and tiles[1].origin == (TILE, 0) and tiles[0].zoom == zoom
    # On the first tile the detector draws a box 22 x 26 source pixels around the tile's centre (the box centre
    # 110, 112); nothing is centred on the second tile, whose box stays as it was.
    on_tile = _detection([64 - 11 * zoom, 64 - 13 * zoom, 64 + 11 * zoom, 64 + 13 * zoom], 0.4)
    off_centre = _detection([TILE + 2, 2, TILE + 20, 20], 0.8)
    out = redraw(first, [0, 1], tiles, [[on_tile, off_centre]], image.shape)
    np.testing.assert_allclose(out[0].box, [99, 99, 121, 125], atol=1e-4)
    np.testing.assert_allclose(out[0].keypoints[2], [110, 112], atol=1e-4)
    assert out[0].score == 0.9
    assert out[1] is first[1]
