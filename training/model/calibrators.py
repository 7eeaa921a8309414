"""Raw head scores + calibration labels -> calibrators: a temperature for the intent
softmax, Platt's sigmoid for the strong-win score (both fitted by minimising the NLL on the
calibration split; the exported graph applies them with the same formulas), and the
temperature of the intent blend with the heuristic (``router_service.intent_blend``, applied
after the graph by the serving scorer)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from scipy.special import expit, log_softmax, softmax

from router_service.intent_blend import IntentBlend


@dataclass
class TemperatureScaler:
    """softmax(z / T), T fitted by minimising the calibration NLL."""

    temperature: float = 1.0

    def fit(self, logits: np.ndarray, labels: np.ndarray) -> TemperatureScaler:
        y = np.asarray(labels, np.int64)

        def nll(log_t: float) -> float:
            lp = log_softmax(logits / np.exp(log_t), axis=1)
            return float(-lp[np.arange(len(y)), y].mean())

        if len(y):
            res = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
            self.temperature = float(np.exp(res.x))
        return self

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(logits, np.float64) / self.temperature, axis=1)


@dataclass
class PlattScaler:
    """sigmoid(a * z + b), (a, b) fitted by minimising the calibration NLL."""

    a: float = 1.0
    b: float = 0.0

    def fit(self, z: np.ndarray, labels: np.ndarray) -> PlattScaler:
        y = np.asarray(labels, np.float64)
        z = np.asarray(z, np.float64)
        if len(y) == 0 or y.min() == y.max():
            return self

        def nll(params: np.ndarray) -> tuple[float, np.ndarray]:
            a, b = params
            s = a * z + b
            # log(1 + e^s) - y*s, and its gradient
            loss = np.logaddexp(0.0, s) - y * s
            g = expit(s) - y
            return float(loss.mean()), np.array([(g * z).mean(), g.mean()])

        res = minimize(nll, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        self.a, self.b = float(res.x[0]), float(res.x[1])
        return self

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return expit(self.a * np.asarray(z, np.float64) + self.b)


def fit_blend(
    learned: np.ndarray,
    texts: Sequence[str],
    non_ascii: np.ndarray,
    labels: np.ndarray,
    weight: float,
    non_english_weight: float,
) -> IntentBlend:
    """Calibrated learned probabilities, scored texts and non-ASCII shares of the calibration
    split + intent labels -> the ``IntentBlend`` at these weights, its temperature fitted by
    minimising the NLL of the blended softmax."""
    blend = IntentBlend(weight, non_english_weight)
    logits = blend.logits(learned, blend.heuristic(texts), non_ascii)
    scaler = TemperatureScaler().fit(logits, labels)
    return dataclasses.replace(blend, temperature=scaler.temperature)
