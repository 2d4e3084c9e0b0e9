"""Joint identity assignment of the faces of one frame: no person is given to two faces.

The faces of a frame are different people, so their identities are chosen together: among the (face, person) pairs
whose calibrated score reaches the decision threshold, :func:`assign_jointly` picks the one-to-one matching with
the largest total score (the Hungarian method, ``scipy.optimize.linear_sum_assignment``). :func:`rank_matches` then
lists, for each face, its assigned person first, followed by its other candidates above the threshold that were not
assigned to another face of the frame, best first, up to ``top_k``. A face left without an assignment (every
candidate it had went to a face that matched better overall) gets an empty list.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment


def assign_jointly(scores: npt.ArrayLike, threshold: float) -> list[int | None]:
    """The maximum-total-score one-to-one assignment of faces (rows) to persons (columns) at or above threshold.

    Args:
        scores: A faces x persons matrix of calibrated scores.
        threshold: Pairs below it are never assigned.

    Returns:
        For each face, the column of its person, or None.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("scores must be a 2-D matrix")
    assigned: list[int | None] = [None] * matrix.shape[0]
    if matrix.size == 0:
        return assigned
    eligible = matrix >= threshold
    # Non-edges weigh 0: a maximum-weight assignment of this matrix, minus its zero-weight pairs, is a maximum-weight
    # matching of the eligible pairs (every eligible weight is positive because threshold > 0).
    weights = np.where(eligible, matrix, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if eligible[r, c]:
            assigned[r] = c
    return assigned


def rank_matches(scores: npt.ArrayLike, threshold: float, top_k: int) -> list[list[tuple[int, float]]]:
    """Per face, up to ``top_k`` (person column, score) pairs: its joint assignment first, then free candidates.

    Args:
        scores: A faces x persons matrix of calibrated scores.
        threshold: The decision threshold; nothing below it is returned.
        top_k: The most matches per face.

    Returns:
        One list per face, best first; empty for a face without an assignment.
    """
    if threshold <= 0:
        raise ValueError("threshold must be positive")
    matrix = np.asarray(scores, dtype=np.float64)
    assigned = assign_jointly(matrix, threshold)
    result: list[list[tuple[int, float]]] = []
    for face, person in enumerate(assigned):
        if person is None:
            result.append([])
            continue
        taken_by_others = {p for f, p in enumerate(assigned) if p is not None and f != face}
        matches = [(person, float(matrix[face, person]))]
        order = np.argsort(-matrix[face], kind="stable")
        for col in order.tolist():
            if len(matches) >= top_k or matrix[face, col] < threshold:
                break
            if col != person and col not in taken_by_others:
                matches.append((col, float(matrix[face, col])))
        result.append(matches)
    return result
