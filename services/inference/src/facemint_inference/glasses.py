"""Glasses classifier: a logistic-regression head on the face-recognition embedding, one head per embedding model.

No glasses model with weights exists in the package registries, so Facemint trains its own small one on hand
labelled real faces (``services/inference/tools/train_glasses.py``; labels in
``services/inference/tools/labels/attributes.json``), with glasses also drawn onto the faces without them
(``bench/eyewear.py``) because only seven labelled persons wear glasses (ADR 0024).

The input is the unit-length embedding of the ArcFace-aligned 112 x 112 crop, the vector the pipeline computes for
recognition (ADR 0029). A network trained on millions of faces keeps eyewear in its embedding, so a linear head on
it learns glasses from far fewer labelled persons than one on hand-made eye-band features did (grouped
cross-validated AUC 0.975 against 0.864, open pack), and it finds glasses under a mask without taking the mask for
a rim (on faces with unseen mask styles recall 0.807 against 0.359, specificity 0.922 against 0.915). Each pack's
embedding model gets its own head, keyed by the embedding's ``model_id``: a request that asks for glasses runs the
recognition model even when it does not want the embedding, and a request that wants both pays for one call.

The weights file (``data/glasses.json``, about 14 KB) holds per head the coefficients with the training
standardisation folded in, the decision threshold and the cross-validated accuracy.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

WEIGHTS_PATH = Path(__file__).with_name("data") / "glasses.json"


def unit_rows(embeddings: np.ndarray) -> np.ndarray:
    """``[N, dim]`` embeddings scaled to unit length (float64): what a head reads and is trained on."""
    vectors = embeddings.astype(np.float64)
    return np.asarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))


@dataclass(frozen=True)
class GlassesHead:
    """A trained linear classifier on one model's unit-length embeddings (standardisation folded in)."""

    coef: np.ndarray = field(repr=False)
    intercept: float
    threshold: float
    """Probability above which a face is reported as wearing glasses."""
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    """Training data counts and cross-validated accuracy (see the weights file)."""

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """Probability of glasses for ``[N, dim]`` embeddings (normalised to unit length here; ``[N]`` float64)."""
        if len(embeddings) == 0:
            return np.zeros(0)
        if embeddings.shape[1] != len(self.coef):
            raise ValueError(f"glasses head takes {len(self.coef)}-dimensional embeddings, got {embeddings.shape[1]}")
        logits = unit_rows(embeddings) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0))))

    def predict(self, embeddings: np.ndarray) -> list[bool]:
        """Whether each face wears glasses (probability above ``threshold``)."""
        return [bool(p > self.threshold) for p in self.probabilities(embeddings)]

    def to_dict(self) -> dict[str, Any]:
        """JSON form of one head."""
        return {
            "intercept": round(self.intercept, 8),
            "threshold": round(self.threshold, 6),
            "coef": [round(float(v), 6) for v in self.coef],
            **self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlassesHead:
        """Inverse of :meth:`to_dict`."""
        known = {"intercept", "threshold", "coef"}
        return cls(
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            metadata={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class GlassesModel:
    """The heads of every embedding model, keyed by the embedding's ``model_id``."""

    heads: dict[str, GlassesHead]
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    def head(self, model_id: str) -> GlassesHead:
        """The head trained on ``model_id``'s embeddings."""
        try:
            return self.heads[model_id]
        except KeyError:
            raise ValueError(f"no glasses head for embedding model {model_id!r} in {WEIGHTS_PATH.name}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the weights file."""
        return {
            "model": "logistic regression on the unit-length recognition embedding of the ArcFace-aligned crop",
            **self.metadata,
            "heads": {model_id: head.to_dict() for model_id, head in sorted(self.heads.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlassesModel:
        """Inverse of :meth:`to_dict`."""
        return cls(
            heads={model_id: GlassesHead.from_dict(head) for model_id, head in data["heads"].items()},
            metadata={k: v for k, v in data.items() if k not in {"model", "heads"}},
        )

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> GlassesModel:
        """Read a weights file."""
        return cls.from_dict(json.loads(path.read_text()))


@functools.cache
def default_model() -> GlassesModel:
    """The packaged model (``data/glasses.json``), read once."""
    return GlassesModel.load()


def has_glasses(embeddings: np.ndarray, model_id: str) -> list[bool]:
    """Glasses decisions for ``[N, dim]`` embeddings of ``model_id``, at the packaged head's threshold."""
    return default_model().head(model_id).predict(embeddings)
