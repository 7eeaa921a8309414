"""The "stack" strong head: its trees learn from logits cross-fitted by source group."""

from __future__ import annotations

import numpy as np

from router_service.features import FEATURE_NAMES
from training.config import TrainConfig
from training.model.heads import fit_strong
from training.model.stacked_gain import FALLBACK_FOLDS, cross_fit_groups, fit_stacked_gain

CFG = TrainConfig(strong_linear_c=10.0, strong_stack_min_samples_leaf=10)


def _rows(n: int, dims: int, seed: int) -> np.ndarray:
    """Random embeddings with constant features: the trees can only read the logits."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, dims)).astype(np.float32)
    return np.concatenate([emb, np.zeros((n, len(FEATURE_NAMES)), np.float32)], axis=1)


def test_one_fold_per_group_and_random_folds_for_a_single_group() -> None:
    groups = np.array(["mmlu_stem", "gsm8k", "mmlu_stem", "mmlu_other", "gsm8k"], object)
    folds = cross_fit_groups(groups, seed=0)
    assert len(set(folds)) == 3
    assert folds[0] == folds[2] and folds[1] == folds[4] and folds[0] != folds[1]
    single = cross_fit_groups(np.array(["feedback"] * 200, object), seed=0)
    assert set(single) == set(range(FALLBACK_FOLDS))


def test_trees_do_not_trust_logits_that_only_memorised_their_rows() -> None:
    """Noise labels on more dimensions than a weakly regularised regression needs to fit
    them: its in-sample logits separate the training rows, its cross-fitted ones do not.
    Trees fitted on the cross-fitted logits learn that and stay near the mean, even on the
    training rows; trees on in-sample logits would reproduce the labels."""
    n = 400
    X = _rows(n, 300, seed=1)
    rng = np.random.default_rng(2)
    strong = rng.integers(0, 2, n).astype(np.float64)
    weak = rng.integers(0, 2, n).astype(np.float64)
    groups = np.array([f"g{i % 4}" for i in range(n)], object)
    head = fit_stacked_gain(X, (strong, weak), groups, CFG)
    in_sample = head.linear(X)
    assert np.corrcoef(in_sample[:, 0] - in_sample[:, 1], strong - weak)[0, 1] > 0.6
    assert abs(np.corrcoef(head.raw(X), strong - weak)[0, 1]) < 0.3


def test_trees_keep_a_signal_that_holds_across_groups() -> None:
    n = 600
    X = _rows(n, 20, seed=3)
    rng = np.random.default_rng(4)
    signal = X[:, 0] > 0
    strong = np.where(signal, 1.0, rng.integers(0, 2, n))
    weak = np.where(signal, 0.0, strong)
    groups = np.array([f"g{i % 3}" for i in range(n)], object)
    head = fit_strong(X, strong - weak, CFG, outcomes=(strong, weak), kind="stack", groups=groups)
    fresh = _rows(200, 20, seed=5)
    raw = head.raw(fresh)
    assert raw[fresh[:, 0] > 0].mean() > raw[fresh[:, 0] <= 0].mean() + 0.5
    assert head.rounds == CFG.strong_stack_rounds


def test_trees_only_rows_shape_the_trees_not_the_regressions() -> None:
    """Judge-preference rows (``trees_only``) on another scale: the regressions equal a fit
    without them, their gain is centred on the other rows' mean, and the trees learn the
    ranking they carry (here on a feature the benchmark rows never vary)."""
    n, extra = 400, 300
    X = _rows(n + extra, 20, seed=6)
    rng = np.random.default_rng(7)
    X[n:, -1] = rng.integers(0, 2, extra)  # the last feature varies on the judge rows only
    strong = rng.integers(0, 2, n + extra).astype(np.float64)
    weak = rng.integers(0, 2, n + extra).astype(np.float64)
    strong[n:] = np.where(X[n:, -1] > 0, 1.0, 0.8)  # the judge: a high base rate, one cue
    weak[n:] = 1.0 - strong[n:]
    groups = np.array([f"g{i % 3}" for i in range(n)] + ["judge"] * extra, object)
    only = np.arange(n + extra) >= n
    head = fit_stacked_gain(X, (strong, weak), groups, CFG, trees_only=only)
    alone = fit_stacked_gain(X[:n], (strong[:n], weak[:n]), groups[:n], CFG)
    np.testing.assert_allclose(head.linear(X), alone.linear(X), rtol=1e-6, atol=1e-9)
    raw = head.raw(X[n:])
    assert raw[X[n:, -1] > 0].mean() > raw[X[n:, -1] == 0].mean() + 0.1
    # centred: the judge rows' high base rate does not lift them above the benchmark rows
    assert abs(raw.mean() - head.raw(X[:n]).mean()) < 0.1
    ignored = fit_stacked_gain(X, (strong, weak), groups, CFG, trees_only=only, trees_only_weight=0)
    flat = ignored.raw(X[n:])
    assert abs(flat[X[n:, -1] > 0].mean() - flat[X[n:, -1] == 0].mean()) < 0.05
