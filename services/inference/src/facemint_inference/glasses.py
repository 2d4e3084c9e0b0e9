"""Glasses classifier: logistic regression on HOG features of the eye band of the aligned 112 x 112 face crop.

No glasses model with weights exists in the package registries, so Facemint trains its own small one on hand
labelled real faces (``services/inference/tools/train_glasses.py``; labels in
``services/inference/tools/labels/attributes.json``), with glasses also drawn onto the faces without them
(``bench/eyewear.py``) because only seven labelled persons wear glasses (ADR 0024). The input is the
ArcFace-aligned crop that the embedding also uses (eyes at rows ~52), so glasses cost no extra crop and well under
a millisecond per face.

Features: histograms of oriented gradients (unsigned, ``bins`` orientations with bilinear voting) in
``cell`` x ``cell`` pixel cells over ``rows`` x ``cols`` of the grey crop, normalised per 2 x 2 block of cells
(L2, clipped at 0.2, renormalised: Dalal and Triggs' L2-Hys). Rims, bridges and lens edges are strong
oriented edges across and around the eyes, which is what these histograms describe.

The weights file (``data/glasses.json``, a few tens of KB) holds the feature parameters, the coefficients with
the training standardisation folded in, the decision threshold and the cross-validated accuracy of the model.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

WEIGHTS_PATH = Path(__file__).with_name("data") / "glasses.json"
ALIGNED_SIZE = 112
_CLIP = 0.2
_EPS = 1e-3


@dataclass(frozen=True)
class HogParams:
    """Where and how the HOG features are computed on the 112 x 112 aligned crop."""

    rows: tuple[int, int] = (36, 68)
    cols: tuple[int, int] = (20, 92)
    cell: int = 8
    bins: int = 9

    @property
    def cells(self) -> tuple[int, int]:
        """Number of cells down and across."""
        return (self.rows[1] - self.rows[0]) // self.cell, (self.cols[1] - self.cols[0]) // self.cell

    @property
    def dim(self) -> int:
        """Length of the feature vector (2 x 2 cell blocks, stride one cell)."""
        down, across = self.cells
        return (down - 1) * (across - 1) * 4 * self.bins

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"rows": list(self.rows), "cols": list(self.cols), "cell": self.cell, "bins": self.bins}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HogParams:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(data["rows"]), tuple(data["cols"]), int(data["cell"]), int(data["bins"]))  # type: ignore[arg-type]


def hog_features(crops: np.ndarray, params: HogParams) -> np.ndarray:
    """HOG features of a batch of aligned crops.

    Args:
        crops: ``[N, 112, 112, 3]`` uint8 BGR crops aligned to the ArcFace template (or one ``[112, 112, 3]`` crop).
        params: Region, cell size and orientation bins.

    Returns:
        ``[N, params.dim]`` float32 (``[params.dim]`` for a single crop).
    """
    single = crops.ndim == 3
    batch = crops[None] if single else crops
    if batch.shape[1:3] != (ALIGNED_SIZE, ALIGNED_SIZE):
        raise ValueError(f"expected {ALIGNED_SIZE}x{ALIGNED_SIZE} aligned crops, got {batch.shape[1:3]}")
    (r0, r1), (c0, c1) = params.rows, params.cols
    grey = np.stack([cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) for crop in batch]).astype(np.float32)
    # Central differences over the region plus a one-pixel margin (the region is inside the crop).
    patch = grey[:, r0 - 1 : r1 + 1, c0 - 1 : c1 + 1]
    gx = patch[:, 1:-1, 2:] - patch[:, 1:-1, :-2]
    gy = patch[:, 2:, 1:-1] - patch[:, :-2, 1:-1]
    magnitude = np.hypot(gx, gy)
    position = (np.arctan2(gy, gx) % np.pi) * (params.bins / np.pi)
    low = np.floor(position)
    upper_weight = position - low
    low_bin = low.astype(np.int64) % params.bins
    high_bin = (low_bin + 1) % params.bins
    down, across = params.cells
    n = len(batch)
    # Each pixel votes into its cell's two nearest orientation bins; one bincount accumulates every vote.
    cell_of = _cell_index(params)
    base = (np.arange(n)[:, None, None] * (down * across) + cell_of) * params.bins
    size = n * down * across * params.bins
    valid = np.broadcast_to(cell_of >= 0, magnitude.shape)
    cells = np.bincount((base + low_bin)[valid], (magnitude * (1 - upper_weight))[valid], minlength=size)
    cells += np.bincount((base + high_bin)[valid], (magnitude * upper_weight)[valid], minlength=size)
    cells = cells.reshape(n, down, across, params.bins)
    blocks = np.concatenate(
        [cells[:, :-1, :-1], cells[:, :-1, 1:], cells[:, 1:, :-1], cells[:, 1:, 1:]], axis=-1
    ).reshape(n, (down - 1) * (across - 1), 4 * params.bins)
    blocks = blocks / np.sqrt((blocks**2).sum(axis=-1, keepdims=True) + _EPS)
    blocks = np.minimum(blocks, _CLIP)
    blocks = blocks / np.sqrt((blocks**2).sum(axis=-1, keepdims=True) + _EPS)
    features = blocks.reshape(n, -1).astype(np.float32)
    return features[0] if single else features


@functools.cache
def _cell_index(params: HogParams) -> np.ndarray:
    """Cell number of every pixel of the region (row-major), -1 for pixels beyond the last whole cell."""
    height, width = params.rows[1] - params.rows[0], params.cols[1] - params.cols[0]
    down, across = params.cells
    rows, cols = np.mgrid[:height, :width] // params.cell
    index = rows * across + cols
    index[(rows >= down) | (cols >= across)] = -1
    return index


@dataclass(frozen=True)
class GlassesModel:
    """A trained linear classifier on :func:`hog_features` (standardisation folded into the weights)."""

    params: HogParams
    coef: np.ndarray = field(repr=False)
    intercept: float
    threshold: float
    """Probability above which a face is reported as wearing glasses."""
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)
    """Training data counts and cross-validated accuracy (see the weights file)."""

    def __post_init__(self) -> None:
        if self.coef.shape != (self.params.dim,):
            raise ValueError(f"glasses model: {self.coef.shape[0]} weights for {self.params.dim} features")

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """Probability of glasses for ``[N, 112, 112, 3]`` aligned BGR crops (``[N]`` float64)."""
        if len(crops) == 0:
            return np.zeros(0)
        logits = hog_features(crops, self.params).astype(np.float64) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -60.0, 60.0)))

    def predict(self, crops: np.ndarray) -> list[bool]:
        """Whether each aligned crop wears glasses (probability above ``threshold``)."""
        return [bool(p > self.threshold) for p in self.probabilities(crops)]

    def to_dict(self) -> dict[str, Any]:
        """JSON form of the weights file."""
        return {
            "model": "logistic regression on eye-band HOG of the ArcFace-aligned 112x112 crop",
            "features": self.params.to_dict(),
            "intercept": round(self.intercept, 8),
            "threshold": round(self.threshold, 6),
            "coef": [round(float(v), 6) for v in self.coef],
            **self.metadata,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GlassesModel:
        """Inverse of :meth:`to_dict`."""
        known = {"model", "features", "intercept", "threshold", "coef"}
        return cls(
            params=HogParams.from_dict(data["features"]),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            metadata={k: v for k, v in data.items() if k not in known},
        )

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> GlassesModel:
        """Read a weights file."""
        return cls.from_dict(json.loads(path.read_text()))


@functools.cache
def default_model() -> GlassesModel:
    """The packaged model (``data/glasses.json``), read once."""
    return GlassesModel.load()


def glasses_probabilities(aligned: np.ndarray) -> np.ndarray:
    """Probability of glasses for ``[N, 112, 112, 3]`` ArcFace-aligned BGR crops, with the packaged model."""
    return default_model().probabilities(aligned)


def has_glasses(aligned: np.ndarray) -> list[bool]:
    """Glasses decisions for ``[N, 112, 112, 3]`` ArcFace-aligned BGR crops, at the packaged model's threshold."""
    return default_model().predict(aligned)
