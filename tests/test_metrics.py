"""training.evaluate.metrics: routing curves (RouteLLM PGR/APGR/CPT), calibration, intent report."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.evaluate.metrics import (
    apgr,
    apgr_difference_draws,
    cpt,
    ece,
    intent_report,
    percentile_interval,
    pgr_curve,
    random_apgr,
    reliability_curve,
    share_for_quality,
)

# Four prompts, hand-computed. Score order: 0 (gain +1), 2 (+1), 3 (-1), 1 (0).
# weak acc 0.5, strong acc 0.75; mixed after k strong calls: .5, .75, 1, .75, .75;
# PGR: 0, 1, 2, 1, 1.
HAND_SCORES = [0.9, 0.1, 0.5, 0.3]
HAND_WEAK = [0, 1, 0, 1]
HAND_STRONG = [1, 1, 1, 0]


def test_hand_example_curve() -> None:
    x, mixed, pgr = pgr_curve(HAND_SCORES, HAND_WEAK, HAND_STRONG, n_points=5)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(mixed, [0.5, 0.75, 1.0, 0.75, 0.75])
    np.testing.assert_allclose(pgr, [0, 1, 2, 1, 1])
    # trapezoid: 0.25 * (0.5 + 1.5 + 1.5 + 1.0)
    assert apgr(HAND_SCORES, HAND_WEAK, HAND_STRONG, n_points=5) == pytest.approx(1.125)


def test_hand_example_interpolates_between_prompts() -> None:
    x, mixed, pgr = pgr_curve(HAND_SCORES, HAND_WEAK, HAND_STRONG, n_points=9)
    assert x[1] == pytest.approx(0.125)
    assert mixed[1] == pytest.approx(0.625)  # half of prompt 0 routed strong
    assert pgr[1] == pytest.approx(0.5)


def test_hand_example_cpt() -> None:
    assert cpt(HAND_SCORES, HAND_WEAK, HAND_STRONG, 0.0) == 0.0
    assert cpt(HAND_SCORES, HAND_WEAK, HAND_STRONG, 0.5) == pytest.approx(0.125)
    assert cpt(HAND_SCORES, HAND_WEAK, HAND_STRONG, 1.0) == pytest.approx(0.25)
    assert cpt(HAND_SCORES, HAND_WEAK, HAND_STRONG, 2.0) == pytest.approx(0.5)
    assert math.isnan(cpt(HAND_SCORES, HAND_WEAK, HAND_STRONG, 2.5))


def test_hand_example_share_for_a_fraction_of_strong_quality() -> None:
    # 95% of 0.75 = 0.7125 -> PGR 0.85, reached 85% of the way through the first prompt
    assert share_for_quality(HAND_SCORES, HAND_WEAK, HAND_STRONG, 0.95) == pytest.approx(0.2125)
    assert share_for_quality(HAND_SCORES, HAND_WEAK, HAND_STRONG, 0.6) == 0.0  # weak is enough
    assert share_for_quality(HAND_SCORES, HAND_WEAK, HAND_STRONG, 4 / 3) == pytest.approx(0.5)
    assert math.isnan(share_for_quality(HAND_SCORES, HAND_WEAK, HAND_STRONG, 1.5))
    assert math.isnan(share_for_quality(HAND_SCORES, [1, 0, 1, 0], [1, 0, 1, 0], 0.95))


def test_curve_endpoints_are_weak_and_strong() -> None:
    rng = np.random.default_rng(1)
    weak = rng.random(300) < 0.6
    strong = rng.random(300) < 0.8
    _, mixed, pgr = pgr_curve(rng.random(300), weak, strong)
    assert mixed[0] == pytest.approx(weak.mean()) and mixed[-1] == pytest.approx(strong.mean())
    assert pgr[0] == pytest.approx(0.0) and pgr[-1] == pytest.approx(1.0)


def _oracle_apgr_analytic(n_plus: int, n_zero: int, n_minus: int) -> float:
    """PGR of the oracle rises to n+/D by x1, stays flat to x2, falls to 1 at x = 1."""
    n, d = n_plus + n_zero + n_minus, n_plus - n_minus
    peak, x1, x2 = n_plus / d, n_plus / n, (n_plus + n_zero) / n
    return 0.5 * x1 * peak + (x2 - x1) * peak + (1 - x2) * (peak + 1) / 2


def _outcomes(n_plus: int, n_zero: int, n_minus: int, seed: int) -> tuple[np.ndarray, ...]:
    weak = np.r_[np.zeros(n_plus), np.ones(n_zero // 2), np.zeros(n_zero - n_zero // 2)]
    weak = np.r_[weak, np.ones(n_minus)]
    strong = np.r_[np.ones(n_plus), np.ones(n_zero // 2), np.zeros(n_zero - n_zero // 2)]
    strong = np.r_[strong, np.zeros(n_minus)]
    perm = np.random.default_rng(seed).permutation(len(weak))
    return weak[perm], strong[perm]


def test_oracle_router_matches_the_analytic_apgr() -> None:
    # 200 prompts with knots at x = 0.2 and 0.85: on the 101-point grid the trapezoid is exact.
    weak, strong = _outcomes(40, 130, 30, seed=0)
    oracle = strong - weak
    assert apgr(oracle, weak, strong) == pytest.approx(_oracle_apgr_analytic(40, 130, 30))
    # PGR peaks above 1: the oracle also avoids the prompts where the strong model is worse.
    _, _, pgr = pgr_curve(oracle, weak, strong)
    assert pgr.max() == pytest.approx(4.0)


def test_oracle_router_off_grid_is_close_to_analytic() -> None:
    weak, strong = _outcomes(57, 211, 19, seed=3)
    assert apgr(strong - weak, weak, strong) == pytest.approx(
        _oracle_apgr_analytic(57, 211, 19), abs=2e-3
    )


def test_random_router_apgr_is_one_half_in_expectation() -> None:
    rng = np.random.default_rng(7)
    weak = rng.random(400) < 0.55
    strong = rng.random(400) < 0.8
    mean, std = random_apgr(weak, strong, n_trials=400, seed=11)
    assert std > 0
    assert abs(mean - 0.5) < 4 * std / math.sqrt(400)


def test_anti_oracle_is_worse_than_random() -> None:
    weak, strong = _outcomes(40, 130, 30, seed=0)
    assert apgr(weak - strong, weak, strong) < 0.5 < apgr(strong - weak, weak, strong)


def test_paired_bootstrap_separates_oracle_from_noise() -> None:
    # a clear strong-weak gap: resamples where it nearly vanishes would make APGR explode
    weak, strong = _outcomes(80, 100, 20, seed=0)
    rng = np.random.default_rng(3)
    noise = rng.random(len(weak))
    same = apgr_difference_draws(noise, noise, weak, strong, n_boot=50, seed=1)
    assert np.all(same == 0.0)  # paired: one router against itself never differs
    oracle = apgr_difference_draws(strong - weak, noise, weak, strong, n_boot=200, seed=1)
    lo, hi = percentile_interval(oracle)
    point = apgr(strong - weak, weak, strong) - apgr(noise, weak, strong)
    assert 0.0 < lo < point < hi  # the oracle beats a random order beyond the sample's noise
    assert percentile_interval([0.0, 1.0, 2.0, 3.0, 4.0], level=0.5) == (1.0, 3.0)
    rerun = apgr_difference_draws(strong - weak, noise, weak, strong, n_boot=200, seed=1)
    np.testing.assert_array_equal(oracle, rerun)  # seeded


def test_ties_are_broken_by_position() -> None:
    weak = [0, 1, 0, 1, 0]
    strong = [1, 0, 1, 1, 1]
    tied = pgr_curve([0.5] * 5, weak, strong, n_points=6)
    in_order = pgr_curve([5, 4, 3, 2, 1], weak, strong, n_points=6)
    for a, b in zip(tied, in_order, strict=True):
        np.testing.assert_allclose(a, b)
    assert apgr([0.5] * 5, weak, strong) == apgr([0.5] * 5, weak, strong)


def test_equal_models_make_pgr_undefined() -> None:
    weak = [1, 0, 1, 0]
    strong = [0, 1, 1, 0]
    _, _, pgr = pgr_curve([1, 2, 3, 4], weak, strong)
    assert np.isnan(pgr).all()
    assert math.isnan(apgr([1, 2, 3, 4], weak, strong))
    assert math.isnan(cpt([1, 2, 3, 4], weak, strong, 0.5))


def test_routing_input_errors() -> None:
    with pytest.raises(ValueError, match="length"):
        pgr_curve([1, 2], [1], [0, 1])
    with pytest.raises(ValueError, match="no prompts"):
        apgr([], [], [])
    with pytest.raises(ValueError, match="NaN"):
        apgr([np.nan, 1.0], [0, 1], [1, 1])


def test_ece_hand_examples() -> None:
    probs = np.r_[np.full(10, 0.25), np.full(10, 0.75)]
    labels = np.r_[[1, 0, 0, 0] * 2 + [0, 0], [1, 1, 1, 0] * 2 + [1, 1]]
    # 0.25 bin: 2 of 10 positive -> off by .05; 0.75 bin: 8 of 10 -> off by .05
    assert ece(probs, labels) == pytest.approx(0.05)
    probs = np.r_[np.full(4, 0.25), np.full(4, 0.75)]
    labels = np.r_[[1, 0, 0, 0], [1, 1, 1, 0]]
    assert ece(probs, labels) == pytest.approx(0.0)


def test_ece_of_sampled_calibrated_probabilities_is_small() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(50_000)
    y = rng.random(50_000) < p
    assert ece(p, y) < 0.01
    assert ece(np.clip(p + 0.3, 0, 1), y) > 0.2  # overconfident


def test_ece_overconfident_hand_example() -> None:
    assert ece(np.full(10, 0.9), [1] * 5 + [0] * 5) == pytest.approx(0.4)


def test_multiclass_ece_uses_top_label_confidence() -> None:
    rows = np.tile([0.8, 0.15, 0.05], (10, 1))
    labels = [0] * 8 + [1, 2]  # top label right 80% of the time at confidence 0.8
    assert ece(rows, labels) == pytest.approx(0.0)
    assert ece(rows, [1] * 10) == pytest.approx(0.8)


def test_reliability_curve_bins() -> None:
    conf, acc, count = reliability_curve([0.0, 0.05, 0.55, 1.0, 1.0], [0, 0, 1, 1, 0], n_bins=10)
    assert count.tolist() == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert conf[0] == pytest.approx(0.025) and acc[0] == 0.0
    assert conf[9] == pytest.approx(1.0) and acc[9] == pytest.approx(0.5)
    assert np.isnan(conf[1]) and np.isnan(acc[1])
    with pytest.raises(ValueError, match="length"):
        reliability_curve([0.1, 0.2], [1])


def test_intent_report_hand_example() -> None:
    labels = ["a", "b", "c", "d"]
    y_true = ["a", "a", "b", "b", "c"]
    y_pred = ["a", "b", "b", "b", "a"]
    report = intent_report(y_true, y_pred, labels)
    assert report["accuracy"] == pytest.approx(3 / 5)
    assert report["confusion"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    a, b, c = (report["per_class"][k] for k in "abc")
    assert (a["precision"], a["recall"], a["f1"], a["support"]) == (0.5, 0.5, 0.5, 2)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == 1.0
    assert b["f1"] == pytest.approx(0.8)
    assert (c["precision"], c["recall"], c["f1"]) == (0.0, 0.0, 0.0)
    # "d" never occurs, so the macro average is over a, b, c only.
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert report["per_class"]["d"]["support"] == 0


def test_intent_report_perfect_and_errors() -> None:
    report = intent_report(np.array(["x", "y"]), np.array(["x", "y"]), ["x", "y"])
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    with pytest.raises(ValueError, match="not in the label list"):
        intent_report(["x"], ["z"], ["x", "y"])
    with pytest.raises(ValueError, match="length"):
        intent_report(["x"], [], ["x"])
