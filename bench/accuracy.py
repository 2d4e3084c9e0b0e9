"""Accuracy of both model packs on the development media (``make bench-accuracy``).

    .venv/bin/python -m bench.accuracy [--pack open|insightface]

Measures, with the service's own pipeline on ONNX Runtime:

* **detection** on group photos: faces found vs the faces visible (``bench/data/detection_counts.json``), and
  precision and recall at IoU 0.5 with false faces at any size, on them and on photos without people; box quality
  on small faces (the group photos shrunk, ``small_faces``);
* **verification** on the 300 labelled pairs of ``deepface/master.csv``: ROC AUC, accuracy at the library's
  decision threshold (its calibrated score 0.70), TAR at FAR = 1e-2, largest face of each image;
* **identification** rank-1 on per-person data (two galleries, see ``identification``);
* **attributes** against the hand labels (``services/inference/tools/labels/attributes.json``): gender, age,
  expression, glasses, and mask (bare faces, plus the same faces with synthetic masks of four styles drawn on,
  ``bench/masks.py``: mask recall and glasses on masked faces);
* **hard cases** of issue #18 (``bench/hard.py``): false faces on photos without people, tight grey face crops,
  and verification against degraded copies (blur, low resolution, low resolution + JPEG, noise, eye bar, grey crop).
* **calibration and open-set identification** (``bench/calibration.py``): TAR / FAR at the decision threshold
  and TAR at FAR 1e-4 / 1e-3 on every identity-labelled face, clean and degraded; rank-1, no match and wrong person
  with one and two enrolled captures per person.

Writes ``bench/results/accuracy-<date>.md`` and ``.json``. Needs ``make models`` and ``../shared/data``; the
photos from registry packages are fetched on first use into ``.cache/bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections import Counter, defaultdict
from typing import Any

import cv2
import numpy as np

from bench import calibration, hard, masks, media
from bench.common import (
    BENCH_DATA,
    PACKS,
    SHARED_DATA,
    fmt,
    machine,
    machine_line,
    markdown_table,
    now,
    pipeline,
    tar_at_far,
    write_results,
)
from facemint_inference.detect import Detection
from facemint_inference.glasses import default_model
from facemint_inference.pipeline import AnalyzeOptions, Face, Pipeline
from facemint_library.calibration import DECISION_THRESHOLD, Calibrations
from facemint_local import testmedia

DETECTION_COUNTS = BENCH_DATA / "detection_counts.json"
DETECTION_CONFIDENCE = 0.5
"""The API's default ``confidence_threshold``."""
DETECTION_IOU = 0.5
"""A detection is a hit when its box overlaps a labelled face by this IoU (issue #18's rule)."""
LABEL_CONFIDENCE = 0.3
"""Detection threshold when looking for labelled faces (the label match decides which detection is the face)."""
TARGET_FAR = 1e-2
MASK_SEED = 7
KNN = "face_recognition/knn_examples"
ALL_ATTRIBUTES = ("age", "gender", "emotion", "glasses", "mask")


# --------------------------------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------------------------------


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    positives, negatives = scores[labels], scores[~labels]
    return float((positives[:, None] > negatives).mean() + 0.5 * (positives[:, None] == negatives).mean())


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------


def options(*attributes: str, embeddings: bool = False, confidence: float = DETECTION_CONFIDENCE) -> AnalyzeOptions:
    """Request options that keep faces of any size."""
    return AnalyzeOptions.create(
        min_face_size=1, confidence_threshold=confidence, attributes=attributes, want_embeddings=embeddings
    )


def largest(faces: list[Face]) -> Face | None:
    """The face with the largest box, if any."""
    return max(faces, key=lambda f: f.detection.width * f.detection.height, default=None)


# --------------------------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------------------------


def false_faces(
    found: list[Detection], used: set[int], entry: dict[str, Any], min_px: int
) -> tuple[list[Detection], list[Detection]]:
    """The unmatched detections of a labelled photo that are false faces, as (loose boxes, no face).

    A detection centred in an ignore region is not judged, nor one under ``min_px`` in a crowd photo (the people
    further back are not labelled). A false face centred inside a labelled face's box is a loose (or second) box on
    that face; any other touches no face.
    """
    loose: list[Detection] = []
    no_face: list[Detection] = []
    labelled = entry["faces"] + entry["partial"]
    for i, d in enumerate(found):
        if i in used or (entry["crowd"] and min(d.width, d.height) < min_px):
            continue
        x, y = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        if any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in entry["ignore"]):
            continue
        on_face = any(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in labelled)
        (loose if on_face else no_face).append(d)
    return loose, no_face


def _box(d: Detection) -> list[float]:
    return [round(float(v), 1) for v in d.box]


def detection_total(rows: list[dict[str, Any]], distractor_false_faces: int) -> dict[str, Any]:
    """Counts, recall and precision over some group photos' rows (and the false faces on photos without people)."""
    total: dict[str, Any] = {
        k: sum(r[k] for r in rows)
        for k in ("visible", "faces", "found", "partial", "partial_found", "loose", "no_face")
    }
    total["distractor_false_faces"] = distractor_false_faces
    hits = total["found"] + total["partial_found"]
    false_count = total["loose"] + total["no_face"] + distractor_false_faces
    total["recall"] = hits / max(1, total["visible"])
    total["recall_full"] = total["found"] / max(1, total["faces"])
    total["precision"] = hits / max(1, hits + false_count)
    total["precision_group_photos"] = hits / max(1, hits + total["loose"] + total["no_face"])
    return total


async def detection(pipe: Pipeline) -> dict[str, Any]:
    """Faces found on the group photos against the hand counts, and false faces there and on photos without people.

    Precision and recall as issue #18 counts them: a hit overlaps a labelled face with IoU >= ``DETECTION_IOU``,
    every other detection at any size is a false face (except in ignore regions and the unlabelled far crowd), and
    every detection on a photo without people is a false face.
    """
    truth = json.loads(DETECTION_COUNTS.read_text())
    min_px = truth["min_face_px"]
    rows = []
    for key, entry in truth["images"].items():
        if not media.available(key):
            continue
        found = (await pipe.detect([media.load(key)], DETECTION_CONFIDENCE))[0]
        full = media.match([d.box for d in found], entry["faces"], DETECTION_IOU)
        rest = [i for i in range(len(found)) if i not in full.values()]
        partial = media.match([found[i].box for i in rest], entry["partial"], DETECTION_IOU)
        used = set(full.values()) | {rest[j] for j in partial.values()}
        loose, no_face = false_faces(found, used, entry, min_px)
        rows.append(
            {
                "image": key,
                "visible": entry["visible"],
                "faces": len(entry["faces"]),
                "found": len(full),
                "partial": len(entry["partial"]),
                "partial_found": len(partial),
                "loose": len(loose),
                "no_face": len(no_face),
                "false_faces": [{"box": _box(d), "score": round(d.score, 3)} for d in loose + no_face],
                "detections": len(found),
                "crowd": entry["crowd"],
            }
        )
    distractors = {}
    for key in testmedia.DISTRACTORS:
        found = (await pipe.detect([testmedia.bgr(key)], DETECTION_CONFIDENCE))[0]
        distractors[key.rsplit("/", 1)[1]] = [{"box": _box(d), "score": round(d.score, 3)} for d in found]
    total = detection_total(rows, sum(len(v) for v in distractors.values()))
    return {
        "images": rows,
        "distractors": {k: v for k, v in distractors.items() if v},
        "distractor_photos": len(distractors),
        "total": total,
        "crowd": detection_total([r for r in rows if r["crowd"]], 0),
        "confidence_threshold": DETECTION_CONFIDENCE,
        "iou": DETECTION_IOU,
        "min_face_px": min_px,
    }


SMALL_FACE_PX = (12, 16, 20, 24)
"""Face widths of the small-face set (``small_faces``)."""
SMALL_FACE_CANVAS = (1024, 768)
"""Grey canvas the shrunk photo is laid on: the detector then sees it at 0.625 x, like a crowd photo of that width."""
SMALL_FACE_SOURCES = ("face-api-1.7.15:package/demo/", "insightface-2.1:insightface/data/images/t1.jpg")


async def small_faces(pipe: Pipeline) -> dict[str, Any]:
    """Box quality on small faces: the labelled group photos with large faces (the six face-api samples and
    ``t1.jpg``), shrunk so that their median face is 12-24 px wide and laid on a 1024 x 768 grey canvas.

    Returns:
        Per face width: faces, found (a detection at IoU >= 0.1 with the shrunk label box), those whose best box
        reaches IoU >= ``DETECTION_IOU`` and the median IoU of the found ones.
    """
    truth = json.loads(DETECTION_COUNTS.read_text())["images"]
    keys = [key for key in truth if key.startswith(SMALL_FACE_SOURCES)]
    out = {}
    for px in SMALL_FACE_PX:
        overlaps: list[float] = []
        faces = 0
        for key in keys:
            image, labelled = media.load(key), truth[key]["faces"]
            scale = px / float(np.median([b[2] - b[0] for b in labelled]))
            small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            canvas = np.full((SMALL_FACE_CANVAS[1], SMALL_FACE_CANVAS[0], 3), 127, np.uint8)
            canvas[: small.shape[0], : small.shape[1]] = small
            found = (await pipe.detect([canvas], DETECTION_CONFIDENCE))[0]
            for box in labelled:
                faces += 1
                best = max((media.iou(d.box, [v * scale for v in box]) for d in found), default=0.0)
                if best >= 0.1:
                    overlaps.append(best)
        iou = np.array(overlaps)
        out[str(px)] = {
            "faces": faces,
            "found": len(iou),
            "iou_ok": int((iou >= DETECTION_IOU).sum()),
            "median_iou": float(np.median(iou)) if len(iou) else None,
        }
    return out


# --------------------------------------------------------------------------------------------------------------
# verification and identification
# --------------------------------------------------------------------------------------------------------------


async def embed_largest(pipe: Pipeline, key: str) -> np.ndarray | None:
    """Embedding of the largest face of an image (``None`` when no face is found)."""
    faces = (await pipe.analyze([media.load(key)], options(embeddings=True)))[0]
    face = largest(faces)
    return None if face is None or face.embedding is None else face.embedding.values


async def verification(pipe: Pipeline, calibrations: Calibrations) -> dict[str, Any]:
    """ROC AUC, accuracy at the decision threshold and TAR at FAR 1e-2 on ``deepface/master.csv``."""
    with (SHARED_DATA / "deepface" / "master.csv").open() as f:
        pairs = [(r["file_x"], r["file_y"], r["Decision"] == "Yes") for r in csv.DictReader(f)]
    names = sorted({n for a, b, _ in pairs for n in (a, b)})
    vectors = {n: await embed_largest(pipe, f"deepface/{n}") for n in names}
    missing = sorted(n for n, v in vectors.items() if v is None)
    scores = np.array(
        [
            float(vectors[a] @ vectors[b]) if vectors[a] is not None and vectors[b] is not None else -1.0  # type: ignore[operator]
            for a, b, _ in pairs
        ]
    )
    same = np.array([s for _, _, s in pairs])
    threshold = calibrations.get(pipe.pack.embedder.model_id).cosine_at_threshold
    decisions = scores >= threshold
    tar, far_threshold = tar_at_far(scores[same], scores[~same], TARGET_FAR)
    candidates = np.unique(scores)
    best = max(float(np.mean((scores >= t) == same)) for t in candidates)
    return {
        "pairs": len(pairs),
        "genuine": int(same.sum()),
        "impostor": int((~same).sum()),
        "images_without_face": missing,
        "auc": roc_auc(scores, same),
        "threshold_cosine": threshold,
        "accuracy_at_threshold": float(np.mean(decisions == same)),
        "tar_at_threshold": float(np.mean(decisions[same])),
        "far_at_threshold": float(np.mean(decisions[~same])),
        "tar_at_far_1e-2": tar,
        "far_1e-2_cosine": far_threshold,
        "best_accuracy_any_threshold": best,
    }


async def _labelled_embeddings(
    pipe: Pipeline, labels: dict[str, Any], keys: list[str]
) -> list[tuple[str, str, np.ndarray]]:
    """(identity, media key, embedding) of every labelled face with an identity in the images ``keys``."""
    out = []
    for key in keys:
        wanted = [f for f in labels.get(key, []) if f["identity"]]
        if not wanted:
            continue
        faces = (await pipe.analyze([media.load(key)], options(embeddings=True, confidence=LABEL_CONFIDENCE)))[0]
        matches = media.match([f.detection.box for f in faces], [w["box"] for w in wanted])
        for li, di in sorted(matches.items()):
            embedding = faces[di].embedding
            if embedding is not None:
                out.append((wanted[li]["identity"], key, embedding.values))
    return out


def rank1(gallery: list[tuple[str, np.ndarray]], probes: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    """Rank-1 identification rate: a probe is right when its most similar gallery face has its identity."""
    ids = [g[0] for g in gallery]
    matrix = np.stack([g[1] for g in gallery])
    right = [ids[int(np.argmax(matrix @ vector))] == identity for identity, vector in probes]
    return {
        "gallery_faces": len(gallery),
        "identities": len(set(ids)),
        "probes": len(probes),
        "correct": int(sum(right)),
        "rank1": float(np.mean(right)) if right else None,
    }


async def identification(pipe: Pipeline, labels: dict[str, Any]) -> dict[str, Any]:
    """Rank-1 on two per-person sets.

    * ``knn_examples``: gallery = the largest face of every photo in ``face_recognition/knn_examples/train/<person>/``
      (5 persons, 9 photos); probes = the labelled faces of ``knn_examples/test/`` whose person is in the gallery.
    * ``deepface``: the 13 persons of ``deepface/master.csv`` + ``face-recognition-pivot.csv`` ('Yes' pairs joined
      into clusters, named after their lowest-numbered image); gallery = that image's face, probes = the others.
    """
    gallery = []
    for folder in sorted((SHARED_DATA / KNN / "train").iterdir()):
        for path in sorted(folder.iterdir()):
            vector = await embed_largest(pipe, str(path.relative_to(SHARED_DATA)))
            if vector is not None:
                gallery.append((folder.name, vector))
    known = {identity for identity, _ in gallery}
    test_keys = sorted(k for k in labels if k.startswith(f"{KNN}/test/"))
    probes = [(i, v) for i, _, v in await _labelled_embeddings(pipe, labels, test_keys) if i in known]
    result = {"knn_examples": rank1(gallery, probes)}

    deepface_keys = sorted(k for k in labels if k.startswith("deepface/"))
    faces = [f for f in await _labelled_embeddings(pipe, labels, deepface_keys) if f[0].startswith("deepface:")]
    is_rep = [key == f"deepface/{identity.split(':', 1)[1]}.jpg" for identity, key, _ in faces]
    result["deepface"] = rank1(
        [(i, v) for (i, _, v), rep in zip(faces, is_rep, strict=True) if rep],
        [(i, v) for (i, _, v), rep in zip(faces, is_rep, strict=True) if not rep],
    )
    return result


# --------------------------------------------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------------------------------------------


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _binary(pairs: list[tuple[bool | None, bool]]) -> dict[str, Any]:
    """Recall, specificity, accuracy and precision of (predicted, true) pairs."""
    positives = [bool(p) for p, t in pairs if t]
    negatives = [bool(p) for p, t in pairs if not t]
    return {
        "with": len(positives),
        "without": len(negatives),
        "recall": _rate(sum(positives), len(positives)),
        "specificity": _rate(sum(not p for p in negatives), len(negatives)),
        "accuracy": _rate(sum(bool(p) == t for p, t in pairs), len(pairs)),
        "precision": _rate(sum(positives), sum(positives) + sum(negatives)),
    }


def _summarise(records: list[dict[str, Any]], masked: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement of predicted attributes with the labels (``records`` pair a label with a predicted face; ``masked``
    the same faces with a synthetic mask, ``mask`` and ``glasses`` None where the face was not found again)."""
    gender = [r for r in records if r["label"]["gender"]]
    decided = [r for r in gender if r["gender"] is not None]
    ages = [(r["age"], r["label"]["age"]) for r in records if r["label"]["age"] is not None and r["age"] is not None]
    errors = np.array([p - t for p, t in ages], dtype=np.float64)
    expression = [r for r in records if r["label"]["expression"]]
    confusion: dict[str, Counter[str]] = defaultdict(Counter)
    for r in expression:
        confusion[r["label"]["expression"]][r["emotion"]] += 1
    bare = [r["mask"] for r in records]
    found = [m for m in masked if m["mask"] is not None]
    labelled_masked = [m for m in found if m["label"] is not None]
    return {
        "gender": {
            "labelled": len(gender),
            "decided": len(decided),
            "correct": sum(r["gender"] == r["label"]["gender"] for r in decided),
            "accuracy_decided": _rate(sum(r["gender"] == r["label"]["gender"] for r in decided), len(decided)),
            "accuracy_all": _rate(sum(r["gender"] == r["label"]["gender"] for r in gender), len(gender)),
        },
        "age": {
            "faces": len(ages),
            "mae": float(np.abs(errors).mean()) if len(errors) else None,
            "bias": float(errors.mean()) if len(errors) else None,
            "within_10": float(np.mean(np.abs(errors) <= 10)) if len(errors) else None,
        },
        "emotion": {
            "labelled": len(expression),
            "correct": sum(r["emotion"] == r["label"]["expression"] for r in expression),
            "accuracy": _rate(sum(r["emotion"] == r["label"]["expression"] for r in expression), len(expression)),
            "per_label": {
                label: {
                    "n": sum(c.values()),
                    "correct": c[label],
                    "predicted": dict(c.most_common()),
                }
                for label, c in sorted(confusion.items())
            },
        },
        "glasses": _binary(
            [(r["glasses"], r["label"]["glasses"]) for r in records if r["label"]["glasses"] is not None]
        ),
        "glasses_masked": _binary([(m["glasses"], m["label"]) for m in labelled_masked]),
        "glasses_masked_by_style": {
            style: _binary([(m["glasses"], m["label"]) for m in labelled_masked if m["style"] == style])
            for style in masks.STYLES
        },
        "mask": {
            "bare_faces": len(bare),
            "bare_specificity": _rate(sum(not m for m in bare), len(bare)),
            "synthetic_masked": len(masked),
            "synthetic_detected": len(found),
            "synthetic_recall": _rate(sum(bool(m["mask"]) for m in found), len(found)),
            "recall_by_style": {
                style: _rate(
                    sum(bool(m["mask"]) for m in found if m["style"] == style),
                    sum(m["style"] == style for m in found),
                )
                for style in masks.STYLES
            },
        },
    }


async def attributes(pipe: Pipeline, labels: dict[str, Any]) -> dict[str, Any]:
    """Agreement of every attribute with the hand labels; mask and glasses also on synthetically masked copies of
    the faces, one copy per mask style of ``bench/masks.py``."""
    maker = masks.MaskMaker(MASK_SEED)
    records: list[dict[str, Any]] = []
    masked_results: list[dict[str, Any]] = []
    labelled_faces = 0
    for key, labelled in labels.items():
        if not media.available(key):
            continue
        labelled_faces += len(labelled)
        image = media.load(key)
        faces = (await pipe.analyze([image], options(*ALL_ATTRIBUTES, confidence=LABEL_CONFIDENCE)))[0]
        matches = media.match([f.detection.box for f in faces], [f["box"] for f in labelled])
        for li, di in sorted(matches.items()):
            face = faces[di]
            records.append(
                {
                    "label": labelled[li],
                    "age": face.age,
                    "gender": face.gender,
                    "emotion": face.emotion,
                    "glasses": face.glasses,
                    "mask": face.mask,
                }
            )
        covered = [(labelled[li], faces[di].detection) for li, di in sorted(matches.items())]
        for style in masks.STYLES:
            masked = image.copy()
            for _, det in covered:
                maker.on_face(masked, det.keypoints, style)
            again = (await pipe.analyze([masked], options("mask", "glasses", confidence=LABEL_CONFIDENCE)))[0]
            found = media.match([f.detection.box for f in again], [d.box.tolist() for _, d in covered])
            for i, (label, _) in enumerate(covered):
                seen = again[found[i]] if i in found else None
                masked_results.append(
                    {
                        "style": style,
                        "label": label["glasses"],
                        "mask": None if seen is None else seen.mask,
                        "glasses": None if seen is None else seen.glasses,
                    }
                )
    summary = _summarise(records, masked_results)
    summary["labelled_faces"] = labelled_faces
    summary["matched_faces"] = len(records)
    return summary


# --------------------------------------------------------------------------------------------------------------
# landmarks and head pose (the two packs against each other)
# --------------------------------------------------------------------------------------------------------------

CONTOUR_106 = range(0, 33)
"""Jaw contour points of the 2d106det layout."""


async def landmarks_and_pose(labels: dict[str, Any]) -> dict[str, Any]:
    """The open pack's 106 points (face mesh mapped to the 2d106det layout) against InsightFace's 2d106det, and
    both packs' head pose on the single-face deepface portraits.

    There is no landmark ground truth in the data, so 2d106det (a true 106-point model) is the reference: the
    error is the mean point distance divided by the inter-ocular distance (SCRFD's eye keypoints), per face.
    """
    wanted = options("landmarks", "pose", confidence=LABEL_CONFIDENCE)
    per_pack: dict[str, dict[tuple[str, int], Face]] = {}
    for pack in PACKS:
        found: dict[tuple[str, int], Face] = {}
        async with pipeline(pack) as pipe:
            for key, labelled in labels.items():
                if not media.available(key):
                    continue
                faces = (await pipe.analyze([media.load(key)], wanted))[0]
                matches = media.match([f.detection.box for f in faces], [f["box"] for f in labelled])
                found.update({(key, li): faces[di] for li, di in matches.items()})
        per_pack[pack] = found
    errors, contour, inner = [], [], []
    for face_key, reference in per_pack["insightface"].items():
        other = per_pack["open"].get(face_key)
        if other is None or other.landmarks is None or reference.landmarks is None:
            continue
        iod = float(np.linalg.norm(reference.detection.keypoints[1] - reference.detection.keypoints[0]))
        distance = np.linalg.norm(other.landmarks - reference.landmarks, axis=1) / max(iod, 1e-6)
        errors.append(float(distance.mean()))
        contour.append(float(distance[list(CONTOUR_106)].mean()))
        inner.append(float(np.delete(distance, list(CONTOUR_106)).mean()))
    portraits = [k for k, v in labels.items() if k.startswith("deepface/img") and len(v) == 1]
    pose: dict[str, Any] = {}
    for pack, found in per_pack.items():
        angles = np.array(
            [[f.pose.yaw, f.pose.pitch, f.pose.roll] for (k, _), f in found.items() if k in portraits and f.pose]
        )
        pose[pack] = {
            "faces": len(angles),
            "median_yaw_pitch_roll": [float(v) for v in np.median(angles, axis=0)],
            "median_abs_yaw_pitch_roll": [float(v) for v in np.median(np.abs(angles), axis=0)],
        }
    both = [
        (a.pose, b.pose)
        for k, a in per_pack["open"].items()
        if k[0] in portraits and (b := per_pack["insightface"].get(k)) is not None and a.pose and b.pose
    ]
    pose["packs_median_abs_difference"] = [
        float(np.median([abs(getattr(a, axis) - getattr(b, axis)) for a, b in both]))
        for axis in ("yaw", "pitch", "roll")
    ]
    return {
        "landmarks": {
            "faces": len(errors),
            "median_nme": float(np.median(errors)) if errors else None,
            "median_nme_contour": float(np.median(contour)) if contour else None,
            "median_nme_inner": float(np.median(inner)) if inner else None,
            "p90_nme": float(np.percentile(errors, 90)) if errors else None,
        },
        "pose": pose,
    }


# --------------------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


SUMMARY_METRICS = (
    "detection: faces found / visible (group photos)",
    "detection: fully visible faces found",
    "detection: precision / recall at IoU 0.5 (group photos + photos without people)",
    "detection: false faces, loose box on a face / no face / on photos without people",
    "detection, crowd photos only: precision / recall at IoU 0.5 (faces)",
    "small faces 12 / 16 / 20 / 24 px: box at IoU >= 0.5 / faces",
    "verification AUC (master.csv, 300 pairs)",
    "verification accuracy at the library threshold",
    "TAR at FAR = 1e-2",
    "identification rank-1, knn_examples",
    "identification rank-1, deepface persons",
    "gender: accuracy where decided (decided / labelled)",
    "age: MAE vs apparent-age label, years (bias)",
    "expression: agreement (happy / neutral labels)",
    "glasses (service output): recall / specificity",
    "glasses (service output): accuracy / precision",
    "glasses on synthetic masked faces: recall / specificity",
    "glasses on synthetic masked faces: accuracy / precision",
    "mask: bare faces reported unmasked",
    "mask: synthetic masks caught (detected / pasted)",
    f"mask: caught by style, {' / '.join(masks.STYLES)}",
    "hard: false faces on 18 photos without people / 100 LFW non-face patches",
    "hard: 100 tight grey LFW face crops: no face / several faces",
    "hard: degraded pairs with no face found",
    "hard: degraded pairs AUC / TAR at FAR = 1e-2",
    "hard: degraded genuine pairs below score 0.70 / impostors at or above",
    "hard: degraded pairs accepted at 0.70, genuine (no face: rejected) / impostor pairs",
)


def _summary_cells(r: dict[str, Any]) -> list[str]:
    """One pack's column of the summary table, in the order of ``SUMMARY_METRICS``."""
    det, crowd = r["detection"]["total"], r["detection"]["crowd"]
    ver, ident, attr = r["verification"], r["identification"], r["attributes"]
    knn, deep = ident["knn_examples"], ident["deepface"]
    gender, age, mask, masked = attr["gender"], attr["age"], attr["mask"], attr["glasses_masked"]
    return [
        f"{det['found'] + det['partial_found']} / {det['visible']}",
        f"{det['found']} / {det['faces']}",
        f"{fmt(det['precision'])} / {fmt(det['recall'])}",
        f"{det['loose']} / {det['no_face']} / {det['distractor_false_faces']}",
        f"{fmt(crowd['precision'])} / {fmt(crowd['recall'])} ({crowd['visible']})",
        " / ".join(f"{v['iou_ok']}" for v in r["small_faces"].values()) + f" of {r['small_faces']['12']['faces']} each",
        fmt(ver["auc"]),
        f"{_pct(ver['accuracy_at_threshold'])} (cosine {ver['threshold_cosine']:.3f})",
        _pct(ver["tar_at_far_1e-2"]),
        f"{knn['correct']} / {knn['probes']}",
        f"{deep['correct']} / {deep['probes']}",
        f"{_pct(gender['accuracy_decided'])} ({gender['decided']} / {gender['labelled']})",
        f"{fmt(age['mae'], 1)} ({age['bias'] or 0.0:+.1f})",
        f"{_pct(attr['emotion']['accuracy'])} of {attr['emotion']['labelled']}",
        f"{_pct(attr['glasses']['recall'])} / {_pct(attr['glasses']['specificity'])}",
        f"{_pct(attr['glasses']['accuracy'])} / {_pct(attr['glasses']['precision'])}",
        f"{_pct(masked['recall'])} / {_pct(masked['specificity'])}",
        f"{_pct(masked['accuracy'])} / {_pct(masked['precision'])}",
        _pct(mask["bare_specificity"]),
        f"{_pct(mask['synthetic_recall'])} ({mask['synthetic_detected']} / {mask['synthetic_masked']})",
        " / ".join(_pct(mask["recall_by_style"][style]) for style in masks.STYLES),
        *_hard_cells(r["hard"]),
    ]


def _hard_cells(h: dict[str, Any]) -> list[str]:
    """The hard-case rows of one pack's summary column."""
    distractors, crops, pairs = h["distractors"], h["grey_crops"], h["degraded_pairs"]
    cells = [
        f"{distractors['false_faces_photos']} / {distractors['false_faces_lfw_patches']}",
        f"{crops['no_face']} / {crops['several']}",
    ]
    if pairs is None:
        return [*cells, "-", "-", "-", "-"]
    every = pairs["all"]
    return [
        *cells,
        _pct(every["no_face_pairs"]),
        f"{fmt(every['auc'])} / {_pct(every['tar_at_far_1e-2'])}",
        f"{_pct(every['genuine_below_threshold'])} / {_pct(every['impostor_at_or_above_threshold'])}",
        f"{_pct(every['genuine_accepted'])} / {every['impostors_accepted']} of {every['impostor']}",
    ]


def _summary_rows(results: dict[str, Any]) -> list[list[str]]:
    columns = [_summary_cells(results[p]) if p in results else ["-"] * len(SUMMARY_METRICS) for p in PACKS]
    return [[name, *(column[i] for column in columns)] for i, name in enumerate(SUMMARY_METRICS)]


def _hard_section(results: dict[str, Any]) -> list[str]:
    """Degraded pairs by degradation, and where the false faces were."""
    rows = []
    for pack, r in results.items():
        pairs = r["hard"]["degraded_pairs"]
        if pairs is None:
            continue
        for kind, v in pairs["by_degradation"].items():
            rows.append([pack, kind, _pct(v["no_face_pairs"]), fmt(v["auc"]), _pct(v["tar_at_far_1e-2"])])
    lines = ["## Hard cases (`bench/hard.py`)", ""]
    if rows:
        first = next(iter(results.values()))["hard"]["degraded_pairs"]["all"]
        lines += [
            markdown_table(["pack", "degradation", "no face", "AUC", "TAR @ FAR 1e-2"], rows),
            "",
            f"Every ordered pair of the {first['genuine'] + first['impostor']} (clean portrait, degraded copy of "
            f"another portrait) per degradation, {first['genuine']} genuine and {first['impostor']} impostor pairs in "
            "all; the largest face as compare and enrolment take it (faces of at least 20 px, or the largest smaller "
            "one of an image without one); no face found scores as a non-match.",
            "",
        ]
    for pack, r in results.items():
        where = r["hard"]["distractors"]["per_photo"]
        lines.append(f"- **{pack}** false faces on photos without people: " + (
            ", ".join(f"{name} {n}" for name, n in where.items()) or "none"
        ))  # fmt: skip
    return [*lines, ""]


def report(data: dict[str, Any]) -> str:
    """The markdown report."""
    results = data["packs"]
    lines = [
        f"# Accuracy benchmark, {data['date']}",
        "",
        f"- **Machine:** {machine_line(data['machine'])}",
        f"- **Run:** {data['started']} to {data['finished']} (UTC), `make bench-accuracy`",
        "- **Data:** `../shared/data` and photos from pinned registry packages (`bench/media.py`); hand labels in "
        "`services/inference/tools/labels/attributes.json`, visible-face counts in `bench/data/detection_counts.json` "
        "(how they were made: `docs/accuracy.md`).",
        "",
        "## Summary",
        "",
        markdown_table(["metric", *PACKS], _summary_rows(results)),
        "",
    ]
    heads = data.get("glasses_cross_validation")
    if heads:
        protocol = next(iter(heads.values()))["protocol"]
        lines += [
            "The glasses heads were trained on these same labelled faces, so their agreement above is in-sample. Their "
            f"honest figures are from grouped cross-validation by person (`{protocol}`), bare faces, then faces with "
            "cloth and N95 masks drawn on (styles the training never saw):",
            "",
            markdown_table(
                [
                    "pack",
                    "AUC",
                    "accuracy",
                    "recall",
                    "specificity",
                    "precision",
                    "masked: accuracy / recall / specificity / precision",
                ],
                [
                    [
                        pack,
                        fmt(cv["auc"]),
                        fmt(cv["accuracy"]),
                        fmt(cv["recall_glasses"]),
                        fmt(cv["specificity_no_glasses"]),
                        fmt(cv["precision"]),
                        f"{fmt(cv['masked_accuracy'])} / {fmt(cv['masked_recall_glasses'])} / "
                        f"{fmt(cv['masked_specificity_no_glasses'])} / {fmt(cv['masked_precision'])}",
                    ]
                    for pack, cv in heads.items()
                ],
            ),
            "",
        ]
    cross = data.get("landmarks_and_pose")
    if cross:
        lm, pose = cross["landmarks"], cross["pose"]
        lines += [
            "## Landmarks and head pose",
            "",
            f"Open pack's 106 points (face mesh, nearest-vertex mapping) against InsightFace 2d106det on "
            f"{lm['faces']} labelled faces, error per face = mean point distance / inter-ocular distance: median "
            f"{lm['median_nme']:.3f} (90th percentile {lm['p90_nme']:.3f}); jaw contour (points 0-32) "
            f"{lm['median_nme_contour']:.3f}, the other 73 points {lm['median_nme_inner']:.3f}. 2d106det is a "
            "reference here, not ground truth.",
            "",
            markdown_table(
                ["pack", "portraits", "median yaw / pitch / roll", "median abs yaw / pitch / roll"],
                [
                    [
                        p,
                        str(pose[p]["faces"]),
                        " / ".join(f"{v:+.1f}" for v in pose[p]["median_yaw_pitch_roll"]),
                        " / ".join(f"{v:.1f}" for v in pose[p]["median_abs_yaw_pitch_roll"]),
                    ]
                    for p in PACKS
                ],
            ),
            "",
            "Head pose in degrees on the single-face deepface portraits (mostly near-frontal, so the medians show "
            "the remaining bias after each pack's pitch calibration); the two packs differ by a median of "
            + " / ".join(f"{v:.1f}" for v in pose["packs_median_abs_difference"])
            + " degrees (yaw / pitch / roll) on the same faces.",
            "",
        ]
    lines += _hard_section(results)
    lines += calibration.section(results)
    lines += ["## Detection on group photos", ""]
    det_rows = []
    for i, row in enumerate(results[next(iter(results))]["detection"]["images"]):
        cells = [row["image"], str(row["visible"])]
        for pack in results:
            r = results[pack]["detection"]["images"][i]
            found = r["found"] + r["partial_found"]
            cells.append(
                f"{found} ({r['partial_found']}/{r['partial']} partial), {r['loose']} loose, {r['no_face']} no face"
            )
        det_rows.append(cells)
    lines += [
        markdown_table(["image", "visible", *[f"{p}: found" for p in results]], det_rows),
        "",
        f"Detector threshold {DETECTION_CONFIDENCE} (the API default), no minimum face size, first pass only. A "
        f"detection is a hit when its box overlaps a counted face with IoU >= {DETECTION_IOU}. Every other detection "
        "is a false face, at any size, except one centred in an ignore region or, in a crowd photo, one under "
        f"{results[next(iter(results))]['detection']['min_face_px']} px (the unlabelled people further back); a false "
        "face centred in a labelled face's box is a loose box on that face, any other touches no face. Every detection "
        "on scikit-image's 18 photos without people is a false face too.",
        "",
    ]
    for pack, r in results.items():
        det = r["detection"]
        where = [f"{row['image'].rsplit('/', 1)[-1]} {f['box']} ({f['score']})" for row in det["images"]
                 for f in row["false_faces"]]  # fmt: skip
        where += [f"{name} {f['box']} ({f['score']})" for name, found in det["distractors"].items() for f in found]
        lines.append(f"- **{pack}** false faces: " + ("; ".join(where) or "none"))
    lines += ["", "Small faces (`small_faces`): the 28 faces of the six face-api samples and `t1.jpg`, photos shrunk "
              "so that the median face is 12-24 px wide, on a 1024 x 768 grey canvas (the detector sees them at "
              "0.625 x); label boxes shrunk alike.", ""]  # fmt: skip
    small_rows = [
        [pack, px, f"{v['found']} / {v['faces']}", f"{v['iou_ok']} / {v['faces']}", fmt(v["median_iou"], 2)]
        for pack, r in results.items()
        for px, v in r["small_faces"].items()
    ]
    lines += [
        markdown_table(["pack", "face px", "found (IoU >= 0.1)", "box at IoU >= 0.5", "median IoU"], small_rows),
        "",
        "## Verification (deepface/master.csv)",
        "",
    ]
    ver_rows = []
    for pack, r in results.items():
        v = r["verification"]
        ver_rows.append(
            [
                pack,
                f"{v['genuine']} / {v['impostor']}",
                fmt(v["auc"]),
                f"{v['threshold_cosine']:.3f}",
                _pct(v["accuracy_at_threshold"]),
                _pct(v["tar_at_threshold"]),
                _pct(v["far_at_threshold"]),
                f"{_pct(v['tar_at_far_1e-2'])} (cos {v['far_1e-2_cosine']:.3f})",
                _pct(v["best_accuracy_any_threshold"]),
                ", ".join(v["images_without_face"]) or "none",
            ]
        )
    lines += [
        markdown_table(
            [
                "pack",
                "genuine / impostor",
                "AUC",
                "threshold cos",
                "accuracy",
                "TAR",
                "FAR",
                "TAR @ FAR 1e-2",
                "best accuracy (oracle)",
                "no face found",
            ],
            ver_rows,
        ),
        "",
        f"The threshold is the library's decision threshold (calibrated score {DECISION_THRESHOLD}), which was fitted "
        "on pairs that include these, so accuracy at it is optimistic. With 262 impostor pairs a FAR of 1e-2 allows "
        "2 impostors above the threshold.",
        "",
        "## Identification (rank-1)",
        "",
    ]
    id_rows = []
    for pack, r in results.items():
        for name, v in r["identification"].items():
            persons = f"{v['identities']} / {v['gallery_faces']}"
            id_rows.append([pack, name, persons, str(v["probes"]), _pct(v["rank1"])])
    lines += [
        markdown_table(["pack", "set", "persons / gallery faces", "probes", "rank-1"], id_rows),
        "",
        "`knn_examples`: gallery = every photo of `face_recognition/knn_examples/train/<person>/` (largest face); "
        "probes = the labelled faces of `knn_examples/test/` whose person is in the gallery. `deepface`: persons = "
        "clusters of 'Yes' pairs of `master.csv` + `face-recognition-pivot.csv`; gallery = the lowest-numbered image "
        "of each person, probes = its other images.",
        "",
        "## Attributes against the hand labels",
        "",
    ]
    for pack, r in results.items():
        a = r["attributes"]
        emo = "; ".join(
            f"{label}: {v['correct']}/{v['n']} (got {', '.join(f'{k} {n}' for k, n in v['predicted'].items())})"
            for label, v in a["emotion"]["per_label"].items()
        )
        lines += [
            f"- **{pack}** ({a['matched_faces']} of {a['labelled_faces']} labelled faces found): "
            f"gender {a['gender']['correct']}/{a['gender']['decided']} right where decided, "
            f"{a['gender']['labelled'] - a['gender']['decided']} undecided; "
            f"age MAE {fmt(a['age']['mae'], 1)} years, bias {a['age']['bias']:+.1f}, "
            f"{_pct(a['age']['within_10'])} within 10 years; expression {emo}; "
            f"glasses {a['glasses']['with']} with / {a['glasses']['without']} without; "
            f"masks: {a['mask']['bare_faces']} bare faces, {a['mask']['synthetic_masked']} synthetic masks "
            f"({len(masks.STYLES)} styles).",
        ]
    lines += [
        "",
        "Age labels are apparent ages estimated by eye (+-5 to 8 years), so an MAE near that is as good as this set "
        "can show. Expression labels exist only where obvious (happy or neutral). Gender is reported by the service "
        "only above probability 0.6. Synthetic masks (`bench/masks.py`): every labelled face gets a mask of each "
        "style (surgical: insightface's textures; cloth; n95; dark) drawn over its lower face, then the whole "
        "pipeline runs again on the edited image; the glasses figures on masked faces use the same faces' glasses "
        "labels.",
        "",
    ]
    return "\n".join(lines)


async def run(packs: list[str]) -> dict[str, Any]:
    """Every measurement for the given packs."""
    labels = media.load_labels()["faces"]
    calibrations = Calibrations.load()
    data: dict[str, Any] = {"date": now()[:10], "started": now(), "machine": machine(), "packs": {}}
    data["glasses_cross_validation"] = {}
    for pack in packs:
        async with pipeline(pack) as pipe:
            glasses_head = default_model().head(pipe.pack.embedder.model_id)
            data["glasses_cross_validation"][pack] = glasses_head.metadata["cross_validation"]
            print(f"{pack}: detection", flush=True)
            result = {"detection": await detection(pipe), "small_faces": await small_faces(pipe)}
            print(f"{pack}: verification", flush=True)
            result["verification"] = await verification(pipe, calibrations)
            print(f"{pack}: identification", flush=True)
            result["identification"] = await identification(pipe, labels)
            print(f"{pack}: attributes", flush=True)
            result["attributes"] = await attributes(pipe, labels)
            print(f"{pack}: hard cases", flush=True)
            result["hard"] = await hard.measure(pipe, calibrations.get(pipe.pack.embedder.model_id))
            print(f"{pack}: calibration set and open-set identification", flush=True)
            result["calibration"] = await calibration.measure(pipe, calibrations.get(pipe.pack.embedder.model_id))
            data["packs"][pack] = result
    if len(packs) == len(PACKS):
        print("landmarks and pose: both packs", flush=True)
        data["landmarks_and_pose"] = await landmarks_and_pose(labels)
    data["finished"] = now()
    return data


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the summary and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack", choices=PACKS, action="append", help="only this pack (repeatable)")
    args = parser.parse_args(argv)
    if not (SHARED_DATA / "deepface" / "master.csv").is_file():
        print(f"accuracy benchmark skipped: the development media are not at {SHARED_DATA}", file=sys.stderr)
        return 2
    data = asyncio.run(run(args.pack or list(PACKS)))
    print(markdown_table(["metric", *PACKS], _summary_rows(data["packs"])))
    md, js = write_results("accuracy", report(data), data)
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
