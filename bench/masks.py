"""Synthetic masked faces for the attribute benchmarks and the glasses classifier's training tool.

The development media hold no real masked face, so masks are drawn onto real faces below the eyes, in the frame of
the 112 x 112 ArcFace-aligned crop (eyes at row ~52, nose tip ~72, mouth ~92, chin ~125) and mapped into the image
with the inverse of the face's similarity alignment: they follow the face's position, size and roll, not its yaw.

Four styles, each with its own outline and textures:

* ``surgical``: insightface's four surgical-mask photos (black, blue, green, white), straight top edge at row 60;
* ``cloth``: a plain or striped fabric of a colour from ``CLOTH_COLOURS``, top edge rising from the cheeks
  (row 64) to the nose bridge (row 56), shaded darker towards the sides;
* ``n95``: a white or grey cup with a centre seam, pointed top at row 55 and sides at row 66;
* ``dark``: a plain dark fabric (``DARK_COLOURS``: navy, black, charcoal) from mid-nose (row 62) down past the chin,
  cheek to cheek, like the pasted navy mask of the inference tests, the style the mask model found hardest.

Textures other than insightface's are generated from a seeded random generator, so the set is the same every run.
Flat masks on frontal geometry are easier than real ones (no folds, straps, shadows or turned heads), so figures on
this set are an upper bound for real photos.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from bench import media
from facemint_inference.align import ARCFACE_TEMPLATE, invert, umeyama
from facemint_local import testmedia

STYLES = ("surgical", "cloth", "n95", "dark")
SUPERSAMPLE = 4.0
"""Supersampling of the aligned frame, so that a mask stays sharp on large faces."""
CLOTH_COLOURS = (
    (20, 20, 20),  # black
    (60, 40, 30),  # navy
    (110, 110, 110),  # grey
    (235, 235, 235),  # white
    (200, 160, 120),  # light blue
    (170, 150, 230),  # pink
    (40, 40, 170),  # red
    (150, 190, 215),  # beige
    (60, 100, 60),  # olive
)
"""BGR fabric colours of the ``cloth`` style."""
DARK_COLOURS = (
    (60, 40, 30),  # navy
    (25, 25, 25),  # black
    (65, 65, 65),  # charcoal
)
"""BGR fabric colours of the ``dark`` style."""


def _arc(cx: float, cy: float, rx: float, ry: float, start: float, stop: float) -> list[tuple[float, float]]:
    """25 points of an elliptic arc."""
    return [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in np.linspace(start, stop, 25)]


def _outlines() -> dict[str, np.ndarray]:
    surgical = [(10.0, 60.0), (102.0, 60.0), *_arc(56, 84, 46, 48, 0.0, np.pi)]
    top = [(10.0 + 92.0 * t, 64.0 - 8.0 * np.sin(np.pi * t) ** 0.7) for t in np.linspace(0.0, 1.0, 15)]
    cloth = [*top, *_arc(56, 86, 46, 44, 0.0, np.pi)[1:-1]]
    n95 = [(14.0, 66.0), (56.0, 55.0), (98.0, 66.0), *_arc(56, 80, 42, 40, 0.0, np.pi)]
    dark = [(6.0, 62.0), (106.0, 62.0), *_arc(56, 84, 50, 44, 0.0, np.pi)]
    shapes = (surgical, cloth, n95, dark)
    return {name: np.array(points, dtype=np.float32) for name, points in zip(STYLES, shapes, strict=True)}


OUTLINES = _outlines()
"""Mask outline of every style in ArcFace-aligned coordinates."""


def _shade(texture: np.ndarray, strength: float) -> np.ndarray:
    """Darken towards the left and right edges (a curved surface lit from the front)."""
    across = np.linspace(-1.0, 1.0, texture.shape[1])
    profile = 1.0 - strength * across**2
    return np.clip(texture.astype(np.float32) * profile[None, :, None], 0, 255).astype(np.uint8)


def cloth_texture(rng: np.random.Generator) -> np.ndarray:
    """A fabric texture: one colour, or two in stripes, with weave noise and side shading."""
    height, width = 120, 200
    colour = np.array(CLOTH_COLOURS[int(rng.integers(len(CLOTH_COLOURS)))], dtype=np.float32)
    texture = np.broadcast_to(colour, (height, width, 3)).copy()
    if rng.random() < 0.3:
        other = np.array(CLOTH_COLOURS[int(rng.integers(len(CLOTH_COLOURS)))], dtype=np.float32)
        period = int(rng.integers(10, 30))
        stripes = (np.arange(height) // (period // 2)) % 2 == 1
        texture[stripes] = other
    texture += rng.normal(0.0, 6.0, (height, width, 1))
    return _shade(np.clip(texture, 0, 255).astype(np.uint8), float(rng.uniform(0.2, 0.45)))


def dark_texture(rng: np.random.Generator) -> np.ndarray:
    """A plain dark fabric with faint weave noise and little shading."""
    colour = np.array(DARK_COLOURS[int(rng.integers(len(DARK_COLOURS)))], dtype=np.float32)
    texture = np.broadcast_to(colour, (120, 200, 3)) + rng.normal(0.0, 3.0, (120, 200, 1))
    return _shade(np.clip(texture, 0, 255).astype(np.uint8), float(rng.uniform(0.0, 0.25)))


def n95_texture(rng: np.random.Generator) -> np.ndarray:
    """A white or light grey respirator with a darker vertical centre seam."""
    height, width = 120, 200
    level = float(rng.uniform(190, 245))
    texture = np.full((height, width, 3), level, dtype=np.float32)
    texture += rng.normal(0.0, 4.0, (height, width, 1))
    texture[:, width // 2 - 1 : width // 2 + 2] *= 0.8
    return _shade(np.clip(texture, 0, 255).astype(np.uint8), float(rng.uniform(0.25, 0.4)))


class MaskMaker:
    """Chooses a texture for a style (seeded) and draws masks onto images or aligned crops."""

    def __init__(self, seed: int) -> None:
        """Load insightface's surgical textures (from the pinned registry package) and seed the generator."""
        self.rng = np.random.default_rng(seed)
        self.surgical = [media.load(key) for key in testmedia.MASKS]

    def texture(self, style: str) -> np.ndarray:
        """A texture of ``style`` (surgical: one of insightface's four at random)."""
        if style == "surgical":
            return self.surgical[int(self.rng.integers(len(self.surgical)))]
        if style == "cloth":
            return cloth_texture(self.rng)
        if style == "n95":
            return n95_texture(self.rng)
        if style == "dark":
            return dark_texture(self.rng)
        raise ValueError(f"unknown mask style {style!r}")

    def on_face(self, image: np.ndarray, keypoints: np.ndarray, style: str) -> None:
        """Draw a mask of ``style`` over the lower face whose five keypoints are given (in place)."""
        to_image = invert(umeyama(keypoints, ARCFACE_TEMPLATE * SUPERSAMPLE))
        draw(image, to_image, self.texture(style), OUTLINES[style])

    def on_aligned(self, crops: np.ndarray, styles: Sequence[str]) -> np.ndarray:
        """Copies of ``[N, 112, 112, 3]`` aligned crops with a mask drawn on each (style cycling over ``styles``)."""
        out = crops.copy()
        to_crop = np.array([[1 / SUPERSAMPLE, 0, 0], [0, 1 / SUPERSAMPLE, 0]], dtype=np.float64)
        for i, crop in enumerate(out):
            style = styles[i % len(styles)]
            draw(crop, to_crop, self.texture(style), OUTLINES[style])
        return out


def draw(image: np.ndarray, to_image: np.ndarray, texture: np.ndarray, outline: np.ndarray) -> None:
    """Stretch ``texture`` over the bounding box of ``outline`` (aligned coordinates), cut it to the outline and
    blend it into ``image`` through ``to_image`` (the supersampled aligned frame to image pixels), in place."""
    x0, y0 = outline.min(axis=0)
    x1, y1 = outline.max(axis=0)
    size = (int(np.ceil(x1 * SUPERSAMPLE)) + 1, int(np.ceil(y1 * SUPERSAMPLE)) + 1)
    h, w = texture.shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32) * SUPERSAMPLE
    layer = cv2.warpPerspective(texture, cv2.getPerspectiveTransform(corners, box), size)
    alpha = np.zeros(size[::-1], np.uint8)
    cv2.fillPoly(alpha, [np.round(outline * SUPERSAMPLE).astype(np.int32)], 255)
    frame = (image.shape[1], image.shape[0])
    layer = cv2.warpAffine(layer, to_image, frame, flags=cv2.INTER_AREA)
    weight = cv2.warpAffine(alpha, to_image, frame, flags=cv2.INTER_LINEAR).astype(np.float32)[..., None] / 255
    image[:] = (layer * weight + image * (1 - weight)).astype(np.uint8)
