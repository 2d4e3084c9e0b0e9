"""The hard development sets of issue #18, built reproducibly from pinned media, and their measurements.

Every image comes from a pinned registry package (``facemint_local.testmedia``, sha256-checked) or from
``../shared/data``; every degradation is a fixed function with a fixed seed, so the same files give the same set.

* **Distractors** (``testmedia.DISTRACTORS``): 18 of scikit-image's sample photos without a person (a motorcycle's
  headlamps, coffee cup, cat, coins, rocket launch, bricks, gravel, grass, text, micrographs...) and the 100
  no-face 25 x 25 patches of ``lfw_subset.npy`` (scikit-image's labels), upscaled 6x. Every detection is a false face.
* **Tight grey crops**: the 100 face crops of ``lfw_subset.npy`` (grey, 25 x 25, the face fills the crop),
  upscaled 6x to 150 x 150: each should give one face.
* **Degraded pairs**: the 59 deepface portraits with one labelled face (identities from the hand labels); every pair
  (clean image, degraded copy of another image) for eight degradations of the labelled face box: ``blur``
  (Gaussian, sigma = box width / 12), ``lowres`` (image scaled so that the face is 16 px wide), ``lowres_24`` and
  ``lowres_32`` (the same for 24 and 32 px), ``lowres_jpeg`` (16 px, then JPEG quality 10), ``noise`` (Gaussian,
  sigma 50 grey levels, seed 18), ``eyebar`` (a black bar over the eye band, 28-50% of the box height) and
  ``grey_crop`` (the box alone, grey, 150 x 150). Faces are taken the way compare and enrolment take them: the
  largest face, the analysis describing faces of at least 20 px (the library's ``detect_min_face_size``) or, in an
  image without one, its largest smaller face (``largest_face_fallback``). ``degraded_pairs`` takes any embedder,
  so ``bench/insightface_reference.py`` measures insightface's own pipeline on the same pairs.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import cv2
import numpy as np

from bench import media
from bench.common import SHARED_DATA, tar_at_far
from facemint_inference.pipeline import AnalyzeOptions, Pipeline
from facemint_library.calibration import DECISION_THRESHOLD, Calibration
from facemint_library.settings import LibrarySettings
from facemint_local import testmedia

LFW_UPSCALE = 6
NOISE_SEED = 18
BLUR_DIVISOR = 12
"""Gaussian blur sigma = face box width / this."""
LOWRES_FACE_PX = {"lowres": 16, "lowres_24": 24, "lowres_32": 32, "lowres_jpeg": 16}
"""Low resolution: the image is scaled so that the face box is this wide."""
JPEG_QUALITY = 10
NOISE_SIGMA = 50
"""Gaussian noise, grey levels."""
DEGRADATIONS = ("blur", "lowres", "lowres_24", "lowres_32", "lowres_jpeg", "noise", "eyebar", "grey_crop")
COMPARE_MIN_FACE: int = LibrarySettings.model_fields["detect_min_face_size"].default
"""The library's ``detect_min_face_size``: compare and enrolment see faces of at least this many pixels, or the
largest smaller face of an image without one."""
DETECTION_CONFIDENCE = 0.5


def lfw_crops() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(faces, non-faces) of ``lfw_subset.npy``, each upscaled to 150 x 150 BGR."""
    data = np.load(testmedia.path(testmedia.LFW_SUBSET))
    crops = [
        cv2.cvtColor(
            cv2.resize(
                np.round(item * 255).astype(np.uint8), None, fx=LFW_UPSCALE, fy=LFW_UPSCALE,
                interpolation=cv2.INTER_CUBIC,
            ),
            cv2.COLOR_GRAY2BGR,
        )
        for item in data
    ]  # fmt: skip
    return crops[:100], crops[100:]


def degrade(image: np.ndarray, box: list[float], kind: str) -> np.ndarray:
    """A degraded copy of an image whose face is at ``box`` (``[x1, y1, x2, y2]``)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    width, height = x2 - x1, y2 - y1
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), width / BLUR_DIVISOR)
    if kind in LOWRES_FACE_PX:
        scale = min(1.0, LOWRES_FACE_PX[kind] / width)
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        if kind != "lowres_jpeg":
            return small
        ok, encoded = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok
        return np.asarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR))
    if kind == "noise":
        rng = np.random.default_rng(NOISE_SEED)
        return np.clip(image + rng.normal(0, NOISE_SIGMA, image.shape), 0, 255).astype(np.uint8)
    if kind == "eyebar":
        out = image.copy()
        top, bottom = round(y1 + 0.28 * height), round(y1 + 0.50 * height)
        cv2.rectangle(out, (round(x1), top), (round(x2), bottom), (0, 0, 0), thickness=-1)
        return out
    if kind == "grey_crop":
        h, w = image.shape[:2]
        crop = image[max(0, round(y1)) : min(h, round(y2)), max(0, round(x1)) : min(w, round(x2))]
        grey = cv2.cvtColor(cv2.resize(crop, (150, 150), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    raise ValueError(kind)


def _auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    return float((genuine[:, None] > impostor).mean() + 0.5 * (genuine[:, None] == impostor).mean())


Embed = Callable[[np.ndarray], Awaitable[np.ndarray | None]]
"""The embedding of an image's face as compare takes it, None where it finds no face."""


async def largest_embedding(pipe: Pipeline, image: np.ndarray) -> np.ndarray | None:
    """The embedding of the face that compare and enrolment take (None: no face)."""
    opts = AnalyzeOptions.create(min_face_size=COMPARE_MIN_FACE, want_embeddings=True, largest_face_fallback=True)
    faces = (await pipe.analyze([image], opts))[0]
    face = max(faces, key=lambda f: f.detection.width * f.detection.height, default=None)
    return None if face is None or face.embedding is None else face.embedding.values


async def distractors(pipe: Pipeline) -> dict[str, Any]:
    """False faces on photos without a person (the whole analysis at the API's default threshold, any size)."""
    per_image = {}
    for key in testmedia.DISTRACTORS:
        (found,) = await _each(pipe, [testmedia.bgr(key)])
        per_image[key.rsplit("/", 1)[1]] = len(found)
    _, non_faces = lfw_crops()
    lfw_false = sum(len(f) for f in await _each(pipe, non_faces))
    return {
        "photos": len(per_image),
        "false_faces_photos": sum(per_image.values()),
        "per_photo": {k: v for k, v in per_image.items() if v},
        "lfw_patches": len(non_faces),
        "false_faces_lfw_patches": lfw_false,
    }


async def _each(pipe: Pipeline, images: list[np.ndarray]) -> list[list[Any]]:
    opts = AnalyzeOptions.create(min_face_size=1, confidence_threshold=DETECTION_CONFIDENCE)
    return [(await pipe.analyze([image], opts))[0] for image in images]


async def grey_crops(pipe: Pipeline) -> dict[str, Any]:
    """Tight grey LFW face crops: how many give no face, exactly one, or several (analysis, both passes)."""
    faces, _ = lfw_crops()
    counts = [len(found) for found in await _each(pipe, faces)]
    return {
        "crops": len(counts),
        "no_face": sum(c == 0 for c in counts),
        "one_face": sum(c == 1 for c in counts),
        "several": sum(c > 1 for c in counts),
    }


def _portraits() -> dict[str, tuple[str, list[float]]]:
    """deepface portraits with one labelled face: media key -> (identity, box)."""
    labels = media.load_labels()["faces"]
    return {
        key: (faces[0]["identity"], faces[0]["box"])
        for key, faces in sorted(labels.items())
        if key.startswith("deepface/img") and len(faces) == 1 and faces[0]["identity"]
    }


async def degraded_pairs(embed: Embed, calibration: Calibration) -> dict[str, Any] | None:
    """Verification between a clean portrait and a degraded copy of another, per degradation and overall.

    A degraded image where no face is found scores -1 (a non-match), as the issue's benchmark counts it.

    Args:
        embed: How an image's face is embedded (``largest_embedding`` of a pipeline, or another face pipeline).
        calibration: The embedding model's score calibration.
    """
    if not (SHARED_DATA / "deepface").is_dir():
        return None
    portraits = _portraits()
    images = {key: media.load(key) for key in portraits}
    clean = {key: await embed(image) for key, image in images.items()}
    result: dict[str, Any] = {"portraits": len(portraits), "by_degradation": {}}
    all_gen: list[float] = []
    all_imp: list[float] = []
    missing_total = pairs_total = 0
    for kind in DEGRADATIONS:
        degraded = {key: await embed(degrade(image, portraits[key][1], kind)) for key, image in images.items()}
        genuine: list[float] = []
        impostor: list[float] = []
        missing = 0
        for a, b in itertools.permutations(portraits, 2):
            if clean[a] is None:
                continue
            vb = degraded[b]
            missing += vb is None
            cosine = -1.0 if vb is None else float(clean[a] @ vb)  # type: ignore[operator]
            (genuine if portraits[a][0] == portraits[b][0] else impostor).append(cosine)
        gen, imp = np.array(genuine), np.array(impostor)
        pairs = len(gen) + len(imp)
        result["by_degradation"][kind] = {
            "images_without_face": sum(v is None for v in degraded.values()),
            "no_face_pairs": missing / pairs,
            "auc": _auc(gen, imp),
            "tar_at_far_1e-2": tar_at_far(gen, imp, 1e-2)[0],
        }
        all_gen += genuine
        all_imp += impostor
        missing_total += missing
        pairs_total += pairs
    gen, imp = np.array(all_gen), np.array(all_imp)
    scores_gen = calibration.scores(gen[gen > -1])
    scores_imp = calibration.scores(imp[imp > -1])
    result["all"] = {
        "genuine": len(gen),
        "impostor": len(imp),
        "no_face_pairs": missing_total / pairs_total,
        "auc": _auc(gen, imp),
        "tar_at_far_1e-2": tar_at_far(gen, imp, 1e-2)[0],
        "genuine_below_threshold": float(np.mean(scores_gen < DECISION_THRESHOLD)) if len(scores_gen) else None,
        "impostor_at_or_above_threshold": float(np.mean(scores_imp >= DECISION_THRESHOLD)) if len(scores_imp) else None,
        # Over all pairs, a degraded image without a face being a rejection: not moved by how many pairs get a face.
        "genuine_accepted": float(np.mean(scores_gen >= DECISION_THRESHOLD)) * len(scores_gen) / len(gen),
        "impostors_accepted": int(np.sum(scores_imp >= DECISION_THRESHOLD)),
    }
    return result


async def measure(pipe: Pipeline, calibration: Calibration) -> dict[str, Any]:
    """Every hard-set measurement for one pack."""
    return {
        "distractors": await distractors(pipe),
        "grey_crops": await grey_crops(pipe),
        "degraded_pairs": await degraded_pairs(partial(largest_embedding, pipe), calibration),
    }
