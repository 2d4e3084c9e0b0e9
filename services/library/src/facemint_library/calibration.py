"""Calibrated match scores: a monotone map from raw cosine similarity to the API's 0-1 ``score``.

Every embedding model has its own cosine distribution, so each gets its own mapping, fitted on labelled pairs by
``bench/calibration.py`` (``make calibrate``) and shipped as ``calibration/<model_id>.json`` beside this module.

The mapping is piecewise linear through five anchors (cosine -> score), strictly increasing in both:

===========================  =====
cosine                       score
===========================  =====
-1                           0.00
mean impostor cosine         0.25
``t``: FAR target point      0.70  (the API's decision threshold)
median genuine cosine        0.90
1                            1.00
===========================  =====

``t`` is placed at a false-accept rate of ``target_far`` (1e-4 by default). With enough impostor (different-person)
pairs to see that tail, at least ``MIN_TAIL_IMPOSTORS`` of them at the target rate, ``t`` is the empirical point:
just above the impostor cosine that ``floor(target_far * n)`` impostors reach or exceed, so the fitted pairs'
FAR is at most ``target_far``. With fewer, ``t`` is where a normal distribution fitted to the impostor cosines has
an upper tail of ``target_far``, raised to just above the highest impostor cosine seen when there are fewer than
``1 / target_far`` pairs (real impostor tails are heavier than normal ones). The file also records the empirical
FAR and TAR at ``t`` on the pairs it was fitted on (``bench/calibration.py`` adds them per image condition).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from facemint_core.errors import Conflict
from facemint_library.identification import DECISION_THRESHOLD, MarginRule

log = logging.getLogger(__name__)

PACKAGED_DIR = Path(__file__).with_name("calibration")

MIN_TAIL_IMPOSTORS = 10
"""Impostor pairs expected above the threshold at the target FAR from which the empirical tail places it."""

_IMPOSTOR_MEAN_SCORE = 0.25
_GENUINE_MEDIAN_SCORE = 0.90


@dataclass(frozen=True)
class Calibration:
    """The score mapping of one embedding model and the evidence behind it."""

    model_id: str
    model_version: str
    anchors: tuple[tuple[float, float], ...]
    stats: dict[str, Any] = field(default_factory=dict)
    identification: MarginRule | None = None
    """The open-set margin rule of search (:mod:`facemint_library.identification`); None: 0.70 alone."""

    def __post_init__(self) -> None:
        xs = [a[0] for a in self.anchors]
        ys = [a[1] for a in self.anchors]
        if len(xs) < 2 or xs[0] != -1.0 or xs[-1] != 1.0 or ys[0] != 0.0 or ys[-1] != 1.0:
            raise ValueError(f"calibration of {self.model_id}: anchors must run from (-1, 0) to (1, 1)")
        if any(b <= a for a, b in zip(xs, xs[1:], strict=False)) or any(
            b <= a for a, b in zip(ys, ys[1:], strict=False)
        ):
            raise ValueError(f"calibration of {self.model_id}: anchors must be strictly increasing")

    @property
    def cosine_at_threshold(self) -> float:
        """The raw cosine whose calibrated score is exactly the decision threshold."""
        return float(np.interp(DECISION_THRESHOLD, [a[1] for a in self.anchors], [a[0] for a in self.anchors]))

    def scores(self, cosines: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Calibrated scores of an array of cosine similarities."""
        xs = np.array([a[0] for a in self.anchors])
        ys = np.array([a[1] for a in self.anchors])
        scores: npt.NDArray[np.float64] = np.interp(np.clip(np.asarray(cosines, dtype=np.float64), -1.0, 1.0), xs, ys)
        return scores

    def score(self, cosine: float) -> float:
        """Calibrated score of one cosine similarity."""
        return float(self.scores([cosine])[0])

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written by the calibration tool."""
        return {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "decision_threshold": DECISION_THRESHOLD,
            "mapping": "piecewise_linear",
            "anchors": [{"cosine": round(x, 6), "score": y} for x, y in self.anchors],
            "cosine_at_threshold": round(self.cosine_at_threshold, 6),
            **self.stats,
            **({"identification": self.identification.to_dict()} if self.identification else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        """Parse the JSON form."""
        anchors = tuple((float(a["cosine"]), float(a["score"])) for a in data["anchors"])
        known = {
            "model_id",
            "model_version",
            "decision_threshold",
            "mapping",
            "anchors",
            "cosine_at_threshold",
            "identification",
        }
        stats = {k: v for k, v in data.items() if k not in known}
        rule = MarginRule.from_dict(data["identification"]) if "identification" in data else None
        return cls(str(data["model_id"]), str(data.get("model_version", "")), anchors, stats, rule)

    @classmethod
    def fit(
        cls,
        model_id: str,
        model_version: str,
        genuine: npt.ArrayLike,
        impostor: npt.ArrayLike,
        target_far: float = 1e-4,
    ) -> Calibration:
        """Fit the mapping on the cosines of same-person (genuine) and different-person (impostor) pairs.

        Args:
            model_id: The embedding model's id, e.g. ``sface-2021dec``.
            model_version: Its version as reported in embeddings.
            genuine: Cosine similarities of same-person pairs.
            impostor: Cosine similarities of different-person pairs.
            target_far: The false-accept rate that the decision threshold is placed at (empirical with enough
                impostor pairs, else a normal-tail estimate).

        Returns:
            The calibration, with the empirical FAR/TAR at the threshold and a few other operating points.
        """
        gen = np.sort(np.asarray(genuine, dtype=np.float64))
        imp = np.sort(np.asarray(impostor, dtype=np.float64))
        if len(gen) < 2 or len(imp) < 2:
            raise ValueError("at least two genuine and two impostor pairs are needed")
        mu, sigma = float(imp.mean()), float(imp.std(ddof=1))
        t_normal = mu + NormalDist().inv_cdf(1.0 - target_far) * max(sigma, 1e-6)
        allowed = int(np.floor(len(imp) * target_far))
        if len(imp) * target_far >= MIN_TAIL_IMPOSTORS:
            # The tail is seen: at most `allowed` impostors reach the threshold.
            t = float(imp[len(imp) - allowed - 1]) + 1e-6
            placement = "empirical"
        else:
            # Too few impostors to see a target_far tail: never let a seen impostor pass.
            t_seen = float(imp[-1]) + 1e-4 if allowed < 1 else -1.0
            t = max(t_normal, t_seen)
            placement = "normal_tail" if t == t_normal else "highest_impostor"
        t = min(t, 0.95)
        g_med = float(np.median(gen))
        if not t < g_med < 1.0:
            g_med = t + (1.0 - t) / 2.0
        anchors = (
            (-1.0, 0.0),
            (mu, _IMPOSTOR_MEAN_SCORE),
            (t, DECISION_THRESHOLD),
            (g_med, _GENUINE_MEDIAN_SCORE),
            (1.0, 1.0),
        )
        draft = cls(model_id, model_version, anchors)
        gen_scores, imp_scores = draft.scores(gen), draft.scores(imp)
        points = []
        for s in (0.5, 0.6, DECISION_THRESHOLD, 0.8, 0.9):
            points.append(
                {
                    "score": s,
                    "far": round(float(np.mean(imp_scores >= s)), 6),
                    "tar": round(float(np.mean(gen_scores >= s)), 6),
                }
            )
        stats = {
            "target_far": target_far,
            "threshold_placement": placement,
            "cosine_normal_tail": round(t_normal, 6),
            "far_at_threshold": round(float(np.mean(imp_scores >= DECISION_THRESHOLD)), 6),
            "tar_at_threshold": round(float(np.mean(gen_scores >= DECISION_THRESHOLD)), 6),
            "false_accepts": int(np.sum(imp_scores >= DECISION_THRESHOLD)),
            "false_rejects": int(np.sum(gen_scores < DECISION_THRESHOLD)),
            "genuine_pairs": len(gen),
            "impostor_pairs": len(imp),
            "impostor_cosine_mean": round(mu, 6),
            "impostor_cosine_std": round(sigma, 6),
            "impostor_cosine_max": round(float(imp[-1]), 6),
            "genuine_cosine_median": round(float(np.median(gen)), 6),
            "genuine_cosine_min": round(float(gen[0]), 6),
            "operating_points": points,
        }
        return cls(model_id, model_version, anchors, stats)


class Calibrations:
    """The calibrations known to a running service, by model id."""

    def __init__(self, items: Iterable[Calibration]) -> None:
        self._by_model = {c.model_id: c for c in items}

    @property
    def model_ids(self) -> list[str]:
        """Models with a calibration."""
        return sorted(self._by_model)

    def get(self, model_id: str) -> Calibration:
        """The calibration of a model; Conflict when there is none (its scores would mean nothing)."""
        try:
            return self._by_model[model_id]
        except KeyError:
            known = ", ".join(self.model_ids) or "none"
            raise Conflict(
                f"embedding model '{model_id}' has no score calibration (calibrated models: {known})"
            ) from None

    @classmethod
    def load(cls, extra_dir: str = "") -> Calibrations:
        """Load the packaged calibrations, then those in ``extra_dir`` (which replace packaged ones)."""
        found: dict[str, Calibration] = {}
        for directory in (PACKAGED_DIR, Path(extra_dir) if extra_dir else None):
            if directory is None or not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.json")):
                calibration = Calibration.from_dict(json.loads(path.read_text()))
                found[calibration.model_id] = calibration
                log.info("score calibration loaded", extra={"model_id": calibration.model_id, "path": str(path)})
        return cls(found.values())
