"""(learned intent probabilities, scored text, non-ASCII share) -> intent probabilities
blended with the heuristic's and re-calibrated.

A product of experts: ``softmax((log p_learned + w * log p_heuristic) / T)``. The learned
head reads a static English WordPiece table; the heuristic reads keywords and structure
(code fences, stack traces, formulas) in any script. Out of distribution they err on
different prompts, so the blend beats both (``training.evaluate.ood``: leave-one-source-out
intent macro-F1 for every weight in the config's candidates). Text whose non-ASCII share is
above ``non_ascii_threshold`` (mostly WordPiece ``[UNK]`` for the table) gets its own weight,
``non_english_weight``. ``T`` re-calibrates the blend on the calibration split.

The heuristic contributes its keyword evidence only (``HeuristicScorer.intent_probs(text,
structure=False)``, computed by the faster ``router_service.intent_keywords``: the learned
head already sees code, stack traces and formulas, and counting them twice hurts) read on a
short view of the scored text, its first ``head_chars`` and last ``tail_chars`` characters:
the instruction words sit there, and the view bounds the cost whatever the prompt's length
(``benchmarks/bench_decision_latency.py`` times it as the "intent blend" stage). Chosen
out of distribution (weights 0.5 / 4, mean / worst leave-one-source-out intent macro-F1
over the six intent folds): keywords on the 200 + 80 view 0.495 / 0.351; with the
structural evidence 0.488 / 0.321; with it on the whole 1000 + 300 scored text
0.487 / 0.321; keywords on 120 + 60 0.492 / 0.350.

The blend is part of the model: the manifest's ``intent_blend`` carries it, with the
fingerprint of the keyword rules it was fitted against (a router with other rules refuses the
model rather than serve a blend nobody measured), and the serving scorer
(``router_service.learned``) and the training reference (``training.model.parity``) both
apply this code. numpy only."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from router_service.features import FEATURE_NAMES, budget_text
from router_service.heuristic import intent_rules_fingerprint
from router_service.intent_keywords import keyword_probs
from router_service.intents import INTENTS

NON_ASCII_THRESHOLD = 0.1  # the same cut as the OOD table's "sharegpt_non_english" bucket
NON_ASCII_FEATURE = FEATURE_NAMES.index("non_ascii_ratio")  # the feature column it reads
VIEW_HEAD_CHARS, VIEW_TAIL_CHARS = 200, 80  # the heuristic's view of the scored text
# Floors before the log. The heuristic's prior keeps its probabilities above ~0.005, so its
# floor only guards a malformed input against log(0).
FLOOR = 1e-4
_TINY = sys.float_info.min
_LOG_FLOOR, _LOG_TINY = math.log(FLOOR), math.log(_TINY)


@dataclass(frozen=True)
class IntentBlend:
    heuristic_weight: float
    non_english_weight: float
    non_ascii_threshold: float = NON_ASCII_THRESHOLD
    temperature: float = 1.0
    head_chars: int = VIEW_HEAD_CHARS
    tail_chars: int = VIEW_TAIL_CHARS
    # The keyword rules the weights were fitted against (``intent_rules_fingerprint``).
    rules: str = field(default_factory=intent_rules_fingerprint)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name == "rules":
                continue
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value < 0:
                raise ValueError(f"intent_blend.{name} must be a finite number >= 0, got {value!r}")
        if self.temperature <= 0:
            raise ValueError(f"intent_blend.temperature must be > 0, got {self.temperature!r}")
        if not (isinstance(self.head_chars, int) and isinstance(self.tail_chars, int)):
            raise ValueError("intent_blend.head_chars and tail_chars must be integers")

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
            blend = cls(**{k: entry[k] for k in known if k in entry})
        except TypeError as exc:
            raise ValueError(f"intent_blend: {exc}") from None
        here = intent_rules_fingerprint()
        if entry.get("rules") != here:
            raise ValueError(
                f"intent_blend.rules is {entry.get('rules')!r}, this router's heuristic keyword "
                f"rules are {here!r}: the model was fitted against other rules, retrain it"
            )
        return blend

    def to_manifest(self) -> dict[str, float | str]:
        return asdict(self)

    # --- the heuristic's side ---------------------------------------------------------------

    def view(self, text: str) -> str:
        """Scored text -> the part the heuristic reads."""
        return budget_text(text, self.head_chars, self.tail_chars)

    def heuristic(self, texts: Sequence[str]) -> np.ndarray:
        """Scored texts -> the heuristic's intent probabilities on this view [N, K]."""
        return view_probs(texts, self.head_chars, self.tail_chars)

    # --- the blend --------------------------------------------------------------------------

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
        logits before the temperature (their argmax is the blended intent)."""
        log_l = np.log(np.maximum(np.asarray(learned, np.float64), _TINY))
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

    def blend_texts(
        self, learned: np.ndarray, texts: Sequence[str], non_ascii: np.ndarray
    ) -> np.ndarray:
        """[N, K] learned probabilities of these scored texts -> the served ones."""
        return self.apply(learned, self.heuristic(texts), non_ascii)

    def heuristic_one(self, text: str) -> list[float]:
        """One scored text -> the heuristic's intent probabilities on this view."""
        return keyword_probs(budget_text(text, self.head_chars, self.tail_chars))

    def blend_one(
        self, learned: Sequence[float], heuristic: Sequence[float], non_ascii: float
    ) -> list[float]:
        """``apply`` for one request, in plain Python: on 14 values numpy's per-call
        overhead would cost more than the arithmetic."""
        w = (
            self.non_english_weight
            if non_ascii > self.non_ascii_threshold
            else self.heuristic_weight
        )
        inv_t = 1.0 / self.temperature
        wt, log = w * inv_t, math.log
        z = [
            (log(p) if p > _TINY else _LOG_TINY) * inv_t
            + (log(h) if h > FLOOR else _LOG_FLOOR) * wt
            for p, h in zip(learned, heuristic, strict=True)
        ]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        total = sum(e)
        return [v / total for v in e]


def view_probs(
    texts: Sequence[str], head_chars: int = VIEW_HEAD_CHARS, tail_chars: int = VIEW_TAIL_CHARS
) -> np.ndarray:
    """Scored texts -> the heuristic's intent probabilities on their view [N, K]
    (``INTENTS`` order)."""
    rows = [keyword_probs(budget_text(t, head_chars, tail_chars)) for t in texts]
    return np.array(rows, np.float64).reshape(len(texts), len(INTENTS))
