"""The glasses heads: the packaged weights file, and their decisions on real faces' embeddings."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from recording import RecordingRunner

from facemint_inference import attributes
from facemint_inference.align import warp
from facemint_inference.glasses import WEIGHTS_PATH, GlassesModel, default_model, has_glasses
from facemint_inference.packs import PACKS
from facemint_inference.pipeline import AnalyzeOptions, Pipeline
from facemint_local.testmedia import ASTRONAUT, bgr

SFACE = PACKS["open"].embedder.model_id


def test_packaged_weights_hold_a_head_for_every_packs_embedding_and_round_trip() -> None:
    assert WEIGHTS_PATH.stat().st_size < 200_000
    model = default_model()
    for pack in PACKS.values():
        head = model.head(pack.embedder.model_id)
        assert head.coef.shape == (pack.embedder.dim,)
        assert 0.0 < head.threshold < 1.0
        assert head.metadata["cross_validation"]["auc"] > 0.5
    again = GlassesModel.from_dict(model.to_dict())
    vectors = np.random.default_rng(2).normal(size=(3, PACKS["open"].embedder.dim))
    np.testing.assert_allclose(again.head(SFACE).probabilities(vectors), model.head(SFACE).probabilities(vectors))
    assert model.head(SFACE).probabilities(vectors[:0]).shape == (0,)


def test_a_head_takes_only_its_own_models_embeddings_at_any_length() -> None:
    with pytest.raises(ValueError, match="no glasses head for embedding model 'unknown'"):
        default_model().head("unknown")
    with pytest.raises(ValueError, match="128-dimensional"):
        has_glasses(np.ones((1, 512)), SFACE)
    vectors = np.random.default_rng(3).normal(size=(4, 128))
    head = default_model().head(SFACE)
    np.testing.assert_allclose(head.probabilities(vectors * 9.5), head.probabilities(vectors))


async def test_bare_face_is_not_glasses_and_drawn_rims_are(pipeline: Pipeline) -> None:
    image = bgr(ASTRONAUT)
    faces = (await pipeline.analyze([image], AnalyzeOptions.create()))[0]
    assert len(faces) == 1
    aligned = warp(image, attributes.aligned_matrix(faces[0].detection), 112)
    drawn = aligned.copy()
    for centre in ((38, 52), (74, 52)):
        cv2.ellipse(drawn, centre, (15, 11), 0, 0, 360, (20, 20, 20), 2)
    cv2.line(drawn, (53, 49), (59, 49), (20, 20, 20), 2)
    raw = await pipeline.embed_aligned(np.stack([aligned, drawn]))
    model_id = pipeline.pack.embedder.model_id
    bare_p, drawn_p = default_model().head(model_id).probabilities(raw)
    assert drawn_p > bare_p
    assert has_glasses(raw, model_id) == [False, True]


async def test_glasses_alone_run_the_embedding_model_once_and_return_no_embedding(
    recorded: tuple[RecordingRunner, Pipeline],
) -> None:
    recording, pipeline = recorded
    options = AnalyzeOptions.create(attributes=["glasses"])
    (face,) = (await pipeline.analyze([bgr(ASTRONAUT)], options))[0]
    assert face.glasses is False and face.embedding is None
    assert recording.models() == [pipeline.pack.detector.name, pipeline.pack.embedder.model.name]
    recording.calls.clear()
    both = AnalyzeOptions.create(attributes=["glasses"], want_embeddings=True)
    (face,) = (await pipeline.analyze([bgr(ASTRONAUT)], both))[0]
    assert face.glasses is False and face.embedding is not None
    assert recording.models().count(pipeline.pack.embedder.model.name) == 1, "one embedding call feeds both"
