"""Predictions + labels -> routing, calibration and intent metrics (pure numpy).

Routing metrics follow RouteLLM. Prompts are sorted by the router's score, highest first
(ties broken by original position, so results are deterministic), and the top share x
goes to the strong model:

* mixed accuracy(x): strong-model correctness for the routed prompts, weak for the rest;
  between whole prompts it is interpolated linearly (a router may send a prompt to the
  strong model with a probability), which makes a random router's expected PGR exactly x;
* PGR(x) = (mixed(x) - weak) / (strong - weak): performance gap recovered;
* APGR = area under PGR over x in [0, 1] (trapezoid on the ``n_points`` grid); a random
  router has APGR 0.5 in expectation;
* CPT(p) = smallest x with PGR(x) >= p, the share of strong calls needed for p.

When the two models are equally accurate PGR is undefined and these return NaN.

Calibration: ``ece`` and ``reliability_curve`` with equal-width bins, for binary
probabilities of the positive class (1-D) or multiclass probability rows (2-D, top label).
``intent_report``: accuracy, macro F1, per-class precision/recall/F1 and the confusion
matrix, without scikit-learn."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def _routing_inputs(
    scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    w = np.asarray(weak_correct, dtype=np.float64).ravel()
    g = np.asarray(strong_correct, dtype=np.float64).ravel()
    if not (len(s) == len(w) == len(g)):
        raise ValueError(
            f"scores, weak_correct and strong_correct differ in length ({len(s)}, {len(w)}, "
            f"{len(g)})"
        )
    if len(s) == 0:
        raise ValueError("no prompts to evaluate")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s, w, g


def _knots(
    scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike
) -> tuple[FloatArray, float, float]:
    """-> (mixed accuracy after routing the top k prompts, k = 0..n; weak acc; strong acc)."""
    s, w, g = _routing_inputs(scores, weak_correct, strong_correct)
    order = np.argsort(-s, kind="stable")  # descending score, ties by original position
    gain = (g - w)[order]
    n = len(s)
    mixed = (w.sum() + np.concatenate(([0.0], np.cumsum(gain)))) / n
    return mixed, float(w.mean()), float(g.mean())


def _pgr(mixed: FloatArray, weak: float, strong: float) -> FloatArray:
    gap = strong - weak
    if abs(gap) < 1e-12:
        return np.full_like(mixed, np.nan)
    return (mixed - weak) / gap


def pgr_curve(
    scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike, n_points: int = 101
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """-> (x: strong share on a grid over [0, 1], mixed accuracy at x, PGR at x)."""
    if n_points < 2:
        raise ValueError("n_points must be at least 2")
    mixed_k, weak, strong = _knots(scores, weak_correct, strong_correct)
    n = len(mixed_k) - 1
    x = np.linspace(0.0, 1.0, n_points)
    mixed = np.interp(x * n, np.arange(n + 1, dtype=np.float64), mixed_k)
    return x, mixed, _pgr(mixed, weak, strong)


def _trapezoid(y: FloatArray, x: FloatArray) -> float:
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


def apgr(
    scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike, n_points: int = 101
) -> float:
    """Area under the PGR curve over x in [0, 1] (trapezoid rule); 0.5 for a random router."""
    x, _, pgr = pgr_curve(scores, weak_correct, strong_correct, n_points)
    return _trapezoid(pgr, x)


def cpt(
    scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike, pgr_target: float
) -> float:
    """Smallest strong share x with PGR(x) >= ``pgr_target`` (exact on the interpolated
    curve); NaN if the target is never reached or PGR is undefined."""
    mixed_k, weak, strong = _knots(scores, weak_correct, strong_correct)
    pgr = _pgr(mixed_k, weak, strong)
    if np.isnan(pgr).any():
        return float("nan")
    n = len(pgr) - 1
    reached = np.flatnonzero(pgr >= pgr_target - 1e-12)
    if len(reached) == 0:
        return float("nan")
    k = int(reached[0])
    if k == 0:
        return 0.0
    lo, hi = pgr[k - 1], pgr[k]
    frac = 1.0 if hi == lo else (pgr_target - lo) / (hi - lo)
    return float((k - 1 + min(max(frac, 0.0), 1.0)) / n)


def share_for_quality(
    scores: ArrayLike, weak_correct: ArrayLike, strong_correct: ArrayLike, fraction: float
) -> float:
    """Smallest strong share x at which the mix reaches ``fraction`` of the strong-only
    accuracy (RouteLLM's "95% of GPT-4's performance" framing) -> x in [0, 1]; NaN if the
    weak/strong gap is empty. 0 when the weak model alone already gets there."""
    _, weak, strong = _knots(scores, weak_correct, strong_correct)
    if abs(strong - weak) < 1e-12:
        return float("nan")
    target = (fraction * strong - weak) / (strong - weak)
    return 0.0 if target <= 0 else cpt(scores, weak_correct, strong_correct, target)


def random_apgr(
    weak_correct: ArrayLike,
    strong_correct: ArrayLike,
    n_trials: int = 200,
    seed: int = 0,
    n_points: int = 101,
) -> tuple[float, float]:
    """APGR of random routers on this data -> (mean, standard deviation) over ``n_trials``
    random orders. The expectation is exactly 0.5; the spread shows how far a router's
    APGR must be from 0.5 to mean anything on a sample of this size."""
    w = np.asarray(weak_correct, dtype=np.float64).ravel()
    g = np.asarray(strong_correct, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    values = np.array([apgr(rng.random(len(w)), w, g, n_points) for _ in range(n_trials)])
    return float(values.mean()), float(values.std(ddof=1) if n_trials > 1 else 0.0)


def apgr_difference_draws(
    scores_a: ArrayLike,
    scores_b: ArrayLike,
    weak_correct: ArrayLike,
    strong_correct: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
) -> FloatArray:
    """Two routers' scores on the same prompts -> ``n_boot`` draws of APGR(a) - APGR(b),
    each on a paired bootstrap resample of the prompts: how far apart the two rankings are
    beyond what the sample's size alone would explain (``percentile_interval``)."""
    a, b = (np.asarray(s, dtype=np.float64).ravel() for s in (scores_a, scores_b))
    w = np.asarray(weak_correct, dtype=np.float64).ravel()
    g = np.asarray(strong_correct, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(w), len(w))
        diffs[i] = apgr(a[idx], w[idx], g[idx]) - apgr(b[idx], w[idx], g[idx])
    return diffs


def percentile_interval(draws: ArrayLike, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap draws -> the central ``level`` percentile interval (NaN draws ignored)."""
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.nanpercentile(np.asarray(draws, dtype=np.float64), [tail, 100.0 - tail])
    return float(lo), float(hi)


def _confidence_and_hits(probs: ArrayLike, labels: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Binary (1-D P(positive), labels 0/1) or multiclass (2-D rows, integer labels)
    -> (confidence per example, outcome per example) for reliability binning."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).ravel()
    if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1):
        p = p.ravel()
        if len(p) != len(y):
            raise ValueError(f"probs and labels differ in length ({len(p)}, {len(y)})")
        return p, y.astype(np.float64)
    if p.ndim != 2:
        raise ValueError("probs must be 1-D (binary) or 2-D (multiclass rows)")
    if len(p) != len(y):
        raise ValueError(f"probs and labels differ in length ({len(p)}, {len(y)})")
    top = p.argmax(axis=1)
    return p.max(axis=1), (top == y.astype(np.int64)).astype(np.float64)


def reliability_curve(
    probs: ArrayLike, labels: ArrayLike, n_bins: int = 10
) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
    """-> (mean confidence, observed frequency, count) per equal-width bin on [0, 1];
    empty bins have NaN confidence and frequency. Binary: frequency of the positive class;
    multiclass: accuracy of the top label."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    conf, hit = _confidence_and_hits(probs, labels)
    bins = np.clip((conf * n_bins).astype(np.int64), 0, n_bins - 1)  # 1.0 in the last bin
    count = np.bincount(bins, minlength=n_bins)
    conf_sum = np.bincount(bins, weights=conf, minlength=n_bins)
    hit_sum = np.bincount(bins, weights=hit, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        bin_conf = np.where(count > 0, conf_sum / count, np.nan)
        bin_acc = np.where(count > 0, hit_sum / count, np.nan)
    return bin_conf, bin_acc, count


def ece(probs: ArrayLike, labels: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error: sum over bins of (share of examples) * |freq - conf|."""
    bin_conf, bin_acc, count = reliability_curve(probs, labels, n_bins)
    total = count.sum()
    if total == 0:
        return float("nan")
    used = count > 0
    return float(np.sum(count[used] / total * np.abs(bin_acc[used] - bin_conf[used])))


def intent_report(
    y_true: Sequence[Hashable] | ArrayLike,
    y_pred: Sequence[Hashable] | ArrayLike,
    labels: Sequence[Hashable],
) -> dict[str, Any]:
    """Intent labels -> {"accuracy", "macro_f1", "per_class": {label: {precision, recall,
    f1, support}}, "confusion": rows = true label, columns = predicted, in ``labels`` order}.

    Macro F1 averages the labels that occur in ``y_true`` or ``y_pred`` (a label absent from
    both says nothing about the classifier); precision or recall with a zero denominator is 0."""
    true: list[Any] = list(y_true)  # type: ignore[arg-type]
    pred: list[Any] = list(y_pred)  # type: ignore[arg-type]
    if len(true) != len(pred):
        raise ValueError(f"y_true and y_pred differ in length ({len(true)}, {len(pred)})")
    index: dict[Any, int] = {label: i for i, label in enumerate(labels)}
    if len(index) != len(labels):
        raise ValueError("labels contain duplicates")
    unknown = sorted({str(v) for v in true + pred if v not in index})
    if unknown:
        raise ValueError(f"labels not in the label list: {unknown}")
    k = len(labels)
    confusion = np.zeros((k, k), dtype=np.int64)
    if true:
        np.add.at(confusion, ([index[t] for t in true], [index[p] for p in pred]), 1)
    tp = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted = confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    present = (support > 0) | (predicted > 0)
    per_class = {
        str(label): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(tp.sum() / len(true)) if true else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
