"""Synthetic glasses drawn onto ArcFace-aligned face crops, to train the glasses classifier on many identities.

The labelled media hold only 16 faces (7 persons) with glasses, so the training tool
(``services/inference/tools/train_glasses.py``) also shows the classifier the faces without glasses wearing
drawn ones. Frames are drawn in the frame of the 112 x 112 aligned crop, where the eyes sit at
``ARCFACE_TEMPLATE[:2]`` (rows ~52, 35 px apart), on a 4x supersampled layer, then blurred to the crop's own
sharpness and blended in. Every pair varies (seeded):

* lens shape: round, oval, rectangular (rounded corners) or browline (flat thick top, thin round bottom);
* lens size, position and a small rotation and scale of the whole frame;
* rim: thin metal (gold, silver, gunmetal) or thick acetate (black, brown, tortoise, dark blue, dark red),
  or rimless (only a faint lens edge);
* lenses: clear (a faint tint or reflection), tinted, or dark sunglasses;
* bridge and the temple arms running from the outer rims towards the ears.

A drawn frame is flat and frontal: real glasses also cast shadows, reflect light and turn with the head, so a
classifier trained on these still needs the real labelled faces, and is only ever measured on them.
"""

from __future__ import annotations

import cv2
import numpy as np

from facemint_inference.align import ARCFACE_TEMPLATE

SUPERSAMPLE = 4
"""Drawing scale of the layer (anti-aliased lines at sub-pixel widths)."""
CROP = 112
METAL = ((60, 170, 210), (190, 190, 190), (90, 90, 95), (40, 120, 160))
"""BGR rim colours of metal frames: gold, silver, gunmetal, bronze."""
ACETATE = ((15, 15, 15), (25, 40, 60), (30, 60, 100), (70, 35, 20), (30, 25, 90), (60, 60, 60))
"""BGR rim colours of plastic frames: black, dark brown, tortoise, dark blue, dark red, dark grey."""
TINTS = ((20, 20, 20), (30, 45, 60), (40, 60, 40), (80, 50, 30), (50, 50, 50))
"""BGR lens colours of tinted and dark lenses: grey-black, brown, green, blue, grey."""
SHAPES = ("round", "oval", "rectangle", "browline")


def _lens(shape: str, half_width: float, half_height: float, corner: float) -> np.ndarray:
    """Outline of one lens centred on the origin, ``[K, 2]`` float (aligned pixels)."""
    t = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
    if shape in ("round", "oval", "browline"):
        # A superellipse: 2 is an ellipse, higher exponents square it off.
        power = 2.0 if shape != "browline" else 2.6
    else:
        power = 2.0 + 8.0 * corner
    c, s = np.cos(t), np.sin(t)
    x = half_width * np.sign(c) * np.abs(c) ** (2.0 / power)
    y = half_height * np.sign(s) * np.abs(s) ** (2.0 / power)
    return np.stack([x, y], axis=1)


def _poly(points: np.ndarray) -> np.ndarray:
    return np.round(points * SUPERSAMPLE * 16).astype(np.int32).reshape(-1, 1, 2)


class GlassesMaker:
    """Draws random glasses (seeded) onto batches of aligned crops."""

    def __init__(self, seed: int) -> None:
        """Seed the generator: the same seed and crops give the same drawn glasses."""
        self.rng = np.random.default_rng(seed)

    def _colour(self, choices: tuple[tuple[int, int, int], ...], jitter: float) -> np.ndarray:
        base = np.array(choices[int(self.rng.integers(len(choices)))], dtype=np.float32)
        return np.clip(base + self.rng.normal(0.0, jitter, 3), 0, 255)

    def layer(self) -> tuple[np.ndarray, np.ndarray]:
        """One random pair of glasses: ``[112, 112, 3]`` float32 colour and ``[112, 112]`` float32 opacity."""
        rng = self.rng
        size = CROP * SUPERSAMPLE
        colour = np.zeros((size, size, 3), np.float32)
        alpha = np.zeros((size, size), np.float32)
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        half_width = rng.uniform(11.5, 17.0)
        half_height = half_width * (rng.uniform(0.8, 0.95) if shape == "round" else rng.uniform(0.58, 0.82))
        lens = _lens(shape, half_width, half_height, rng.uniform(0.0, 1.0))
        drop = rng.uniform(-1.0, 3.0)
        spread = rng.uniform(-1.0, 2.5)
        (lx, ly), (rx, ry) = ARCFACE_TEMPLATE[0], ARCFACE_TEMPLATE[1]
        centres = [(lx - spread, ly + drop), (rx + spread, ry + drop)]
        kind = rng.choice(["metal", "acetate", "rimless"], p=[0.4, 0.5, 0.1])
        rim_colour = self._colour(METAL if kind == "metal" else ACETATE, 12.0)
        rim = {"metal": rng.uniform(0.6, 1.3), "acetate": rng.uniform(1.4, 3.5), "rimless": rng.uniform(0.4, 0.7)}[kind]
        rim_opacity = 0.35 if kind == "rimless" else rng.uniform(0.8, 1.0)
        lens_kind = rng.choice(["clear", "tinted", "dark"], p=[0.6, 0.2, 0.2])
        lens_colour = self._colour(TINTS, 8.0)
        lens_opacity = {
            "clear": rng.uniform(0.0, 0.12),
            "tinted": rng.uniform(0.25, 0.55),
            "dark": rng.uniform(0.75, 0.95),
        }
        outlines = []
        for cx, cy in centres:
            outline = lens + (cx, cy)
            outlines.append(outline)
            # Lens fill first, then the rim over it.
            fill = np.zeros((size, size), np.uint8)
            cv2.fillPoly(fill, [_poly(outline)], 255, cv2.LINE_AA, shift=4)
            opacity = fill.astype(np.float32) / 255 * lens_opacity[lens_kind]
            colour += (lens_colour - colour) * opacity[..., None]
            alpha += (1 - alpha) * opacity
            if lens_kind == "clear" and rng.random() < 0.4:
                # A light streak of reflection across the lens.
                streak = np.zeros((size, size), np.uint8)
                a = (cx - half_width * 0.5, cy - half_height * rng.uniform(0.1, 0.6))
                b = (cx + half_width * 0.2, cy + half_height * rng.uniform(-0.4, 0.2))
                cv2.line(streak, _pt(a), _pt(b), 255, int(SUPERSAMPLE * rng.uniform(1.0, 3.0)), cv2.LINE_AA, 4)
                glare = np.minimum(streak, fill).astype(np.float32) / 255 * rng.uniform(0.15, 0.4)
                colour += (np.float32(235) - colour) * glare[..., None]
                alpha += (1 - alpha) * glare
        strokes = np.zeros((size, size), np.uint8)
        thickness = max(1, int(round(rim * SUPERSAMPLE)))
        for outline in outlines:
            if shape == "browline":
                top = outline[outline[:, 1] <= outline[:, 1].mean()]
                top = top[np.argsort(top[:, 0])]
                cv2.polylines(strokes, [_poly(top)], False, 255, thickness * 2, cv2.LINE_AA, 4)
                cv2.polylines(strokes, [_poly(outline)], True, 255, max(1, thickness // 2), cv2.LINE_AA, 4)
            else:
                cv2.polylines(strokes, [_poly(outline)], True, 255, thickness, cv2.LINE_AA, 4)
        # Bridge between the inner rims, slightly above the lens centres, curved up.
        inner_left = outlines[0][np.argmax(outlines[0][:, 0])]
        inner_right = outlines[1][np.argmin(outlines[1][:, 0])]
        lift = rng.uniform(0.0, 0.5) * half_height
        middle = (inner_left + inner_right) / 2 - (0.0, lift + rng.uniform(0.0, 3.0))
        bridge = np.array([inner_left - (0.0, lift), middle, inner_right - (0.0, lift)])
        cv2.polylines(strokes, [_poly(bridge)], False, 255, thickness, cv2.LINE_AA, 4)
        # Temple arms from the top of the outer rims towards the ears (out of the crop or nearly).
        for outline, direction in ((outlines[0], -1), (outlines[1], 1)):
            outer = outline[np.argmin(outline[:, 0]) if direction < 0 else np.argmax(outline[:, 0])]
            start = outer - (0.0, half_height * rng.uniform(0.2, 0.6))
            end = (0.0 if direction < 0 else CROP - 1.0, start[1] + rng.uniform(-1.0, 4.0))
            if rng.random() < 0.85:
                cv2.line(strokes, _pt(start), _pt(end), 255, thickness, cv2.LINE_AA, 4)
        opacity = strokes.astype(np.float32) / 255 * rim_opacity
        colour += (rim_colour - colour) * opacity[..., None]
        alpha += (1 - alpha) * opacity
        # Whole frame: small rotation and scale about the eyes' midpoint, back to crop size.
        centre = tuple(float(v) * SUPERSAMPLE for v in ARCFACE_TEMPLATE[:2].mean(axis=0))
        turn = (
            np.asarray(cv2.getRotationMatrix2D(centre, rng.uniform(-4.0, 4.0), rng.uniform(0.93, 1.07))) / SUPERSAMPLE
        )
        small_colour = np.asarray(cv2.warpAffine(colour, turn, (CROP, CROP), flags=cv2.INTER_AREA), np.float32)
        small_alpha = np.asarray(cv2.warpAffine(alpha, turn, (CROP, CROP), flags=cv2.INTER_AREA), np.float32)
        return small_colour, small_alpha

    def on_aligned(self, crops: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
        """Copies of ``[N, 112, 112, 3]`` aligned BGR crops, each wearing its own random glasses.

        Args:
            crops: Aligned crops.
            frames: Optional ``[N, 2, 3]`` affine maps from the ArcFace frame to each crop, where a crop is not
                aligned on the face's own eyes (a masked face's crop, whose keypoints the mask moved).

        The layer is blurred to the crop's sharpness (estimated from its Laplacian), so that the frame of a small,
        soft face is not sharper than the face.
        """
        out = np.empty_like(crops)
        for i, crop in enumerate(crops):
            colour, alpha = self.layer()
            if frames is not None:
                colour = cv2.warpAffine(colour, frames[i], (CROP, CROP), flags=cv2.INTER_LINEAR)
                alpha = cv2.warpAffine(alpha, frames[i], (CROP, CROP), flags=cv2.INTER_LINEAR)
            sharpness = cv2.Laplacian(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), cv2.CV_32F)[30:100, 20:92].std()
            sigma = float(np.clip(12.0 / max(sharpness, 1.0), 0.3, 1.6)) * self.rng.uniform(0.8, 1.25)
            colour = cv2.GaussianBlur(colour, (0, 0), sigma)
            alpha = cv2.GaussianBlur(alpha, (0, 0), sigma)[..., None]
            # Lenses darken the skin below them (a shadowed, tinted view) rather than replacing it.
            blended = crop.astype(np.float32) * (1 - alpha) + colour * alpha
            out[i] = np.clip(blended + self.rng.normal(0.0, 1.0, crop.shape), 0, 255).astype(np.uint8)
        return out


def _pt(point: tuple[float, float] | np.ndarray) -> tuple[int, int]:
    """A point of the aligned frame in the 4-bit fixed point of the supersampled layer."""
    return int(round(float(point[0]) * SUPERSAMPLE * 16)), int(round(float(point[1]) * SUPERSAMPLE * 16))
