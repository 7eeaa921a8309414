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
the same (shipped) embedding: correctness-family mean APGR 0.555 -> 0.588, worst source
0.521 -> 0.580 (every correctness source above the heuristic); the preference family
(AlpacaEval, which it does not train on) falls 0.519 -> 0.506 mean, 0.495 -> 0.447 worst.

``trees_only`` rows (candidate "stack+alpaca-trees": the AlpacaEval verdicts) reach the
trees alone, with their gain centred, so a judge's preferences can shape the ranking
without moving the regressions' estimate of correctness."""

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
    trees_only_rows: int = 0  # rows only the trees learned from (judge preferences)
    trees_only_weight: float = 0.0  # and the weight of each

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
    trees_only: np.ndarray | None = None,
    trees_only_weight: float = 1.0,
) -> StackedGain:
    """Rows, (strong right, weak right) targets and each row's source group -> the fitted
    head: cross-fitted logits train the trees, regressions refitted on every row serve.

    ``trees_only`` (bool per row): rows the regressions never see, only the trees, each
    weighing ``trees_only_weight``, their gain centred on the other rows' mean gain. For
    judge preferences (AlpacaEval): the regressions keep estimating correctness, and the
    trees learn from the preferences which prompts gain more *within* a source, not a
    different base rate (a judge's verdicts and a benchmark's grades are on other scales)."""
    n_emb = X.shape[1] - len(FEATURE_NAMES)
    targets = [np.asarray(t, np.float64) for t in outcomes]
    extra = np.zeros(len(X), bool) if trees_only is None else np.asarray(trees_only, bool)
    if extra.all():
        raise ValueError("the stack head needs rows outside trees_only for its regressions")
    main = ~extra
    Xm, tm = X[main], [t[main] for t in targets]
    wm = None if weight is None else weight[main]
    folds = cross_fit_groups(groups[main], cfg.seed)
    z = np.zeros((len(X), 2), np.float32)
    zm = np.zeros((len(Xm), 2), np.float32)
    for k in np.unique(folds):
        out = folds == k
        w = None if wm is None else wm[~out]
        lin = fit_linear(Xm[~out], [t[~out] for t in tm], cfg.strong_linear_c, n_emb, w)
        zm[out] = lin(Xm[out]).astype(np.float32)
    linear = fit_linear(Xm, tm, cfg.strong_linear_c, n_emb, wm)
    z[main] = zm
    gain = targets[0] - targets[1]
    tree_weight = None if weight is None else np.asarray(weight, np.float64).copy()
    if extra.any():  # never seen by the regressions: their logits are already out of sample
        z[extra] = linear(X[extra]).astype(np.float32)
        gain = gain.copy()
        gain[extra] += gain[main].mean() - gain[extra].mean()
        tree_weight = np.ones(len(X)) if tree_weight is None else tree_weight
        tree_weight[extra] *= trees_only_weight
    trees = HistGradientBoostingRegressor(
        max_iter=cfg.strong_stack_rounds,
        max_depth=cfg.strong_stack_depth,
        learning_rate=cfg.strong_stack_learning_rate,
        min_samples_leaf=min(cfg.strong_stack_min_samples_leaf, max(1, len(X) // 20)),
        early_stopping=False,
        random_state=cfg.seed,
    )
    with threadpool_limits(cfg.train_threads, user_api="openmp"):
        trees.fit(tree_inputs(z, X), gain, sample_weight=tree_weight)
    n_extra = int(extra.sum())
    return StackedGain(linear, trees, n_extra, trees_only_weight if n_extra else 0.0)
