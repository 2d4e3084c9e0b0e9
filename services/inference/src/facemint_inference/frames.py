"""Turning request frames (raw BGR24 or encoded image files) into validated ``[H, W, 3]`` uint8 BGR arrays."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from facemint.inference.v1 import inference_pb2
from facemint_core.errors import InvalidRequest


def _check_pixels(label: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise InvalidRequest(f"{label}: {width}x{height} exceeds the limit of {max_pixels} pixels")


def decode_frame(frame: inference_pb2.Frame, label: str, max_pixels: int) -> NDArray[Any]:
    """Decode one frame.

    Args:
        frame: The request frame.
        label: How to name the frame in errors, e.g. ``"frame 3"``.
        max_pixels: Largest accepted width x height.

    Returns:
        ``[H, W, 3]`` uint8 BGR pixels.

    Raises:
        InvalidRequest: Empty data, an unknown format, a BGR24 buffer whose length is not width x height x 3,
            an undecodable image file, or a frame larger than ``max_pixels``.
    """
    if not frame.data:
        raise InvalidRequest(f"{label}: empty data")
    if frame.format == inference_pb2.PIXEL_FORMAT_BGR24:
        width, height = frame.width, frame.height
        if width <= 0 or height <= 0:
            raise InvalidRequest(f"{label}: BGR24 needs a positive width and height, got {width}x{height}")
        _check_pixels(label, width, height, max_pixels)
        expected = width * height * 3
        if len(frame.data) != expected:
            raise InvalidRequest(f"{label}: BGR24 {width}x{height} needs {expected} bytes, got {len(frame.data)}")
        return np.frombuffer(frame.data, dtype=np.uint8).reshape(height, width, 3)
    if frame.format == inference_pb2.PIXEL_FORMAT_ENCODED:
        image = cv2.imdecode(np.frombuffer(frame.data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if image is None or image.size == 0:
            raise InvalidRequest(f"{label}: cannot decode the image data ({len(frame.data)} bytes)")
        _check_pixels(label, image.shape[1], image.shape[0], max_pixels)
        return image
    raise InvalidRequest(f"{label}: unsupported pixel format {frame.format}")


def decode_frames(frames: list[inference_pb2.Frame], max_pixels: int) -> list[NDArray[Any]]:
    """Decode every frame of a request (see ``decode_frame``), naming bad frames by position and index."""
    return [
        decode_frame(frame, f"frame {position} (index {frame.index})", max_pixels)
        for position, frame in enumerate(frames)
    ]
