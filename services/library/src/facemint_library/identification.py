"""Open-set identification: which of a query face's candidate persons may be returned as matches.

A person matches a query face when their calibrated score reaches the decision threshold (0.70, a false-accept rate
of 1e-4 per comparison). A degraded photo of an enrolled person (blur, noise, an eye bar, a grey crop) often scores
below that although it resembles its own person far more than anyone else in the library. The **margin rule**
(:class:`MarginRule`) uses the other persons of the library as a cohort: it also accepts the best-scoring person
when

* their score reaches ``floor`` (below 0.70), and
* it is at least ``margin`` above the best score of any other person (the second-best person), and
* at least ``min_cohort`` other persons were scored for that face (the search's candidates).

The second condition is a per-probe normalisation: a probe that resembles many persons (an impostor) has a close
second; a probe of an enrolled person usually stands out. So does a stranger who resembles exactly one enrolled
person (a lookalike): only the floor keeps them out, which is why the packaged floors sit close to 0.70 (ADR 0027).
With fewer than ``min_cohort`` other persons the second
best says little (a library of one or two persons has no cohort), and only the 0.70 rule applies. Only the best
person can be accepted this way; every other match still needs 0.70. Returned scores are unchanged: the calibrated
similarity, the same scale as compare's.

The parameters are fitted per model by ``bench/calibration.py`` (:func:`fit_margin_rule`) and stored in the
model's calibration file under ``identification``; a calibration without it applies the 0.70 rule alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

DECISION_THRESHOLD = 0.70
"""The API's decision threshold on calibrated scores (``is_same_person`` and search matches)."""

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class MarginRule:
    """Accept the best person below the decision threshold when it stands far enough above the second best."""

    floor: float
    """The lowest calibrated score accepted this way."""
    margin: float
    """How far (in calibrated score) the best person must be above the second best."""
    min_cohort: int
    """Other persons that must have been scored for the face; with fewer, only the decision threshold applies."""
    stats: dict[str, Any] = field(default_factory=dict)
    """How the rule was fitted and what it gave (written by ``bench/calibration.py``)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.floor <= DECISION_THRESHOLD:
            raise ValueError(f"margin rule: floor must be in (0, {DECISION_THRESHOLD}]")
        if not 0.0 < self.margin <= 1.0:
            raise ValueError("margin rule: margin must be in (0, 1]")
        if self.min_cohort < 1:
            raise ValueError("margin rule: min_cohort must be at least 1")

    def accepts(self, best: npt.ArrayLike, second: npt.ArrayLike, cohort: npt.ArrayLike) -> BoolArray:
        """Whether the rule accepts best persons, elementwise.

        Args:
            best: Calibrated score of each face's best person.
            second: Calibrated score of its second-best person (0 when there is none).
            cohort: Other persons scored for the face.
        """
        s1 = np.asarray(best, dtype=np.float64)
        s2 = np.asarray(second, dtype=np.float64)
        accepted: BoolArray = (np.asarray(cohort) >= self.min_cohort) & (s1 >= self.floor) & (s1 - s2 >= self.margin)
        return accepted

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a calibration file under ``identification``."""
        return {
            "rule": "margin",
            "floor": round(self.floor, 6),
            "margin": round(self.margin, 6),
            "min_cohort": self.min_cohort,
            **self.stats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MarginRule:
        """Parse the JSON form."""
        if data.get("rule") != "margin":
            raise ValueError(f"unknown identification rule {data.get('rule')!r}")
        known = {"rule", "floor", "margin", "min_cohort"}
        stats = {k: v for k, v in data.items() if k not in known}
        return cls(float(data["floor"]), float(data["margin"]), int(data["min_cohort"]), stats)


def top_two(scores: npt.ArrayLike) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Per row of a faces x persons score matrix: the best column, its score and the second-best score (0 if none)."""
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.shape[1] == 0:
        empty = np.zeros(matrix.shape[0])
        return np.zeros(matrix.shape[0], dtype=np.intp), empty, empty
    order = np.argsort(-matrix, axis=1, kind="stable")
    rows = np.arange(matrix.shape[0])
    best = matrix[rows, order[:, 0]]
    second = matrix[rows, order[:, 1]] if matrix.shape[1] > 1 else np.zeros(matrix.shape[0])
    return order[:, 0], best, second


def eligible(scores: npt.ArrayLike, cohort: npt.ArrayLike, rule: MarginRule | None) -> BoolArray:
    """Which (face, person) pairs may be matched: every score at the decision threshold, plus each face's best
    person where ``rule`` accepts it.

    Args:
        scores: A faces x persons matrix of calibrated scores; a person that the search did not return for a face
            scores 0 there.
        cohort: Per face, the other persons that the search returned for it (besides its best).
        rule: The margin rule of the model, or None for the decision threshold alone.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("scores must be a 2-D matrix")
    mask: BoolArray = matrix >= DECISION_THRESHOLD
    if rule is None or matrix.size == 0:
        return mask
    top, best, second = top_two(matrix)
    rows = np.flatnonzero(rule.accepts(best, second, cohort))
    mask[rows, top[rows]] = True
    return mask


@dataclass(frozen=True)
class Trials:
    """Identification trials: each probe's best and second-best person scores and what its best person is.

    A *genuine* trial is a probe of an enrolled person (``right``: its best person is that person); the others are
    *stranger* trials (a person who is not enrolled), where any match is a false match.
    """

    best: npt.NDArray[np.float64]
    second: npt.NDArray[np.float64]
    cohort: npt.NDArray[np.int64]
    genuine: BoolArray
    right: BoolArray

    def where(self, mask: npt.ArrayLike) -> Trials:
        """The trials selected by a boolean mask."""
        keep = np.asarray(mask, dtype=bool)
        return Trials(self.best[keep], self.second[keep], self.cohort[keep], self.genuine[keep], self.right[keep])

    @staticmethod
    def concat(parts: list[Trials]) -> Trials:
        """The trials of several sets together."""
        return Trials(
            np.concatenate([t.best for t in parts]),
            np.concatenate([t.second for t in parts]),
            np.concatenate([t.cohort for t in parts]),
            np.concatenate([t.genuine for t in parts]),
            np.concatenate([t.right for t in parts]),
        )

    def outcome(self, rule: MarginRule | None) -> dict[str, int]:
        """Counts of correct and wrong matches and no match (genuine trials), false matches (stranger trials)."""
        accepted = self.best >= DECISION_THRESHOLD
        if rule is not None:
            accepted = accepted | rule.accepts(self.best, self.second, self.cohort)
        return {
            "correct": int(np.sum(accepted & self.right)),
            "wrong_person": int(np.sum(accepted & self.genuine & ~self.right)),
            "no_match": int(np.sum(~accepted & self.genuine)),
            "false_matches": int(np.sum(accepted & ~self.genuine)),
        }


FLOOR_GRID = tuple(round(0.40 + 0.01 * i, 2) for i in range(30))
MARGIN_GRID = tuple(round(0.05 + 0.01 * i, 2) for i in range(36))
GUARD = 0.03
"""How far (in calibrated score, floor and margin alike) a fitted rule stays from the wrong and stranger matches of
the trials it was fitted on."""


def fit_margin_rule(trials: Trials, min_cohort: int, guard: float = GUARD) -> MarginRule | None:
    """The margin rule that matches the most genuine trials correctly without more wrong or false matches.

    Every (floor, margin) of a grid (``FLOOR_GRID`` 0.40-0.69, ``MARGIN_GRID`` 0.05-0.40) is tried. A rule
    qualifies when the rule ``guard`` looser in both (floor and margin each ``guard`` lower) still gives no more
    wrong-person matches and no more stranger matches than the decision threshold alone: no trial that would be a
    wrong or stranger match lies within ``guard`` of the rule. Among the qualifying rules with the most correct
    matches, the strictest is chosen (highest margin, then highest floor).

    Returns:
        The rule, or None when none matches more genuine trials than the threshold alone.
    """
    base = trials.outcome(None)
    best: tuple[int, float, float] | None = None
    for floor in FLOOR_GRID:
        for margin in MARGIN_GRID:
            loose = trials.outcome(MarginRule(floor - guard, margin - guard, min_cohort))
            if loose["wrong_person"] > base["wrong_person"] or loose["false_matches"] > base["false_matches"]:
                continue
            key = (trials.outcome(MarginRule(floor, margin, min_cohort))["correct"], margin, floor)
            if best is None or key > best:
                best = key
    if best is None or best[0] <= base["correct"]:
        return None
    return MarginRule(best[2], best[1], min_cohort)
