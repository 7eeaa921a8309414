"""(learned intent probabilities, heuristic intent probabilities, non-ASCII share) ->
blended, calibrated intent probabilities.

A product of experts: ``softmax((log p_learned + w * log p_heuristic) / T)``. The learned
head reads a static English WordPiece table; the heuristic reads keywords and structure
(code fences, stack traces, formulas) in any script. Out of distribution they err on
different prompts, so the blend beats both (``training.evaluate.ood``: leave-one-source-out
intent macro-F1 for every weight in the config's candidates). Text whose non-ASCII share is
above ``non_ascii_threshold`` (mostly WordPiece ``[UNK]`` for the table) gets its own weight,
``non_english_weight``. ``T`` re-calibrates the blend on the calibration split.

The blend is part of the model: the manifest's ``intent_blend`` carries it, the serving
scorer (``router_service.learned``) and the training reference (``training.model.parity``)
both apply this code. numpy only."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from router_service.features import FEATURE_NAMES
from router_service.heuristic import HeuristicScorer
from router_service.intents import INTENTS

# Heuristic probabilities are floored before the log: its prior keeps them above ~0.005, so
# the floor only guards a malformed input against log(0).
FLOOR = 1e-4
NON_ASCII_THRESHOLD = 0.1  # the same cut as the OOD table's "sharegpt_non_english" bucket
NON_ASCII_FEATURE = FEATURE_NAMES.index("non_ascii_ratio")  # the feature column it reads


@dataclass(frozen=True)
class IntentBlend:
    heuristic_weight: float
    non_english_weight: float
    non_ascii_threshold: float = NON_ASCII_THRESHOLD
    temperature: float = 1.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"intent_blend.{name} must be a finite number >= 0, got {value!r}")
        if self.temperature <= 0:
            raise ValueError(f"intent_blend.temperature must be > 0, got {self.temperature!r}")

    @classmethod
    def from_manifest(cls, entry: Any) -> IntentBlend | None:
        """The manifest's ``intent_blend`` (absent or null: no blend) -> ``IntentBlend``;
        ``ValueError`` naming the field when it is malformed."""
        if entry is None:
            return None
        if not isinstance(entry, Mapping):
            raise ValueError("intent_blend must be an object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ValueError(f"intent_blend has unknown fields {unknown}")
        try:
            return cls(**{k: entry[k] for k in known if k in entry})
        except TypeError as exc:
            raise ValueError(f"intent_blend: {exc}") from None

    def to_manifest(self) -> dict[str, float]:
        return asdict(self)

    def weights(self, non_ascii: np.ndarray) -> np.ndarray:
        """Non-ASCII shares [N] -> the heuristic's weight per row [N]."""
        return np.where(
            np.asarray(non_ascii) > self.non_ascii_threshold,
            self.non_english_weight,
            self.heuristic_weight,
        )

    def logits(
        self, learned: np.ndarray, heuristic: np.ndarray, non_ascii: np.ndarray
    ) -> np.ndarray:
        """[N, K] learned probs, [N, K] heuristic probs, [N] non-ASCII shares -> the blend's
        logits before the temperature (its argmax is the blended intent)."""
        log_l = np.log(np.maximum(np.asarray(learned, np.float64), np.finfo(np.float64).tiny))
        log_h = np.log(np.maximum(np.asarray(heuristic, np.float64), FLOOR))
        return log_l + self.weights(non_ascii)[:, None] * log_h

    def apply(
        self, learned: np.ndarray, heuristic: np.ndarray, non_ascii: np.ndarray
    ) -> np.ndarray:
        """-> blended, calibrated probabilities [N, K] (rows sum to 1)."""
        z = self.logits(learned, heuristic, non_ascii) / self.temperature
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)


def heuristic_probs(texts: Sequence[str]) -> np.ndarray:
    """Scored texts -> the heuristic's intent probabilities [N, K] (``INTENTS`` order)."""
    scorer = _heuristic()
    return np.array([scorer.intent_probs(t) for t in texts], np.float64).reshape(
        len(texts), len(INTENTS)
    )


@functools.cache
def _heuristic() -> HeuristicScorer:
    return HeuristicScorer()  # stateless: one instance serves every caller
