"""The accuracy benchmark's metrics, box matching and hand-label files (no models or media needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import media
from bench.accuracy import DETECTION_COUNTS, false_faces, roc_auc, tar_at_far
from facemint_inference.detect import Detection
from facemint_local import testmedia

GENDERS = {"female", "male", None}
EXPRESSIONS = {"happy", "neutral", None}


def test_roc_auc_counts_ties_half() -> None:
    labels = np.array([True, True, False, False])
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5


def test_tar_at_far_allows_the_stated_share_of_impostors() -> None:
    impostor = np.linspace(0.0, 0.99, 100)
    genuine = np.array([0.5, 0.975, 0.985, 1.0])
    tar, threshold = tar_at_far(genuine, impostor, 1e-2)
    assert threshold == pytest.approx(0.98)
    assert np.mean(impostor > threshold) <= 1e-2
    assert tar == 0.5


def test_match_is_one_to_one_and_respects_the_overlap_threshold() -> None:
    labelled = [[0, 0, 10, 10], [20, 0, 30, 10]]
    boxes = [np.array([21, 0, 31, 10]), np.array([0, 0, 10, 11]), np.array([100, 100, 110, 110])]
    assert media.match(boxes, labelled) == {0: 1, 1: 0}
    assert media.match([np.array([0, 0, 10, 10])], [[0, 0, 10, 10], [0, 0, 10, 10]]) in ({0: 0}, {1: 0})
    assert media.iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)


def test_hand_labels_are_well_formed() -> None:
    faces = media.load_labels()["faces"]
    assert sum(len(v) for v in faces.values()) >= 200
    for key, labelled in faces.items():
        assert not key.startswith("/"), "media keys are relative"
        for face in labelled:
            x1, y1, x2, y2 = face["box"]
            assert x2 > x1 and y2 > y1
            assert face["gender"] in GENDERS and face["expression"] in EXPRESSIONS
            assert face["glasses"] in (True, False, None) and face["mask"] is False
            assert face["age"] is None or 0 <= face["age"] <= 100


def test_every_package_photo_of_the_labels_is_pinned_by_sha256() -> None:
    keys = set(media.load_labels()["faces"]) | set(json.loads(DETECTION_COUNTS.read_text())["images"])
    package_keys = {key for key in keys if ":" in key.split("/", 1)[0]}
    assert len(package_keys) >= 15
    assert package_keys <= set(testmedia.MEMBERS), "labelled package photos that facemint_local.testmedia lacks"


def test_visible_face_counts_are_consistent() -> None:
    counts = json.loads(DETECTION_COUNTS.read_text())
    for entry in counts["images"].values():
        assert entry["visible"] == len(entry["faces"]) + len(entry["partial"])
        assert all(len(box) == 4 for box in entry["faces"] + entry["partial"] + entry["ignore"])
        assert isinstance(entry["crowd"], bool)


def _detection(x1: float, y1: float, x2: float, y2: float) -> Detection:
    return Detection(box=np.array([x1, y1, x2, y2], np.float32), score=0.6, keypoints=np.zeros((5, 2), np.float32))


@pytest.mark.parametrize("crowd", [False, True])
def test_false_faces_split_loose_boxes_from_no_face_at_every_size(crowd: bool) -> None:
    entry = {"faces": [[100, 100, 200, 220]], "partial": [], "ignore": [[400, 0, 500, 100]], "crowd": crowd}
    found = [
        _detection(100, 100, 200, 220),  # the face (used)
        _detection(90, 120, 230, 260),  # a second, loose box centred on the face
        _detection(300, 300, 310, 312),  # 10 px, on no face: a false face unless in a crowd photo
        _detection(600, 300, 700, 400),  # large, on no face
        _detection(420, 20, 440, 40),  # in an ignore region
    ]
    loose, no_face = false_faces(found, {0}, entry, min_px=32)
    assert loose == [found[1]]
    assert no_face == ([found[3]] if crowd else [found[2], found[3]])


def test_degradations_are_deterministic_and_follow_the_face_box() -> None:
    from bench.hard import DEGRADATIONS, LOWRES_FACE_PX, degrade

    image = np.random.default_rng(0).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    box = [50.0, 40.0, 150.0, 160.0]
    for kind in DEGRADATIONS:
        assert np.array_equal(degrade(image, box, kind), degrade(image, box, kind)), kind
    for kind in ("lowres", "lowres_24", "lowres_32"):
        assert degrade(image, box, kind).shape[1] == round(300 * LOWRES_FACE_PX[kind] / 100), kind
    grey = degrade(image, box, "grey_crop")
    assert grey.shape == (150, 150, 3) and (grey[..., 0] == grey[..., 2]).all()
    barred = degrade(image, box, "eyebar")
    assert (barred[80:100, 50:150] == 0).all() and np.array_equal(barred[:70], image[:70])


def test_drawn_glasses_are_seeded_and_stay_on_the_eye_band() -> None:
    from bench.eyewear import GlassesMaker

    crops = np.random.default_rng(3).integers(90, 160, (6, 112, 112, 3), dtype=np.uint8)
    drawn = GlassesMaker(5).on_aligned(crops)
    assert np.array_equal(drawn, GlassesMaker(5).on_aligned(crops))
    change = np.abs(drawn.astype(np.int16) - crops).max(axis=-1)
    for face in change:
        assert face[42:62, 25:50].mean() > 3 * face[85:].mean(), "the frame is around the eyes, not on the mouth"
        assert (face[85:] <= 6).all(), "below the nose only sensor noise is added"
    # A masked crop whose frame is shifted: the glasses follow the map, here 6 px down.
    shifted = GlassesMaker(5).on_aligned(crops, np.tile(np.array([[1.0, 0, 0], [0, 1.0, 6.0]]), (6, 1, 1)))
    moved = np.abs(shifted.astype(np.int16) - crops).max(axis=-1)
    assert moved[:, 48:68, 25:50].mean() > moved[:, 36:42, 25:50].mean()


def test_dark_mask_covers_the_face_from_mid_nose_down() -> None:
    from bench.masks import MaskMaker

    crops = np.full((1, 112, 112, 3), 200, np.uint8)
    masked = MaskMaker(0).on_aligned(crops, ["dark"])[0]
    assert (masked[70:110, 20:92] < 90).all(), "dark fabric over the mouth and chin"
    assert (masked[:58] == 200).all(), "eyes and forehead untouched"
