"""Dense landmarks: crops and decoding for InsightFace 2d106det and the MediaPipe 468-point face mesh.

Both return points in source-frame pixels. The open pack reports 106 points by picking, for each point of the
2d106det layout, the mesh vertex nearest to it on average (``mesh106.MESH_TO_106``): an approximation, see
``services/inference/README.md`` for its measured error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from facemint_inference.align import invert, square_matrix, to_tensor, transform
from facemint_inference.detect import Detection

CROP_SIZE = 192
BOX_SCALE = 1.5
MESH_POINTS = 468
MESH_PRESENCE = "conv2d_30"
"""The face mesh's face-presence output: one logit per crop (``second_pass.presence``)."""


def _centre(detection: Detection) -> NDArray[Any]:
    return np.array([(detection.box[0] + detection.box[2]) / 2, (detection.box[1] + detection.box[3]) / 2])


def d106_matrix(detection: Detection) -> NDArray[Any]:
    """2d106det crop: an upright square of 1.5 x the longer box side, centred on the box, at 192 x 192."""
    return square_matrix(_centre(detection), BOX_SCALE * max(detection.width, detection.height), CROP_SIZE)


def mesh_matrix(detection: Detection) -> NDArray[Any]:
    """Face-mesh ROI: the 2d106det square, rotated so that the eyes are level (as MediaPipe's ROI)."""
    left_eye, right_eye = detection.keypoints[0], detection.keypoints[1]
    angle = float(np.arctan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))
    return square_matrix(_centre(detection), BOX_SCALE * max(detection.width, detection.height), CROP_SIZE, angle)


def d106_tensor(crops: NDArray[Any]) -> NDArray[Any]:
    """2d106det input: NCHW RGB 0..255 (the graph normalises)."""
    return to_tensor(crops, rgb=True)


def mesh_tensor(crops: NDArray[Any]) -> NDArray[Any]:
    """Face-mesh input: NHWC RGB in [0, 1]."""
    return to_tensor(crops, scale=1 / 255, rgb=True, channels_first=False)


def decode_106(raw: NDArray[Any], matrices: list[NDArray[Any]]) -> NDArray[Any]:
    """Map 2d106det outputs (``[N, 212]`` in [-1, 1] of the crop) to ``[N, 106, 2]`` source pixels."""
    points = (raw.reshape(len(matrices), -1, 2).astype(np.float64) + 1) * (CROP_SIZE / 2)
    return np.stack([transform(invert(m), p) for m, p in zip(matrices, points, strict=True)]).astype(np.float32)


def decode_mesh(raw: NDArray[Any], matrices: list[NDArray[Any]]) -> NDArray[Any]:
    """Map face-mesh outputs (``[N, 1, 1, 1404]``: x, y, z in crop pixels) to ``[N, 468, 2]`` source pixels."""
    points = raw.reshape(len(matrices), MESH_POINTS, 3)[:, :, :2].astype(np.float64)
    return np.stack([transform(invert(m), p) for m, p in zip(matrices, points, strict=True)]).astype(np.float32)
