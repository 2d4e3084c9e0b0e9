"""The second detection pass, for frames where the first pass finds no face.

Decided in ADR 0020 and measured by ``make bench-accuracy`` (``docs/accuracy.md``). A detector misses a face
that fills the whole image (a tight crop) and often a blurred, noisy or tiny one. When a frame has no face after
the first pass, it is detected again on a canvas padded by ``PAD`` of its longer side on every side (grey, so the
face no longer touches the border and is seen at half the scale). With the face mesh (open pack), whose
face-presence output says whether its crop holds a face, the threshold drops to ``RETRY_THRESHOLD`` and every
detection of this pass must have a presence of at least ``PRESENCE_MIN``. The pass only runs where the first found
nothing, so frames with faces cost the same.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from facemint_inference.detect import Detection

PAD = 0.5
"""Border added on every side in the second pass, as a share of the frame's longer side."""
PAD_VALUE = 127
"""Grey level of the border (black borders read as dark hair or background to the detectors just as well)."""
RETRY_THRESHOLD = 0.3
"""Detection threshold of the second pass when a presence check confirms each face (never above the request's)."""
PRESENCE_MIN = 0.5
"""Face-mesh presence probability below which a second-pass detection is not a face."""


def pad_frame(image: NDArray[Any]) -> tuple[NDArray[Any], int]:
    """The frame on a grey canvas with a border of ``PAD`` times its longer side on every side.

    Returns:
        The padded frame and the border in pixels.
    """
    border = max(1, round(PAD * max(image.shape[:2])))
    padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return padded, border


def unpad(detections: list[Detection], border: int, frame_shape: tuple[int, ...]) -> list[Detection]:
    """Map detections on a padded canvas back to the frame, clipping boxes to it; boxes left empty are dropped."""
    height, width = frame_shape[:2]
    limits = np.array([width, height, width, height], dtype=np.float32)
    out = []
    for d in detections:
        box = np.clip(d.box - border, 0, limits).astype(np.float32)
        if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:
            out.append(Detection(box=box, score=d.score, keypoints=(d.keypoints - border).astype(np.float32)))
    return out


def presence(logits: NDArray[Any]) -> NDArray[Any]:
    """Face-presence probabilities from the face mesh's presence logits (any shape, one per face)."""
    values = np.asarray(logits, dtype=np.float64).reshape(-1)
    result: NDArray[Any] = 1.0 / (1.0 + np.exp(-values))
    return result
