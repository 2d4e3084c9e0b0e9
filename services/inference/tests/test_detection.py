"""Detection on real photos, for both packs and every runner: counts, positions, source pixels, filtering."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from recording import RecordingRunner

from facemint_inference.detect import detector_canvas
from facemint_inference.packs import PACKS
from facemint_inference.pipeline import ATTRIBUTES, AnalyzeOptions, Face, Pipeline
from facemint_inference.runners.ort import OrtRunner
from facemint_inference.settings import OrtSettings
from facemint_local.testmedia import ASTRONAUT, T1, bgr

T1_CENTRES = np.array([[796, 411], [518, 340], [112, 330], [957, 132], [1179, 337], [321, 209]], dtype=np.float32)
"""Face centres of t1.jpg in pixels (the six people of the photo, measured by eye on the detector output)."""


def centres(faces: list[Face]) -> NDArray[Any]:
    """Box centres of faces, shape [N, 2]."""
    boxes = np.array([face.detection.box for face in faces])
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def assert_same_faces(found: NDArray[Any], expected: NDArray[Any], tolerance: float) -> None:
    """Each expected centre has exactly one found centre within ``tolerance`` pixels."""
    assert len(found) == len(expected)
    distances = np.linalg.norm(found[:, None] - expected[None], axis=-1)
    assert (distances.min(axis=0) < tolerance).all(), distances.min(axis=0)
    assert sorted(distances.argmin(axis=0).tolist()) == list(range(len(expected)))


async def test_t1_has_six_faces_at_their_positions(pipeline: Pipeline) -> None:
    faces = (await pipeline.analyze([bgr(T1)], AnalyzeOptions.create()))[0]
    assert_same_faces(centres(faces), T1_CENTRES, tolerance=15)
    for face in faces:
        det = face.detection
        assert det.score >= 0.5
        assert (det.keypoints >= det.box[:2]).all() and (det.keypoints <= det.box[2:]).all()
        left_eye, right_eye = det.keypoints[0], det.keypoints[1]
        assert left_eye[0] < right_eye[0], "keypoint order is image left, image right"
    scores = [face.detection.score for face in faces]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("width", [3840, 7680], ids=["4K", "8K"])
async def test_upscaled_frame_gives_boxes_in_source_pixels(pipeline: Pipeline, width: int) -> None:
    t1 = bgr(T1)
    scale = min(width / t1.shape[1], 4320 / t1.shape[0])
    big = cv2.resize(t1, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    small_faces = (await pipeline.analyze([t1], AnalyzeOptions.create()))[0]
    big_faces = (await pipeline.analyze([big], AnalyzeOptions.create()))[0]
    assert_same_faces(centres(big_faces), centres(small_faces) * scale, tolerance=15 * scale)
    sizes = sorted(face.detection.width for face in big_faces)
    expected = sorted(face.detection.width * scale for face in small_faces)
    np.testing.assert_allclose(sizes, expected, rtol=0.15)


async def test_cropped_detector_input_finds_the_same_faces_as_the_square(
    pack_name: str, model_dir: Path, executor: ThreadPoolExecutor, canonical_face: NDArray[Any]
) -> None:
    # Only the in-process runner crops the detector input (Triton's config declares the square, which every Triton
    # test exercises), so this test runs its own ONNX Runtime session per pack instead of the parametrized runner.
    pack = PACKS[pack_name]
    runner = OrtRunner(OrtSettings(), executor)
    await runner.load([pack.detector.spec(model_dir)])
    wide = cv2.resize(bgr(T1), (1920, 1080), interpolation=cv2.INTER_LINEAR)  # fitted: 640 x 360
    assert detector_canvas([wide.shape], 640, square=False) == (640, 384)
    assert detector_canvas([wide.shape, (1920, 1080, 3)], 640, square=False) == (640, 640)  # with a portrait
    found = {}
    try:
        for square in (True, False):
            pipe = Pipeline(pack, runner, executor, canonical_face, 640, square_detector=square)
            faces = (await pipe.analyze([wide], AnalyzeOptions.create()))[0]
            found[square] = (centres(faces), [face.detection.score for face in faces])
    finally:
        await runner.close()
    assert_same_faces(found[False][0], found[True][0], tolerance=2)
    np.testing.assert_allclose(sorted(found[False][1]), sorted(found[True][1]), atol=0.02)


async def test_single_portrait_has_one_face(pipeline: Pipeline) -> None:
    faces = (await pipeline.analyze([bgr(ASTRONAUT)], AnalyzeOptions.create()))[0]
    assert len(faces) == 1
    assert_same_faces(centres(faces), np.array([[224, 118]]), tolerance=20)


async def test_min_face_size_drops_smaller_faces(pipeline: Pipeline) -> None:
    t1 = bgr(T1)
    faces = (await pipeline.analyze([t1], AnalyzeOptions.create()))[0]
    widths = sorted(min(f.detection.width, f.detection.height) for f in faces)
    limit = (widths[2] + widths[3]) / 2
    kept = (await pipeline.analyze([t1], AnalyzeOptions.create(min_face_size=int(limit))))[0]
    assert len(kept) == 3
    assert all(min(f.detection.width, f.detection.height) >= int(limit) for f in kept)


async def test_faces_below_min_face_size_cost_no_per_face_model(recorded: tuple[RecordingRunner, Pipeline]) -> None:
    recording, pipeline = recorded
    options = AnalyzeOptions.create(min_face_size=1000, attributes=sorted(ATTRIBUTES), want_embeddings=True)
    assert (await pipeline.analyze([bgr(T1)], options)) == [[]]
    # No face is left, so the second pass looks again (the detector, and the face mesh's presence check for the
    # open pack's candidates), but no per-face model runs.
    detector, presence = pipeline.pack.detector.name, pipeline.pack.landmarker.name
    assert recording.models().count(detector) == 2
    assert set(recording.models()) <= {detector, presence}


async def test_confidence_threshold_filters_detections(pipeline: Pipeline) -> None:
    t1 = bgr(T1)
    faces = (await pipeline.analyze([t1], AnalyzeOptions.create(confidence_threshold=0.3)))[0]
    cut = sorted(face.detection.score for face in faces)[2]
    strict = (await pipeline.analyze([t1], AnalyzeOptions.create(confidence_threshold=float(cut) + 1e-4)))[0]
    assert len(strict) == len([f for f in faces if f.detection.score > cut])
    assert all(face.detection.score > cut for face in strict)
