"""Joint identity assignment of the faces of one frame: no person is given to two faces.

The faces of a frame are different people, so their identities are chosen together: among the eligible (face,
person) pairs (calibrated score at the decision threshold, or a best person accepted by the margin rule of
:mod:`facemint_library.identification`), :func:`assign_jointly` picks the one-to-one matching with the largest total
score (the Hungarian method, ``scipy.optimize.linear_sum_assignment``). :func:`rank_matches` then lists, for each
face, its assigned person first, followed by its other eligible candidates that were not assigned to another face of
the frame, best first, up to ``top_k``. A face left without an assignment (every candidate it had went to a face
that matched better overall) gets an empty list.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment


def assign_jointly(scores: npt.ArrayLike, eligible: npt.ArrayLike) -> list[int | None]:
    """The maximum-total-score one-to-one assignment of faces (rows) to persons (columns) among eligible pairs.

    Args:
        scores: A faces x persons matrix of calibrated scores (positive where eligible).
        eligible: A boolean matrix of the same shape: the pairs that may be assigned.

    Returns:
        For each face, the column of its person, or None.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("scores must be a 2-D matrix")
    assigned: list[int | None] = [None] * matrix.shape[0]
    if matrix.size == 0:
        return assigned
    allowed = np.asarray(eligible, dtype=bool)
    if allowed.shape != matrix.shape or np.any(matrix[allowed] <= 0):
        raise ValueError("eligible must have the shape of scores and mark positive scores only")
    # Non-edges weigh 0: a maximum-weight assignment of this matrix, minus its zero-weight pairs, is a maximum-weight
    # matching of the eligible pairs (every eligible weight is positive).
    weights = np.where(allowed, matrix, 0.0)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if allowed[r, c]:
            assigned[r] = c
    return assigned


def rank_matches(scores: npt.ArrayLike, eligible: npt.ArrayLike, top_k: int) -> list[list[tuple[int, float]]]:
    """Per face, up to ``top_k`` (person column, score) pairs: its joint assignment first, then free candidates.

    Args:
        scores: A faces x persons matrix of calibrated scores.
        eligible: A boolean matrix of the same shape; nothing else is returned.
        top_k: The most matches per face.

    Returns:
        One list per face, best first; empty for a face without an assignment.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    allowed = np.asarray(eligible, dtype=bool)
    assigned = assign_jointly(matrix, allowed)
    result: list[list[tuple[int, float]]] = []
    for face, person in enumerate(assigned):
        if person is None:
            result.append([])
            continue
        taken_by_others = {p for f, p in enumerate(assigned) if p is not None and f != face}
        matches = [(person, float(matrix[face, person]))]
        order = np.argsort(-matrix[face], kind="stable")
        for col in order.tolist():
            if len(matches) >= top_k:
                break
            if allowed[face, col] and col != person and col not in taken_by_others:
                matches.append((col, float(matrix[face, col])))
        result.append(matches)
    return result
