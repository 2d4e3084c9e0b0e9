"""Media builders for end-to-end tests, from real faces."""

from __future__ import annotations

import io

from PIL import Image

from facemint_local.testmedia import group_photo


def group_image() -> Image.Image:
    """The six-face group photo as a Pillow image."""
    return Image.open(io.BytesIO(group_photo())).convert("RGB")


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Encode a Pillow image (fmt: JPEG, PNG, WEBP, BMP, HEIF ...)."""
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_with_faces() -> bytes:
    """The group photo as PNG."""
    return encode(group_image(), "PNG")
