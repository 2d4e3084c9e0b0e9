"""Joint assignment of one frame's faces to persons."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facemint_library.assignment import assign_jointly, rank_matches

T = 0.70


def at_t(scores: object) -> np.ndarray:
    """The pairs eligible under the decision threshold alone."""
    return np.asarray(scores) >= T


def test_two_faces_never_get_the_same_person() -> None:
    # Both faces look most like person 0; the second also looks like person 1.
    scores = [[0.95, 0.10], [0.90, 0.80]]
    assert assign_jointly(scores, at_t(scores)) == [0, 1]
    assert rank_matches(scores, at_t(scores), top_k=3) == [[(0, 0.95)], [(1, 0.80)]]


def test_a_face_whose_only_candidate_went_to_a_better_face_is_unmatched() -> None:
    scores = [[0.95], [0.85]]
    assert assign_jointly(scores, at_t(scores)) == [0, None]
    assert rank_matches(scores, at_t(scores), top_k=5) == [[(0, 0.95)], []]


def test_nothing_below_the_threshold_is_assigned_or_listed() -> None:
    scores = [[0.69, 0.30], [0.50, 0.699]]
    assert assign_jointly(scores, at_t(scores)) == [None, None]
    assert rank_matches(scores, at_t(scores), top_k=10) == [[], []]


def test_top_k_lists_the_assignment_then_free_candidates_best_first() -> None:
    scores = [[0.80, 0.95, 0.75, 0.72, 0.20], [0.10, 0.99, 0.10, 0.10, 0.10]]
    ranked = rank_matches(scores, at_t(scores), top_k=3)
    # Face 1 takes person 1; face 0 gets person 0 first, then 2 and 3 (never person 1, which went to face 1).
    assert [p for p, _ in ranked[0]] == [0, 2, 3]
    assert [p for p, _ in ranked[1]] == [1]
    assert [p for p, _ in rank_matches(scores, at_t(scores), top_k=1)[0]] == [0]


def test_empty_inputs() -> None:
    assert assign_jointly(np.zeros((0, 3)), at_t(np.zeros((0, 3)))) == []
    assert assign_jointly(np.zeros((2, 0)), at_t(np.zeros((2, 0)))) == [None, None]
    assert rank_matches(np.zeros((2, 0)), at_t(np.zeros((2, 0))), 3) == [[], []]
    with pytest.raises(ValueError):
        assign_jointly([1.0, 2.0], at_t([1.0, 2.0]))
    with pytest.raises(ValueError):  # an eligible pair of score 0 would weigh like a non-edge
        assign_jointly([[0.0, 0.9]], [[True, True]])


def test_a_best_person_below_the_threshold_is_assigned_when_eligible() -> None:
    # Face 0's best person (0.62) is eligible through the margin rule; its second (0.30) is not.
    scores = [[0.62, 0.30], [0.20, 0.80]]
    eligible = [[True, False], [False, True]]
    assert assign_jointly(scores, eligible) == [0, 1]
    assert rank_matches(scores, eligible, top_k=3) == [[(0, 0.62)], [(1, 0.80)]]
    # A face that prefers that person above the threshold takes it: the other face is left unmatched.
    contested = [[0.62, 0.10], [0.75, 0.20]]
    assert assign_jointly(contested, [[True, False], [True, False]]) == [None, 0]


def _best_total(scores: np.ndarray) -> float:
    faces, persons = scores.shape
    best = 0.0
    options = list(range(persons)) + [None] * faces
    for choice in itertools.permutations(options, faces):
        used = [c for c in choice if c is not None]
        if len(used) != len(set(used)):
            continue
        total = sum(scores[f, c] for f, c in enumerate(choice) if c is not None and scores[f, c] >= T)
        if any(c is not None and scores[f, c] < T for f, c in enumerate(choice)):
            continue
        best = max(best, total)
    return best


def test_assignment_is_the_exact_optimum_on_random_frames() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        faces, persons = rng.integers(1, 5), rng.integers(1, 5)
        scores = rng.uniform(0.4, 1.0, size=(faces, persons))
        assigned = assign_jointly(scores, at_t(scores))
        used = [p for p in assigned if p is not None]
        assert len(used) == len(set(used))
        assert all(scores[f, p] >= T for f, p in enumerate(assigned) if p is not None)
        total = sum(scores[f, p] for f, p in enumerate(assigned) if p is not None)
        assert total == pytest.approx(_best_total(scores))
