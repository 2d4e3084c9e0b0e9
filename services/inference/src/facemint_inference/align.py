"""Face crops: similarity transforms, batched ``cv2.warpAffine`` crops and tensor layout.

Every per-face model reads a crop defined by a 2x3 affine matrix from source-frame pixels to crop pixels, so
one warp produces the crop at its final size straight from the full-resolution frame (no intermediate resize
of the frame). When a crop shrinks a face by more than 2x (a large face in a 4K/8K frame), the face region is
first reduced with area averaging so that the bilinear warp does not alias.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
"""The standard five-point template of 112x112 recognition crops (InsightFace/OpenCV)."""

_MAX_WARP_SHRINK = 0.5


def umeyama(src: NDArray[Any], dst: NDArray[Any]) -> NDArray[Any]:
    """Least-squares similarity transform (rotation, uniform scale, translation) from ``src`` to ``dst``.

    Args:
        src: ``[K, 2]`` points.
        dst: ``[K, 2]`` corresponding points.

    Returns:
        The 2x3 float64 matrix ``M`` with ``dst ~= M @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rotation = u @ np.diag(d) @ vt
    variance = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / variance if variance > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix


def square_matrix(centre: NDArray[Any], side: float, size: int, angle: float = 0.0) -> NDArray[Any]:
    """Matrix mapping a square of ``side`` source pixels centred on ``centre``, rotated by ``angle``, to ``size``.

    Args:
        centre: ``[2]`` centre in source pixels.
        side: Side of the square in source pixels.
        size: Side of the crop in pixels.
        angle: Rotation of the square in radians (counter-clockwise in image coordinates makes the crop upright
            when the face is tilted by ``angle``).

    Returns:
        2x3 float64 matrix.
    """
    return rect_matrix(centre, side, side, size, angle)


def rect_matrix(centre: NDArray[Any], width: float, height: float, size: int, angle: float = 0.0) -> NDArray[Any]:
    """Matrix mapping a ``width`` x ``height`` rectangle centred on ``centre`` (rotated by ``angle``) to a square crop.

    Args:
        centre: ``[2]`` centre in source pixels.
        width: Rectangle width in source pixels.
        height: Rectangle height in source pixels.
        size: Side of the crop in pixels.
        angle: Rotation of the rectangle in radians.

    Returns:
        2x3 float64 matrix.
    """
    sx, sy = size / max(width, 1e-6), size / max(height, 1e-6)
    cos, sin = np.cos(angle), np.sin(angle)
    linear = np.array([[sx * cos, sx * sin], [-sy * sin, sy * cos]])
    matrix = np.zeros((2, 3))
    matrix[:, :2] = linear
    matrix[:, 2] = np.array([size / 2, size / 2]) - linear @ np.asarray(centre, dtype=np.float64)
    return matrix


def invert(matrix: NDArray[Any]) -> NDArray[Any]:
    """Inverse of a 2x3 affine matrix."""
    return np.asarray(cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64)))


def transform(matrix: NDArray[Any], points: NDArray[Any]) -> NDArray[Any]:
    """Apply a 2x3 affine matrix to ``[..., 2]`` points."""
    mapped: NDArray[np.float64] = np.asarray(points, dtype=np.float64) @ matrix[:, :2].T + matrix[:, 2]
    return mapped


def warp(image: NDArray[Any], matrix: NDArray[Any], size: int) -> NDArray[Any]:
    """Crop ``size`` x ``size`` pixels through ``matrix`` with bilinear sampling and a black border.

    Args:
        image: ``[H, W, C]`` uint8 frame.
        matrix: 2x3 matrix from frame pixels to crop pixels.
        size: Side of the crop.

    Returns:
        The ``[size, size, C]`` crop.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < _MAX_WARP_SHRINK:
        image, matrix = _reduce(image, matrix, size, scale)
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _reduce(image: NDArray[Any], matrix: NDArray[Any], size: int, scale: float) -> tuple[NDArray[Any], NDArray[Any]]:
    """Area-reduce the region a crop reads so that the remaining warp shrinks by at most 2x."""
    corners = transform(invert(matrix), np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64))
    height, width = image.shape[:2]
    x0, y0 = np.clip(np.floor(corners.min(axis=0)) - 2, 0, [width, height]).astype(int)
    x1, y1 = np.clip(np.ceil(corners.max(axis=0)) + 2, 0, [width, height]).astype(int)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image, matrix
    factor = scale / _MAX_WARP_SHRINK
    new_w, new_h = max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor))
    region = cv2.resize(image[y0:y1, x0:x1], (new_w, new_h), interpolation=cv2.INTER_AREA)
    fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
    to_region = np.array([[fx, 0, -fx * x0], [0, fy, -fy * y0], [0, 0, 1]])
    return region, matrix @ np.linalg.inv(to_region)


def warp_batch(
    images: list[NDArray[Any]], frame_of: list[int], matrices: list[NDArray[Any]], size: int
) -> NDArray[Any]:
    """Crop one face per matrix; ``frame_of[i]`` names the frame of face ``i``.

    Returns:
        ``[N, size, size, C]`` uint8 crops.
    """
    channels = images[0].shape[2] if images else 3
    crops = np.empty((len(matrices), size, size, channels), dtype=np.uint8)
    for i, (frame, matrix) in enumerate(zip(frame_of, matrices, strict=True)):
        crops[i] = warp(images[frame], matrix, size)
    return crops


def to_tensor(
    crops: NDArray[Any],
    *,
    mean: float | tuple[float, float, float] = 0.0,
    scale: float = 1.0,
    rgb: bool = True,
    channels_first: bool = True,
) -> NDArray[Any]:
    """Turn ``[N, H, W, 3]`` uint8 BGR crops into a float32 model input ``(x - mean) * scale``.

    Args:
        crops: BGR crops.
        mean: Subtracted per channel, in the order of the output channels (RGB when ``rgb``).
        scale: Multiplier applied after the subtraction.
        rgb: Reorder channels to RGB.
        channels_first: NCHW when true, NHWC otherwise.

    Returns:
        Contiguous float32 tensor.
    """
    values = crops
    if rgb and crops.size:
        # One OpenCV pass over the uint8 pixels: numpy's reversed-axis copies are ~10x slower.
        flat = np.ascontiguousarray(crops).reshape(-1, crops.shape[2], crops.shape[3])
        values = cv2.cvtColor(flat, cv2.COLOR_BGR2RGB).reshape(crops.shape)
    if channels_first:
        values = values.transpose(0, 3, 1, 2)
    tensor = np.empty(values.shape, dtype=np.float32)
    np.copyto(tensor, values, casting="unsafe")
    offset = np.asarray(mean, dtype=np.float32)
    if channels_first and offset.ndim == 1:
        offset = offset[:, None, None]
    if np.any(offset):
        tensor -= offset
    if scale != 1.0:
        tensor *= np.float32(scale)
    return tensor
