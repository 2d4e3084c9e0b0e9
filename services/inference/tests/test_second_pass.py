"""Duplicate boxes, false faces, the second detection pass and the size floor's fallback, on real images through
the real models.

The images come from pinned registry packages (``facemint_local.testmedia``): tight grey face crops of
scikit-image's ``lfw_subset.npy`` (a face filling the whole image, the case where the first pass finds nothing or
two boxes), its astronaut portrait shrunk until the face is 16 px wide, and insightface's group photo.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray
from recording import RecordingRunner

from facemint_inference.detect import Detection, contained_suppression
from facemint_inference.pipeline import AnalyzeOptions, Pipeline
from facemint_inference.second_pass import pad_frame, unpad
from facemint_local.testmedia import ASTRONAUT, LFW_SUBSET, T1, bgr, path

COMPARE_FLOOR = 20
"""The library's ``detect_min_face_size``, with which compare and enrolment ask for the faces of an image."""
NO_FIRST_PASS_FACE = 1
"""LFW face crop on which neither pack's first pass finds a face."""
TWO_BOXES = 98
"""LFW face crop on which the open pack's detector gave two boxes (a tight one inside a loose one) before
containment suppression."""


def lfw_face(index: int) -> NDArray[Any]:
    """Face crop ``index`` of scikit-image's LFW subset, upscaled 6x to 150 x 150 BGR (as ``bench/hard.py``)."""
    grey = np.round(np.load(path(LFW_SUBSET))[index] * 255).astype(np.uint8)
    return cv2.cvtColor(cv2.resize(grey, None, fx=6, fy=6, interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2BGR)


async def test_tight_grey_crop_without_a_first_pass_face_gives_one_face(pipeline: Pipeline) -> None:
    image = lfw_face(NO_FIRST_PASS_FACE)
    assert (await pipeline.detect([image], 0.5))[0] == [], "the first pass alone finds nothing here"
    (faces,) = await pipeline.analyze([image], AnalyzeOptions.create(want_embeddings=True))
    assert len(faces) == 1
    box = faces[0].detection.box
    assert (box >= 0).all() and (box[2:] <= 150).all(), "boxes of the padded pass are in the crop's pixels"
    assert box[2] - box[0] > 60, "the face fills most of the crop"
    assert faces[0].embedding is not None


async def test_tight_box_inside_a_loose_box_leaves_one_face(pipeline: Pipeline) -> None:
    (faces,) = await pipeline.analyze([lfw_face(TWO_BOXES)], AnalyzeOptions.create())
    assert len(faces) == 1


async def test_second_pass_runs_only_when_the_first_finds_nothing(recorded: tuple[RecordingRunner, Pipeline]) -> None:
    recording, pipeline = recorded
    detector = pipeline.pack.detector.name
    await pipeline.analyze([bgr(T1)], AnalyzeOptions.create())
    assert recording.models().count(detector) == 1
    recording.calls.clear()
    await pipeline.analyze([lfw_face(NO_FIRST_PASS_FACE)], AnalyzeOptions.create())
    assert recording.models().count(detector) == 2
    recording.calls.clear()
    (faces,) = await pipeline.analyze([lfw_face(NO_FIRST_PASS_FACE)], AnalyzeOptions.create(single_pass=True))
    assert recording.models().count(detector) == 1, "video frames (single_pass) are detected once"
    assert faces == []


def _area(detection: Detection) -> float:
    return detection.width * detection.height


async def test_a_face_below_the_floor_is_kept_only_with_the_fallback(pipeline: Pipeline) -> None:
    clean = bgr(ASTRONAUT)
    (face,) = (await pipeline.detect([clean], 0.5))[0]
    scale = 16 / face.width  # the face is 16 px wide, as bench/hard.py's ``lowres`` degradation makes it
    small = cv2.resize(clean, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    floor = {"min_face_size": COMPARE_FLOOR, "want_embeddings": True}
    (none,) = await pipeline.analyze([small], AnalyzeOptions.create(**floor))
    assert none == [], "the floor drops the only face"
    (faces,) = await pipeline.analyze([small], AnalyzeOptions.create(**floor, largest_face_fallback=True))
    assert len(faces) == 1 and faces[0].embedding is not None
    assert faces[0].detection.width < COMPARE_FLOOR
    assert np.abs(faces[0].detection.box - face.box * scale).max() < 4, "the face of the clean portrait, scaled"


async def test_the_fallback_takes_the_largest_face_of_both_passes(pipeline: Pipeline) -> None:
    image = bgr(T1)
    found = (await pipeline.detect([image], 0.5))[0] + (await pipeline.detect_padded([image], 0.5))[0]
    floor = round(max(max(d.width, d.height) for d in found)) + 1  # every face of the group photo is below it
    options = AnalyzeOptions.create(min_face_size=floor, largest_face_fallback=True)
    (faces,) = await pipeline.analyze([image], options)
    assert len(faces) == 1
    assert faces[0].detection.box.tolist() == max(found, key=_area).box.tolist()


async def test_the_fallback_changes_nothing_where_a_face_reaches_the_floor(pipeline: Pipeline) -> None:
    image = bgr(T1)
    options = {"min_face_size": COMPARE_FLOOR}
    (plain,) = await pipeline.analyze([image], AnalyzeOptions.create(**options))
    (fallback,) = await pipeline.analyze([image], AnalyzeOptions.create(**options, largest_face_fallback=True))
    assert len(plain) == 6
    assert [f.detection.box.tolist() for f in fallback] == [f.detection.box.tolist() for f in plain]


def test_containment_keeps_the_better_of_nested_boxes_and_both_of_neighbours() -> None:
    boxes = np.array(
        [[17, 42, 93, 98], [5, 0, 128, 122], [200, 40, 260, 100], [240, 40, 300, 100]], dtype=np.float32
    )  # by descending score: a tight box, a loose box around it, two faces side by side overlapping by a third
    assert contained_suppression(boxes, np.arange(4)).tolist() == [0, 2, 3]


@pytest.mark.parametrize("shape", [(150, 150, 3), (90, 200, 3)])
def test_padding_maps_back_to_frame_pixels(shape: tuple[int, int, int]) -> None:
    image = np.zeros(shape, np.uint8)
    padded, border = pad_frame(image)
    assert border == round(0.5 * max(shape[:2]))
    assert padded.shape[:2] == (shape[0] + 2 * border, shape[1] + 2 * border)
    inside = Detection(np.array([border + 10, border + 5, border + 60, border + 80], np.float32), 0.9, np.zeros((5, 2)))
    outside = Detection(np.array([0, 0, border - 1, border - 1], np.float32), 0.9, np.zeros((5, 2)))
    (mapped,) = unpad([inside, outside], border, shape)
    assert mapped.box.tolist() == [10, 5, 60, 80]
