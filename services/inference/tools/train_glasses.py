"""Train the glasses classifier (``facemint_inference.glasses``) on the hand-labelled real faces; report its accuracy.

    .venv/bin/python services/inference/tools/train_glasses.py            # train, cross-validate, write the weights
    .venv/bin/python services/inference/tools/train_glasses.py --dry-run  # cross-validate only
    ... --crops /tmp/glasses-crops.npz   # keep the detected crops between runs (detection takes minutes)

Data: every face of ``services/inference/tools/labels/attributes.json`` whose ``glasses`` label is true or false,
found again by both packs' detectors (YuNet and SCRFD, matched to the labelled box by IoU), so each face gives two
aligned 112 x 112 crops with slightly different keypoints. Needs ``make models`` and
``../shared/data``.

Model: per pack, L2-regularised logistic regression (Newton's method, classes weighted to balance) on the
unit-length recognition embedding of the aligned crop (SFace for the open pack, w600k_mbf for the insightface pack,
computed by the pack's own pipeline: ``Pipeline.embed_aligned``; ADR 0029). Each training crop also enters
mirrored (glasses are symmetric), and again cut from a copy of its image with a synthetic surgical mask drawn on
(``bench/masks.py``, insightface's textures) and the face detected again, mirrored too: a mask both covers the
lower face and moves the detector's keypoints, and the model must learn that neither is glasses (issue #18). Only 7
persons wear glasses in the labels, so every crop without glasses also enters ``SYNTHETIC_COPIES`` times wearing
drawn glasses (``bench/eyewear.py``: random frame shapes, rims, lenses and arms), bare and surgical-masked (drawn on
the masked crop through the map from the bare crop's frame, so the glasses stay on the eyes the mask moved),
mirrored too, as positives: the positives then come from about a hundred persons instead of seven (ADR 0024).

Evaluation: grouped cross-validation. Every person (``identity``; a face without one is its own group) falls
wholly into one fold, and the few positive persons are spread over the folds, so a fold always tests people the
model has not seen. The decision threshold is chosen inside each training fold (inner grouped cross-validation,
maximising the accuracy expected when 30% of faces wear glasses, ``PREVALENCE``) and then applied to the held-out
fold, so the reported accuracy includes the threshold choice (out-of-fold probabilities of the bare and the
surgical-masked crops together, real crops only). Drawn glasses only ever train: a held-out fold is scored on its
real crops, and the drawn copies of its persons stay out of the training folds. Each held-out fold is also scored
on its faces with cloth and N95 masks drawn on and detected again (styles the training never saw): ``masked_*`` in
the report. The shipped model is fitted on all faces, with the threshold chosen the same way on all of them.
Everything is seeded: the same data and models give the same weights.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO_ROOT))

from bench import media  # noqa: E402
from bench.common import PACKS, pipeline  # noqa: E402
from bench.eyewear import GlassesMaker  # noqa: E402
from bench.masks import MaskMaker  # noqa: E402
from facemint_inference import attributes  # noqa: E402
from facemint_inference.align import invert, warp  # noqa: E402
from facemint_inference.detect import Detection  # noqa: E402
from facemint_inference.glasses import WEIGHTS_PATH, GlassesHead, GlassesModel, unit_rows  # noqa: E402
from facemint_inference.pipeline import ALIGNED_SIZE, Pipeline  # noqa: E402

SEED = 20240603
L2 = {"sface-2021dec": 0.03, "arcface-w600k-mbf": 0.03}
"""Ridge strength on standardised features per embedding model (chosen by grouped cross-validation AUC over
0.01-1 on this set: 0.03 is the best or within 0.001 of it for both models)."""
FOLDS = 7
INNER_FOLDS = 4
REPEATS = 3
PREVALENCE = 0.3
"""Share of faces with glasses assumed when choosing the threshold (this set has 7%, the world more): the threshold
maximises ``0.3 * recall + 0.7 * specificity``."""
TRAINING_MASKS = ("surgical",)
"""Mask styles drawn on the training crops (``bench.masks``)."""
HELD_OUT_MASKS = ("cloth", "n95")
"""Mask styles drawn on the held-out crops only, to measure masked faces of a kind the model never saw."""
SYNTHETIC_COPIES = 2
"""Copies with drawn glasses (``bench.eyewear``) of every crop without glasses, bare and surgical-masked."""
DETECTION_THRESHOLD = 0.3
"""Low, so that hard labelled faces are still found; the label match decides which detection is the face."""


@dataclass
class Dataset:
    """Aligned crops with their labels and cross-validation groups; ``masked[style]`` holds the same faces (same
    order) cut from a copy of the image with a mask of that style drawn on and detected again."""

    crops: np.ndarray
    masked: dict[str, np.ndarray]
    frames: dict[str, np.ndarray]
    """Per style, ``[N, 2, 3]`` maps from the bare crop's frame to the masked crop's (the mask moved the keypoints)."""
    labels: np.ndarray
    groups: np.ndarray
    keys: list[str]


async def _masked_crops(
    pipe: Pipeline, image: np.ndarray, detections: list[Detection], style: str, maker: MaskMaker
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Crops of ``detections`` after drawing a mask of ``style`` on each and detecting the faces again, and the map
    from each bare crop's frame to its masked crop's.

    The mask moves the detector's keypoints (it hides the nose and mouth), and the crop must show what the service
    will see. A face not found again gets the mask drawn on its bare crop instead.
    """
    masked = image.copy()
    for detection in detections:
        maker.on_face(masked, detection.keypoints, style)
    again = (await pipe.detect([masked], DETECTION_THRESHOLD))[0]
    found = media.match([d.box for d in again], [d.box.tolist() for d in detections])
    crops, frames = [], []
    for i, detection in enumerate(detections):
        bare_matrix = attributes.aligned_matrix(detection)
        if i in found:
            matrix = attributes.aligned_matrix(again[found[i]])
            crops.append(warp(masked, matrix, ALIGNED_SIZE))
            frames.append(compose(matrix, invert(bare_matrix)))
        else:
            crops.append(maker.on_aligned(warp(image, bare_matrix, ALIGNED_SIZE)[None], [style])[0])
            frames.append(np.eye(2, 3))
    return crops, frames


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine map ``outer(inner(x))``."""
    return np.concatenate([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]], axis=1)


async def collect() -> Dataset:
    """Detect every labelled face with both packs and cut its ArcFace-aligned crop, bare and with every mask style."""
    faces = media.load_labels()["faces"]
    crops: list[np.ndarray] = []
    masked: dict[str, list[np.ndarray]] = {style: [] for style in (*TRAINING_MASKS, *HELD_OUT_MASKS)}
    frames: dict[str, list[np.ndarray]] = {style: [] for style in masked}
    labels: list[int] = []
    groups: list[str] = []
    keys: list[str] = []
    maker = MaskMaker(SEED)
    for pack in PACKS:
        async with pipeline(pack) as pipe:
            for key, labelled in faces.items():
                wanted = [i for i, face in enumerate(labelled) if face["glasses"] is not None]
                if not wanted:
                    continue
                image = media.load(key)
                detections = (await pipe.detect([image], DETECTION_THRESHOLD))[0]
                matches = sorted(media.match([d.box for d in detections], [labelled[i]["box"] for i in wanted]).items())
                if not matches:
                    continue
                for li, di in matches:
                    face = labelled[wanted[li]]
                    crops.append(warp(image, attributes.aligned_matrix(detections[di]), ALIGNED_SIZE))
                    labels.append(int(face["glasses"]))
                    groups.append(face["identity"] or f"{key}#{wanted[li]}")
                    keys.append(f"{pack}:{key}#{wanted[li]}")
                for style, out in masked.items():
                    found = [detections[di] for _, di in matches]
                    style_crops, style_frames = await _masked_crops(pipe, image, found, style, maker)
                    out += style_crops
                    frames[style] += style_frames
    return Dataset(
        np.stack(crops),
        {k: np.stack(v) for k, v in masked.items()},
        {k: np.stack(v) for k, v in frames.items()},
        np.asarray(labels),
        np.asarray(groups),
        keys,
    )


def save(data: Dataset, path: Path) -> None:
    """Write the collected crops (detection takes minutes; the crops make cross-validation runs repeatable)."""
    masked = {f"masked_{style}": crops for style, crops in data.masked.items()}
    frames = {f"frames_{style}": maps for style, maps in data.frames.items()}
    keys = np.asarray(data.keys)
    np.savez_compressed(path, crops=data.crops, labels=data.labels, groups=data.groups, keys=keys, **masked, **frames)


def load(path: Path) -> Dataset:
    """Read crops written by :func:`save`."""
    with np.load(path) as stored:
        styles = (*TRAINING_MASKS, *HELD_OUT_MASKS)
        return Dataset(
            stored["crops"],
            {style: stored[f"masked_{style}"] for style in styles},
            {style: stored[f"frames_{style}"] for style in styles},
            stored["labels"],
            stored["groups"],
            [str(key) for key in stored["keys"]],
        )


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Class-balanced L2 logistic regression by Newton's method; the features are standardised first.

    Returns:
        Weights and intercept on the *raw* features (standardisation folded in).
    """
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-6
    x = (features - mean) / scale
    n, dim = x.shape
    positive = labels.mean()
    sample_weight = np.where(labels == 1, 0.5 / positive, 0.5 / (1 - positive)) / n
    w = np.zeros(dim)
    b = 0.0
    for _ in range(50):
        p = 1 / (1 + np.exp(-np.clip(x @ w + b, -60, 60)))
        residual = sample_weight * (p - labels)
        curvature = sample_weight * p * (1 - p)
        hessian = np.empty((dim + 1, dim + 1))
        hessian[:dim, :dim] = (x.T * curvature) @ x + l2 * np.eye(dim)
        hessian[:dim, dim] = hessian[dim, :dim] = x.T @ curvature
        hessian[dim, dim] = curvature.sum()
        step = np.linalg.solve(hessian, np.append(x.T @ residual + l2 * w, residual.sum()))
        w -= step[:dim]
        b -= step[dim]
        if np.abs(step).max() < 1e-7:
            break
    return w / scale, float(b - (w / scale) @ mean)


def assign_folds(labels: np.ndarray, groups: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold of every sample: whole groups per fold, positive groups dealt round-robin first, then the rest."""
    positive_groups = np.unique(groups[labels == 1])
    other_groups = np.setdiff1d(np.unique(groups), positive_groups)
    fold_of: dict[str, int] = {}
    for i, group in enumerate(rng.permutation(positive_groups)):
        fold_of[str(group)] = i % folds
    for i, group in enumerate(rng.permutation(other_groups)):
        fold_of[str(group)] = i % folds
    return np.array([fold_of[str(g)] for g in groups])


def best_threshold(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The probability threshold maximising the expected accuracy at ``PREVALENCE`` (midway between scores)."""
    order = np.unique(probabilities)
    candidates = np.concatenate([[0.0], (order[1:] + order[:-1]) / 2, [1.0]])
    positives, negatives = probabilities[labels == 1], probabilities[labels == 0]
    expected = [PREVALENCE * np.mean(positives > t) + (1 - PREVALENCE) * np.mean(negatives <= t) for t in candidates]
    return float(candidates[int(np.argmax(expected))])


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()
    return float(greater + 0.5 * ties)


Embed = Callable[[np.ndarray], Awaitable[np.ndarray]]
"""Raw embeddings of ArcFace-aligned crops (``Pipeline.embed_aligned`` of one pack)."""


@dataclass
class Features:
    """Unit-length embeddings of every crop, bare and masked, of their mirror images and of ``synthetic`` copies
    with drawn glasses of every crop without glasses; ``training`` lists (features, labels, rows that may train)."""

    bare: np.ndarray
    masked: list[np.ndarray]
    held_out: list[np.ndarray]
    training: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


async def featurize(data: Dataset, embed: Embed, synthetic: int = SYNTHETIC_COPIES) -> Features:
    """Embed every crop the training and the evaluation need, once."""

    async def features(crops: np.ndarray) -> np.ndarray:
        return unit_rows(await embed(crops))

    async def mirrored(crops: np.ndarray) -> np.ndarray:
        return await features(np.ascontiguousarray(crops[:, :, ::-1]))

    bare = await features(data.crops)
    masked = [await features(data.masked[style]) for style in TRAINING_MASKS]
    held_out = [await features(data.masked[style]) for style in HELD_OUT_MASKS]
    everyone = np.ones(len(data.labels), dtype=bool)
    training = [(bare, data.labels, everyone), (await mirrored(data.crops), data.labels, everyone)]
    for style, features_of_style in zip(TRAINING_MASKS, masked, strict=True):
        training += [
            (features_of_style, data.labels, everyone),
            (await mirrored(data.masked[style]), data.labels, everyone),
        ]
    # Drawn glasses: the faces without glasses become positives, bare and masked (the masked crops keep the
    # glasses on the eyes through the frame maps), so the model sees glasses on ~30 times more persons.
    maker = GlassesMaker(SEED)
    without = data.labels == 0
    wearing = np.ones(len(data.labels), dtype=int)
    for _ in range(synthetic):
        drawn = [maker.on_aligned(data.crops)]
        drawn += [maker.on_aligned(data.masked[style], data.frames[style]) for style in TRAINING_MASKS]
        for crops in drawn:
            training += [(await features(crops), wearing, without), (await mirrored(crops), wearing, without)]
    return Features(bare, masked, held_out, training)


class Trainer:
    """Cross-validation and the final fit on precomputed features."""

    def __init__(self, data: Dataset, features: Features, l2: float) -> None:
        """Train on ``features`` of ``data`` with ridge strength ``l2`` on standardised features."""
        self.data = data
        self.features = features
        self.l2 = l2

    def _fit(self, train: np.ndarray) -> tuple[np.ndarray, float]:
        chosen = [train[rows[train]] for _, _, rows in self.features.training]
        x = np.concatenate([f[c] for (f, _, _), c in zip(self.features.training, chosen, strict=True)])
        y = np.concatenate([labels[c] for (_, labels, _), c in zip(self.features.training, chosen, strict=True)])
        return fit_logistic(x, y, self.l2)

    def out_of_fold(
        self, indices: np.ndarray, folds: int, rng: np.random.Generator, features: list[np.ndarray]
    ) -> list[np.ndarray]:
        """Grouped cross-validated probabilities of the samples ``indices``, one array per feature set."""
        fold = assign_folds(self.data.labels[indices], self.data.groups[indices], folds, rng)
        result = [np.zeros(len(indices)) for _ in features]
        for k in range(folds):
            w, b = self._fit(indices[fold != k])
            test = indices[fold == k]
            for out, f in zip(result, features, strict=True):
                out[fold == k] = _sigmoid(f[test] @ w + b)
        return result

    def threshold_for(self, indices: np.ndarray, rng: np.random.Generator) -> float:
        """Threshold chosen by inner grouped cross-validation on ``indices`` only (bare and masked crops)."""
        probabilities = self.out_of_fold(indices, INNER_FOLDS, rng, [self.features.bare, *self.features.masked])
        labels = np.tile(self.data.labels[indices], len(probabilities))
        return best_threshold(np.concatenate(probabilities), labels)

    def cross_validate(self, repeats: int, seed: int) -> dict[str, Any]:
        """Repeated grouped cross-validation with the threshold chosen inside each training fold."""
        labels, groups = self.data.labels, self.data.groups
        everything = np.arange(len(labels))
        runs = []
        per_person: dict[str, list[float]] = {}
        for repeat in range(repeats):
            rng = np.random.default_rng(seed + repeat)
            fold = assign_folds(labels, groups, FOLDS, rng)
            probabilities = np.zeros(len(labels))
            held_out = np.zeros((len(HELD_OUT_MASKS), len(labels)))
            thresholds = np.zeros(len(labels))
            for k in range(FOLDS):
                train, test = everything[fold != k], everything[fold == k]
                thresholds[test] = self.threshold_for(train, rng)
                w, b = self._fit(train)
                probabilities[test] = _sigmoid(self.features.bare[test] @ w + b)
                for row, features in zip(held_out, self.features.held_out, strict=True):
                    row[test] = _sigmoid(features[test] @ w + b)
            decisions = probabilities > thresholds
            tiled = np.tile(labels, len(held_out)), np.tile(thresholds, len(held_out))
            masked_metrics = _metrics(held_out.ravel(), held_out.ravel() > tiled[1], tiled[0])
            masked = {f"masked_{k}": v for k, v in masked_metrics.items()}
            runs.append({**_metrics(probabilities, decisions, labels), **masked})
            for group in np.unique(groups[labels == 1]):
                per_person.setdefault(str(group), []).append(float(decisions[groups == group].mean()))
        summary: dict[str, Any] = {name: round(float(np.mean([r[name] for r in runs])), 3) for name in runs[0]}
        summary["spread"] = {
            name: [round(min(r[name] for r in runs), 3), round(max(r[name] for r in runs), 3)] for name in runs[0]
        }
        summary["recall_per_person_with_glasses"] = {
            g: round(float(np.mean(v)), 3) for g, v in sorted(per_person.items())
        }
        return summary

    def fit_final(self, seed: int) -> tuple[np.ndarray, float, float]:
        """Weights on all crops and the threshold from grouped cross-validation on all of them."""
        everything = np.arange(len(self.data.labels))
        threshold = self.threshold_for(everything, np.random.default_rng(seed))
        w, b = self._fit(everything)
        return w, b, threshold


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1 / (1 + np.exp(-np.clip(logits, -60, 60))))


def _metrics(probabilities: np.ndarray, decisions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    tpr = float(decisions[labels == 1].mean())
    tnr = float((~decisions[labels == 0]).mean())
    called = PREVALENCE * tpr + (1 - PREVALENCE) * (1 - tnr)
    return {
        "auc": roc_auc(probabilities, labels),
        "accuracy": float((decisions == labels.astype(bool)).mean()),
        "balanced_accuracy": (tpr + tnr) / 2,
        "recall_glasses": tpr,
        "specificity_no_glasses": tnr,
        "precision": float(labels[decisions].mean()) if decisions.any() else 1.0,
        f"accuracy_at_prevalence_{PREVALENCE}": PREVALENCE * tpr + (1 - PREVALENCE) * tnr,
        f"precision_at_prevalence_{PREVALENCE}": PREVALENCE * tpr / called if called else 1.0,
    }


def describe(data: Dataset) -> dict[str, Any]:
    """Counts of the training data."""
    positive_groups = np.unique(data.groups[data.labels == 1])
    return {
        "crops": len(data.labels),
        "crops_with_glasses": int(data.labels.sum()),
        "faces": len({k.split(":", 1)[1] for k in data.keys}),
        "persons_or_faces": len(np.unique(data.groups)),
        "persons_with_glasses": len(positive_groups),
    }


async def train(data: Dataset, l2: float | None, repeats: int, dry_run: bool) -> dict[str, GlassesHead]:
    """Cross-validate a head on each pack's embeddings and, unless ``dry_run``, fit it on every crop."""
    heads = {}
    for pack in PACKS:
        async with pipeline(pack) as pipe:
            model_id = pipe.pack.embedder.model_id
            strength = L2[model_id] if l2 is None else l2
            trainer = Trainer(data, await featurize(data, pipe.embed_aligned), strength)
        cv = trainer.cross_validate(repeats, SEED)
        print(f"{model_id}: grouped cross-validation:", json.dumps(cv, indent=1))
        if dry_run:
            continue
        w, b, threshold = trainer.fit_final(SEED)
        protocol = (
            f"{FOLDS}-fold grouped by person, {repeats} repeats; threshold chosen inside each training fold by "
            f"{INNER_FOLDS}-fold inner grouped CV (max {PREVALENCE} * recall + {1 - PREVALENCE:.1f} * specificity)"
        )
        metadata = {"pack": pack, "l2": strength, "cross_validation": {"protocol": protocol, **cv}}
        heads[model_id] = GlassesHead(coef=w, intercept=b, threshold=threshold, metadata=metadata)
    return heads


def main(argv: list[str] | None = None) -> int:
    """Collect, cross-validate, fit and write the weights file (unless ``--dry-run``)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH, help="weights file to write")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="cross-validation repeats (fold shuffles)")
    parser.add_argument("--l2", type=float, help="ridge strength on standardised features (default: L2 per model)")
    parser.add_argument("--dry-run", action="store_true", help="cross-validate only; write nothing")
    parser.add_argument(
        "--crops", type=Path, help="an .npz of the collected crops: read it if it exists, else collect and write it"
    )
    args = parser.parse_args(argv)

    data = load(args.crops) if args.crops and args.crops.exists() else asyncio.run(collect())
    if args.crops and not args.crops.exists():
        save(data, args.crops)
    counts = describe(data)
    print("data:", json.dumps(counts))
    heads = asyncio.run(train(data, args.l2, args.repeats, args.dry_run))
    if args.dry_run:
        return 0
    model = GlassesModel(
        heads=heads,
        metadata={
            "trained": dt.date.today().isoformat(),
            "trained_by": "services/inference/tools/train_glasses.py",
            "labels": "services/inference/tools/labels/attributes.json",
            "synthetic_glasses_per_crop": SYNTHETIC_COPIES,
            "seed": SEED,
            "training_data": counts,
        },
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(model.to_dict(), indent=1) + "\n")
    thresholds = ", ".join(f"{k} {h.threshold:.3f}" for k, h in heads.items())
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes), thresholds {thresholds}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
