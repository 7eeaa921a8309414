"""Design matrix + per-model outcomes + source groups -> the "stack" strong-win head: the
"gain" head's two logits, cross-fitted by source, and the hand-crafted features -> a small
boosted regressor of the gain (P(strong right) - P(weak right)).

Why cross-fitted by *source*: the trees must learn how far the embedding's logits can be
trusted on a source the regressions never saw (that is all the router meets in production),
so every training row's logits come from regressions fitted without its source group
(``win_group``: the MMLU subject groups, GSM8K, ...). Fitted on in-sample logits the trees
would learn to trust them as much as they fit their own training rows. The shipped
regressions are then refitted on every row; only the trees read the cross-fitted ones.

The trees read the logits rounded to float32 (the graph's Gemm runs in float64 and casts),
so scikit-learn and onnxruntime take the same branches (``training.model.onnx_trees``).
Leave-one-source-out (MODEL_CARD.md, "Out-of-distribution"), over the plain gain head on
the same embedding: correctness-family mean APGR 0.555 -> 0.586, worst source 0.521 -> 0.575
(every correctness source above the heuristic); the preference family (AlpacaEval, which
it does not train on) falls 0.519 -> 0.505 mean, 0.495 -> 0.452 worst."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

from router_service.features import FEATURE_NAMES
from training.config import TrainConfig
from training.model.linear import LinearLogits, fit_linear

MIN_GROUPS = 2  # fewer source groups: cross-fit on ``FALLBACK_FOLDS`` random folds instead
FALLBACK_FOLDS = 5


@dataclass
class StackedGain:
    """``trees([float32(linear(X)) || features])`` -> the raw gain score."""

    linear: LinearLogits  # the gain head's two regressions (strong right, weak right)
    trees: HistGradientBoostingRegressor

    def inputs(self, X: np.ndarray) -> np.ndarray:
        """Design matrix -> the trees' input [N, 2 + F] (float32 logits, then features)."""
        return tree_inputs(self.linear(X), X)

    def raw(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.trees.predict(self.inputs(X)), np.float64)


def tree_inputs(z: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Gain logits [N, 2] + design matrix -> the trees' input [N, 2 + F]: both as float32,
    as the graph feeds them."""
    feats = X[:, -len(FEATURE_NAMES) :]
    return np.concatenate([np.asarray(z, np.float32), np.asarray(feats, np.float32)], axis=1)


def cross_fit_groups(groups: np.ndarray, seed: int) -> np.ndarray:
    """Per-row source groups -> fold ids: one fold per group when there are at least
    ``MIN_GROUPS``, else ``FALLBACK_FOLDS`` random folds (a single-source corpus)."""
    names, fold = np.unique(np.asarray(groups, str), return_inverse=True)
    if len(names) >= MIN_GROUPS:
        return fold
    rng = np.random.default_rng(seed)
    return rng.integers(0, FALLBACK_FOLDS, len(fold))


def fit_stacked_gain(
    X: np.ndarray,
    outcomes: tuple[np.ndarray, np.ndarray],
    groups: np.ndarray,
    cfg: TrainConfig,
    weight: np.ndarray | None = None,
) -> StackedGain:
    """Rows, (strong right, weak right) targets and each row's source group -> the fitted
    head: cross-fitted logits train the trees, regressions refitted on every row serve."""
    n_emb = X.shape[1] - len(FEATURE_NAMES)
    targets = [np.asarray(t, np.float64) for t in outcomes]
    folds = cross_fit_groups(groups, cfg.seed)
    z = np.zeros((len(X), 2), np.float32)
    for k in np.unique(folds):
        out = folds == k
        w = None if weight is None else weight[~out]
        lin = fit_linear(X[~out], [t[~out] for t in targets], cfg.strong_linear_c, n_emb, w)
        z[out] = lin(X[out]).astype(np.float32)
    linear = fit_linear(X, targets, cfg.strong_linear_c, n_emb, weight)
    trees = HistGradientBoostingRegressor(
        max_iter=cfg.strong_stack_rounds,
        max_depth=cfg.strong_stack_depth,
        learning_rate=cfg.strong_stack_learning_rate,
        min_samples_leaf=min(cfg.strong_stack_min_samples_leaf, max(1, len(X) // 20)),
        early_stopping=False,
        random_state=cfg.seed,
    )
    with threadpool_limits(cfg.train_threads, user_api="openmp"):
        trees.fit(tree_inputs(z, X), targets[0] - targets[1], sample_weight=weight)
    return StackedGain(linear, trees)
