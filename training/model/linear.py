"""Design-matrix columns + labels -> linear logits (logistic regression, exported as one Gemm).

``fit_linear`` standardises the chosen columns, fits scikit-learn's ``LogisticRegression``
(soft labels in [0, 1] become two weighted copies of each row) and folds the
standardisation into the weights, so serving computes ``x @ coef.T + intercept`` on the raw
columns. ``LinearLogits`` is that map: the sklearn reference in float64, the graph's Gemm in
float64 too (when trees read its output, both sides then round the same value to float32)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression


@dataclass
class LinearLogits:
    """``X[:, :n_in] @ coef.T + intercept`` -> [N, K] float64 logits."""

    coef: np.ndarray  # [K, n_in] float64
    intercept: np.ndarray  # [K] float64
    n_in: int

    def __call__(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X[:, : self.n_in], np.float32).astype(np.float64)
        return x @ self.coef.T + self.intercept

    @property
    def n_out(self) -> int:
        return int(self.coef.shape[0])


def _soft_rows(
    X: np.ndarray, y: np.ndarray, weight: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows with labels in [0, 1] -> (X twice, labels 1 then 0, weights w*y then w*(1-y))."""
    w = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64)
    y = np.clip(np.asarray(y, np.float64), 0.0, 1.0)
    keep = np.r_[w * y, w * (1.0 - y)] > 0
    Xd = np.concatenate([X, X])[keep]
    yd = np.r_[np.ones(len(y)), np.zeros(len(y))][keep]
    return Xd, yd, np.r_[w * y, w * (1.0 - y)][keep]


def fit_linear(
    X: np.ndarray,
    targets: list[np.ndarray],
    c: float,
    n_in: int,
    weight: np.ndarray | None = None,
    max_iter: int = 3000,
) -> LinearLogits:
    """The first ``n_in`` columns of ``X`` and one binary (or soft) target per output ->
    ``LinearLogits`` with one logit per target, each an L2-regularised logistic regression
    (inverse strength ``c``) on standardised columns."""
    x = np.asarray(X[:, :n_in], np.float32).astype(np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-12] = 1.0
    z = (x - mean) / std
    coefs, intercepts = [], []
    for y in targets:
        y = np.asarray(y, np.float64)
        if np.all((y == 0) | (y == 1)):
            Xd, yd, wd = z, y, np.ones(len(y)) if weight is None else weight
        else:
            Xd, yd, wd = _soft_rows(z, y, weight)
        if len(np.unique(yd)) < 2:  # a constant target (e.g. "strong right" on judge-only
            # rows): a constant logit, clipped so it stays finite
            p = float(np.clip(np.average(yd, weights=wd), 1e-3, 1 - 1e-3))
            coefs.append(np.zeros(n_in))
            intercepts.append(float(np.log(p / (1 - p))))
            continue
        model = LogisticRegression(C=c, max_iter=max_iter).fit(Xd, yd, sample_weight=wd)
        w = model.coef_[0] / std
        coefs.append(w)
        intercepts.append(float(model.intercept_[0]) - float(mean @ w))
    return LinearLogits(np.array(coefs, np.float64), np.array(intercepts, np.float64), n_in)
