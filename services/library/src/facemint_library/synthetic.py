"""Face-like synthetic embeddings for tests and benchmarks.

Real face embeddings cluster by identity: each person has a direction, and photos of that person scatter around it.
:func:`identity_samples` draws identity centres uniformly on the unit sphere and samples around them with isotropic
Gaussian noise, scaled so that a sample's expected cosine to its centre is ``centre_cosine`` (0.8 gives same-person
pair cosines near 0.64 and different-person cosines near 0, which is roughly what ArcFace-style models produce).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def unit_rows(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 norm."""
    out: npt.NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def identity_centres(rng: np.random.Generator, identities: int, dim: int) -> npt.NDArray[np.float32]:
    """Random unit vectors, one per identity."""
    return unit_rows(rng.standard_normal((identities, dim), dtype=np.float32))


def around(
    rng: np.random.Generator, centres: npt.NDArray[np.float32], centre_cosine: float = 0.8
) -> npt.NDArray[np.float32]:
    """One noisy unit sample around each given centre (rows), at the given expected cosine to it."""
    dim = centres.shape[1]
    sigma = math.sqrt((1.0 / centre_cosine**2 - 1.0) / dim)
    return unit_rows(centres + rng.standard_normal(centres.shape, dtype=np.float32) * np.float32(sigma))


def identity_samples(
    rng: np.random.Generator, identities: int, per_identity: int, dim: int, centre_cosine: float = 0.8
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """``identities * per_identity`` samples and their identity labels, grouped by identity."""
    centres = identity_centres(rng, identities, dim)
    labels = np.repeat(np.arange(identities, dtype=np.int64), per_identity)
    return around(rng, centres[labels], centre_cosine), labels
