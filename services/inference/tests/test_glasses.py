"""The glasses classifier: its HOG features, the packaged weights file and its decisions on real faces."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from facemint_inference import attributes
from facemint_inference.align import warp
from facemint_inference.glasses import (
    WEIGHTS_PATH,
    GlassesModel,
    HogParams,
    default_model,
    glasses_probabilities,
    has_glasses,
    hog_features,
)
from facemint_inference.pipeline import AnalyzeOptions, Pipeline
from facemint_local.testmedia import ASTRONAUT, bgr


def reference_hog(crop: NDArray[Any], params: HogParams) -> NDArray[np.float64]:
    """HOG written out pixel by pixel: central differences, bilinear orientation votes, 2x2 L2-Hys blocks."""
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float64)
    down, across = params.cells
    cells = np.zeros((down, across, params.bins))
    for r in range(down * params.cell):
        for c in range(across * params.cell):
            y, x = params.rows[0] + r, params.cols[0] + c
            gx, gy = grey[y, x + 1] - grey[y, x - 1], grey[y + 1, x] - grey[y - 1, x]
            position = (np.arctan2(gy, gx) % np.pi) * params.bins / np.pi
            low = int(np.floor(position))
            weight = position - low
            cells[r // params.cell, c // params.cell, low % params.bins] += np.hypot(gx, gy) * (1 - weight)
            cells[r // params.cell, c // params.cell, (low + 1) % params.bins] += np.hypot(gx, gy) * weight
    blocks = []
    for i in range(down - 1):
        for j in range(across - 1):
            block = np.concatenate([cells[i, j], cells[i, j + 1], cells[i + 1, j], cells[i + 1, j + 1]])
            block = np.minimum(block / np.sqrt((block**2).sum() + 1e-3), 0.2)
            blocks.append(block / np.sqrt((block**2).sum() + 1e-3))
    return np.concatenate(blocks)


def test_hog_features_match_a_direct_implementation() -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 112, 112, 3), dtype=np.uint8)
    params = HogParams()
    batch = hog_features(crops, params)
    assert batch.shape == (2, params.dim)
    for crop, features in zip(crops, batch, strict=True):
        np.testing.assert_allclose(features, reference_hog(crop, params), atol=1e-5)
    np.testing.assert_allclose(hog_features(crops[0], params), batch[0])


def test_hog_features_ignore_a_brightness_offset() -> None:
    rng = np.random.default_rng(1)
    crop = rng.integers(40, 200, (112, 112, 3), dtype=np.uint8)
    params = HogParams()
    np.testing.assert_allclose(hog_features(crop + 30, params), hog_features(crop, params), atol=1e-6)


def test_packaged_weights_are_small_complete_and_round_trip() -> None:
    assert WEIGHTS_PATH.stat().st_size < 1_000_000
    model = default_model()
    assert model.coef.shape == (model.params.dim,)
    assert 0.0 < model.threshold < 1.0
    assert model.metadata["cross_validation"]["auc"] > 0.5
    again = GlassesModel.from_dict(model.to_dict())
    crops = np.random.default_rng(2).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    np.testing.assert_allclose(again.probabilities(crops), model.probabilities(crops), atol=1e-6)
    assert glasses_probabilities(crops[:0]).shape == (0,)


async def test_bare_face_is_not_glasses_and_drawn_rims_raise_the_probability(pipeline: Pipeline) -> None:
    image = bgr(ASTRONAUT)
    faces = (await pipeline.analyze([image], AnalyzeOptions.create()))[0]
    assert len(faces) == 1
    aligned = warp(image, attributes.aligned_matrix(faces[0].detection), 112)
    assert has_glasses(aligned[None]) == [False]
    drawn = aligned.copy()
    for centre in ((38, 52), (74, 52)):
        cv2.ellipse(drawn, centre, (15, 11), 0, 0, 360, (20, 20, 20), 2)
    cv2.line(drawn, (53, 49), (59, 49), (20, 20, 20), 2)
    bare_p, drawn_p = glasses_probabilities(np.stack([aligned, drawn]))
    assert drawn_p > bare_p
    assert has_glasses(drawn[None]) == [True]
