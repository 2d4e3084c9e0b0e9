"""The open-set margin rule: what it accepts, how it is fitted, how a calibration file carries it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facemint_library.calibration import PACKAGED_DIR, Calibration
from facemint_library.identification import DECISION_THRESHOLD, MarginRule, Trials, eligible, fit_margin_rule

RULE = MarginRule(floor=0.55, margin=0.15, min_cohort=3)


def test_only_the_best_person_is_accepted_below_the_threshold_and_only_with_a_cohort() -> None:
    scores = [
        [0.62, 0.40, 0.30, 0.20],  # best far above the second: accepted
        [0.62, 0.50, 0.30, 0.20],  # second too close
        [0.52, 0.10, 0.10, 0.10],  # below the floor
        [0.75, 0.72, 0.10, 0.10],  # both at the threshold: both eligible as before
        [0.62, 0.40, 0.30, 0.20],  # as the first, but too few other persons were scored
    ]
    mask = eligible(scores, [3, 3, 3, 3, 2], RULE)
    assert mask.tolist() == [
        [True, False, False, False],
        [False, False, False, False],
        [False, False, False, False],
        [True, True, False, False],
        [False, False, False, False],
    ]
    # Without a rule only the decision threshold counts.
    assert eligible(scores, [3] * 5, None).tolist() == (np.asarray(scores) >= DECISION_THRESHOLD).tolist()
    # A library of one person has no cohort: nothing below the threshold.
    assert eligible([[0.69]], [0], RULE).tolist() == [[False]]
    assert eligible(np.zeros((2, 0)), [0, 0], RULE).shape == (2, 0)


def test_a_rule_outside_its_range_is_refused() -> None:
    for floor, margin, cohort in ((0.75, 0.1, 3), (0.0, 0.1, 3), (0.5, 0.0, 3), (0.5, 0.1, 0)):
        with pytest.raises(ValueError):
            MarginRule(floor, margin, cohort)


def _trials(rng: np.random.Generator) -> Trials:
    """Genuine probes (a clear best person near or below 0.70) and strangers (a close second), like degraded probes."""
    n_gen, n_str = 400, 400
    gen_best = rng.uniform(0.45, 0.9, n_gen)
    gen_second = rng.uniform(0.15, 0.35, n_gen)
    str_best = rng.uniform(0.30, 0.62, n_str)
    str_second = str_best - rng.uniform(0.0, 0.12, n_str)
    right = np.ones(n_gen + n_str, dtype=bool)
    right[n_gen:] = False
    right[:10] = False  # ten genuine probes whose best person is someone else, close to their second
    gen_second[:10] = gen_best[:10] - 0.05
    return Trials(
        np.concatenate([gen_best, str_best]),
        np.concatenate([gen_second, str_second]),
        np.full(n_gen + n_str, 20, dtype=np.int64),
        np.arange(n_gen + n_str) < n_gen,
        right,
    )


def test_the_fitted_rule_matches_more_without_more_wrong_or_stranger_matches() -> None:
    trials = _trials(np.random.default_rng(0))
    rule = fit_margin_rule(trials, min_cohort=10)
    assert rule is not None and rule.min_cohort == 10
    before, after = trials.outcome(None), trials.outcome(rule)
    assert after["correct"] > before["correct"] + 50
    assert after["wrong_person"] <= before["wrong_person"] and after["false_matches"] <= before["false_matches"]
    assert after["correct"] + after["wrong_person"] + after["no_match"] == 400
    # Strangers' margins stop below 0.12 here: the strictest rule with the most matches sits right above them.
    assert 0.12 <= rule.margin <= 0.20


def test_no_rule_is_fitted_when_it_cannot_match_more() -> None:
    # Every genuine probe is already at the threshold: nothing to gain.
    trials = Trials(
        np.array([0.8, 0.9, 0.5]),
        np.array([0.2, 0.3, 0.1]),
        np.array([20, 20, 20]),
        np.array([True, True, False]),
        np.array([True, True, False]),
    )
    assert fit_margin_rule(trials, 10) is None
    # The only genuine probe that a rule could gain lies within the guard of a stranger: refused.
    near = Trials(
        np.array([0.65, 0.64]),
        np.array([0.30, 0.30]),
        np.array([20, 20]),
        np.array([True, False]),
        np.array([True, False]),
    )
    assert fit_margin_rule(near, 10) is None
    assert fit_margin_rule(near, 10, guard=0.0) is not None


def test_a_calibration_carries_its_rule_through_json() -> None:
    anchors = ((-1.0, 0.0), (0.0, 0.25), (0.4, 0.70), (0.7, 0.90), (1.0, 1.0))
    calibration = Calibration("m", "1", anchors, {"target_far": 1e-4}, MarginRule(0.6, 0.2, 10, {"fitted_on": "x"}))
    data = json.loads(json.dumps(calibration.to_dict()))
    assert data["identification"] == {"rule": "margin", "floor": 0.6, "margin": 0.2, "min_cohort": 10, "fitted_on": "x"}
    assert Calibration.from_dict(data) == calibration
    without = Calibration("m", "1", anchors)
    assert "identification" not in without.to_dict() and Calibration.from_dict(without.to_dict()) == without


def test_each_packaged_calibration_has_a_fitted_rule_below_the_threshold() -> None:
    for model in ("sface-2021dec", "arcface-w600k-mbf"):
        rule = Calibration.from_dict(json.loads((PACKAGED_DIR / f"{model}.json").read_text())).identification
        assert rule is not None, model
        assert rule.floor < DECISION_THRESHOLD and rule.margin > 0 and rule.min_cohort >= 10
        assert "fitted_on" in rule.stats
