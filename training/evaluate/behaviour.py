"""Strong-win scores of real chat prompts + their labelled intents -> the share of each intent
the strong tier would get at the cut that sends a given share of those prompts strong.

Why: no fold of the OOD table holds small talk. The correctness sources are exam questions
and the preference sources are open instructions a judge compared, so a strong-win head can
rank every held-out benchmark well and still send "hi" to the strong tier. That is what
AlpacaEval's verdicts teach: its judge prefers the strong model's long, friendly answer to a
short open prompt. ``stack+alpaca-trees`` at aw=0.15 passes every APGR rule, yet its fold
models send 37% of ShareGPT chitchat and 17% of its reasoning prompts strong (the plain
stack: 7% and 33%; every AlpacaEval-trained candidate of the default config: 22-52%
chitchat).

What: the labelled ShareGPT prompts (``probe_rows``) carry no strong-win label, so every
strong-win fold model of ``training.evaluate.ood`` scores them out of sample. Each fold
model's scores give one ``strong_share_by_intent``; ``mean_shares`` averages the folds and
``cheap_share`` is the guard ``training.evaluate.selection.select_strong`` applies: the
share of the cheap intents (``TrainConfig.cheap_intents``) sent strong must stay at most
``TrainConfig.cheap_max_strong_share``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from training.data.corpus import Corpus

MIN_PER_INTENT = 20  # fewer labelled prompts of an intent: no share reported for it


def probe_rows(corpus: Corpus) -> np.ndarray:
    """-> row indices of the labelled ShareGPT prompts (every split: none has a strong-win
    label, so no fold trains on them)."""
    f = corpus.frame
    return np.flatnonzero((f["intent_source"] == "sharegpt").to_numpy() & f["intent"].notna())


def strong_share_by_intent(
    scores: np.ndarray, intents: np.ndarray, share: float, cheap: Sequence[str]
) -> dict[str, float]:
    """Scores and intents of the probe prompts -> per intent (with at least
    ``MIN_PER_INTENT`` prompts), the share at or above the cut that sends ``share`` of all
    of them strong; ``"cheap"``: the same share over every prompt of a ``cheap`` intent."""
    scores = np.asarray(scores, np.float64)
    intents = np.asarray(intents, object)
    if not len(scores):
        return {}
    strong = scores >= np.quantile(scores, 1.0 - share)
    out = {
        str(it): float(np.mean(strong[intents == it]))
        for it in sorted(set(intents.tolist()))
        if np.sum(intents == it) >= MIN_PER_INTENT
    }
    is_cheap = np.isin(intents, list(cheap))
    if is_cheap.any():
        out["cheap"] = float(np.mean(strong[is_cheap]))
    return out


def mean_shares(per_fold: Sequence[dict[str, float]]) -> dict[str, float]:
    """One ``strong_share_by_intent`` per fold model -> the mean share per key."""
    keys = dict.fromkeys(k for fold in per_fold for k in fold)
    return {k: float(np.mean([f[k] for f in per_fold if k in f])) for k in keys}


def cheap_share(summary: dict[str, float]) -> float | None:
    """A scorer's summary -> its mean cheap-intent strong share, or None when not measured."""
    value = summary.get("cheap_strong_share")
    return None if value is None else float(value)
