"""Head pose from 2D landmarks: ``cv2.solvePnP`` against MediaPipe's canonical 3D face.

The camera is a pinhole with focal length equal to the frame's longer side, centred, without distortion.
EPnP gives a first estimate that the iterative (Levenberg-Marquardt) solver refines. The rotation is reported
as Euler angles in degrees, with these signs:

* ``yaw`` > 0: the face turns towards the image's right (the subject looks to their left);
* ``pitch`` > 0: the face tilts up;
* ``roll`` > 0: the face rotates clockwise in the image.

The canonical face is a generic head, so the raw pitch of a frontal portrait is biased (about +12 degrees in
research); each pack subtracts a bias measured on frontal portraits (``scripts/fit_calibration.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

_CANONICAL_TO_CAMERA = np.array([1.0, -1.0, -1.0])
"""Canonical face axes (x right, y up, z towards the viewer) to camera axes (x right, y down, z forward)."""


@dataclass(frozen=True)
class Pose:
    """Head orientation in degrees."""

    yaw: float
    pitch: float
    roll: float


def camera_model(canonical: NDArray[Any]) -> NDArray[Any]:
    """Express canonical-face vertices in camera axes, centred on their mean (``[K, 3]`` float64)."""
    points: NDArray[np.float64] = np.asarray(canonical, dtype=np.float64) * _CANONICAL_TO_CAMERA
    centred: NDArray[np.float64] = points - points.mean(axis=0)
    return centred


def camera_matrix(frame_size: tuple[int, int]) -> NDArray[Any]:
    """Pinhole intrinsics for a ``(width, height)`` frame: focal length = the longer side, centred."""
    width, height = frame_size
    focal = float(max(width, height))
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)


def solve(
    image_points: NDArray[Any], model_points: NDArray[Any], frame_size: tuple[int, int]
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Rotation (3x3) and translation (3) taking model points to camera coordinates (EPnP, then refined)."""
    camera = camera_matrix(frame_size)
    image = np.ascontiguousarray(image_points, dtype=np.float64).reshape(-1, 1, 2)
    model = np.ascontiguousarray(model_points, dtype=np.float64).reshape(-1, 1, 3)
    _, rvec, tvec = cv2.solvePnP(model, image, camera, None, flags=cv2.SOLVEPNP_EPNP)
    _, rvec, tvec = cv2.solvePnP(model, image, camera, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE)
    rotation, _ = cv2.Rodrigues(rvec)
    return rotation, tvec.reshape(3)


def head_pose(
    image_points: NDArray[Any], model_points: NDArray[Any], frame_size: tuple[int, int], pitch_bias: float
) -> Pose:
    """Estimate the head pose of one face.

    Args:
        image_points: ``[K, 2]`` landmarks in source pixels.
        model_points: ``[K, 3]`` corresponding points of the 3D face in camera axes (see ``camera_model``).
        frame_size: ``(width, height)`` of the frame.
        pitch_bias: Degrees subtracted from the raw pitch.

    Returns:
        Yaw, pitch and roll in degrees.
    """
    rotation, _ = solve(image_points, model_points, frame_size)
    # rotation = Rz(roll) @ Ry(-yaw) @ Rx(-pitch) in camera axes.
    pitch = -np.degrees(np.arctan2(rotation[2, 1], rotation[2, 2]))
    yaw = np.degrees(np.arcsin(np.clip(rotation[2, 0], -1.0, 1.0)))
    roll = np.degrees(np.arctan2(rotation[1, 0], rotation[0, 0]))
    return Pose(yaw=float(yaw), pitch=float(pitch - pitch_bias), roll=float(roll))
