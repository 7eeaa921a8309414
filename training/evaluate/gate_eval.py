"""Config + models -> the metrics the promotion gate compares, on one fixed held-out set.

``load_heldout``: the held-out set is the test split of the *base* data only (handwritten
prompts, ShareGPT labels, MMLU/GSM8K outcomes; no feedback, no logs). Feedback can neither
relabel nor drop a held-out row (``training.data.corpus`` merges duplicate prompts and ranks
feedback above the benchmarks), so the candidate and the champion are measured on the same
rows whatever the feedback says, and ``fingerprint`` proves it. The feedback rows get their
own corpus (same hash split) for an informational AUC.

``gate_metrics``: intent accuracy (ShareGPT test split), APGR (mean over the benchmark
test splits) and, informational, the AUC of ``strong_win_rate`` against the held-out
feedback labels. ``paired_latency``: decision latency of several models on the same
held-out prompts, interleaved. Both run the same code on the same rows for the candidate
and the champion, so the gate compares like with like."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training.config import TrainConfig

if TYPE_CHECKING:  # pandas is imported only when the gate runs
    from training.data.corpus import Corpus

# Columns of a held-out row that the gate's metrics read (besides the prompt, in ``key``).
HELDOUT_COLUMNS = (
    "key",
    "intent",
    "intent_source",
    "strong_win",
    "win_source",
    "weak_correct",
    "strong_correct",
)


@dataclass(frozen=True)
class HeldOut:
    """The gate's evaluation rows: ``base`` (test split read), ``feedback`` (or None)."""

    base: Corpus  # base data only: the fixed held-out set
    feedback: Corpus | None  # the feedback files' rows alone, hash-split like the rest
    fingerprint: str  # sha256 of the base test rows (``heldout_fingerprint``)

    def as_dict(self) -> dict[str, Any]:
        test = self.base.mask("test")
        fb = 0 if self.feedback is None else int(self.feedback.mask("test").sum())
        return {"fingerprint": self.fingerprint, "rows": int(test.sum()), "feedback_rows": fb}


def base_config(cfg: TrainConfig) -> TrainConfig:
    """A training config -> the same config on the base data (no feedback, no logs)."""
    return dataclasses.replace(
        cfg, feedback_globs=(), request_log_globs=(), log_intents_as_labels=False
    )


def heldout_fingerprint(corpus: Corpus) -> str:
    """A corpus -> sha256 of its test rows (prompt key + every label the gate reads)."""
    test = corpus.frame[corpus.mask("test")]
    h = hashlib.sha256()
    for rec in test.sort_values("key")[list(HELDOUT_COLUMNS)].itertuples(index=False):
        h.update(repr(tuple(rec)).encode("utf-8"))
    return h.hexdigest()


def feedback_corpus(cfg: TrainConfig) -> Corpus | None:
    """The config's feedback files alone -> a corpus (None when they hold no labels)."""
    from training.config import REPO_ROOT
    from training.data import sources
    from training.data.corpus import build_corpus

    files = sources.expand(cfg.feedback_globs, REPO_ROOT)
    cache = cfg.path(cfg.cache_dir) / "hf_datasets"
    rows = sources.load_feedback(files, cfg.judge_score_bar, cache)
    return build_corpus(cfg, rows) if rows else None


def load_heldout(cfg: TrainConfig) -> HeldOut:
    """A training config -> the gate's fixed held-out set (see the module docstring)."""
    from training.data.corpus import load_corpus

    base = load_corpus(base_config(cfg))
    return HeldOut(base, feedback_corpus(cfg), heldout_fingerprint(base))


def quality_metrics(corpus: Corpus, scorer: Any) -> dict[str, float]:
    """One model on the corpus's test split -> ``intent_accuracy`` (ShareGPT rows),
    ``apgr_<benchmark>`` and their mean ``apgr``."""
    import numpy as np

    from router_service.intents import INTENTS
    from training.data.corpus import BENCHMARKS
    from training.evaluate import metrics

    frame = corpus.frame
    out: dict[str, float] = {}
    idx = np.flatnonzero(corpus.intent_mask("test", "sharegpt"))
    if len(idx):
        probs, _, _ = scorer.predict_batch(list(frame["messages"].iloc[idx]))
        pred = np.asarray(INTENTS)[probs.argmax(axis=1)]
        out["intent_accuracy"] = float(np.mean(pred == frame["intent"].iloc[idx].to_numpy()))
    apgrs = []
    for bench in BENCHMARKS:
        idx = np.flatnonzero(corpus.win_mask("test", [bench]))
        if len(idx) < 20:
            continue
        _, win, _ = scorer.predict_batch(list(frame["messages"].iloc[idx]))
        weak = frame["weak_correct"].to_numpy(np.float64)[idx]
        strong = frame["strong_correct"].to_numpy(np.float64)[idx]
        value = metrics.apgr(win.astype(np.float64), weak, strong)
        if np.isfinite(value):
            out[f"apgr_{bench}"] = float(value)
            apgrs.append(float(value))
    if apgrs:
        out["apgr"] = float(np.mean(apgrs))
    return out


def feedback_auc(corpus: Corpus | None, scorer: Any) -> dict[str, float]:
    """Feedback corpus + model -> ``feedback_auc`` of ``strong_win_rate`` against the test
    split's feedback labels and ``feedback_n`` (empty below 10 rows or with one class)."""
    import numpy as np

    if corpus is None:
        return {}
    idx = np.flatnonzero(corpus.win_mask("test", ["feedback"]))
    labels = corpus.frame["strong_win"].to_numpy(np.float64)[idx]
    if len(idx) < 10 or not 0 < labels.sum() < len(labels):
        return {}
    from sklearn.metrics import roc_auc_score

    _, win, _ = scorer.predict_batch(list(corpus.frame["messages"].iloc[idx]))
    return {"feedback_auc": float(roc_auc_score(labels, win)), "feedback_n": float(len(idx))}


def gate_metrics(heldout: HeldOut, scorer: Any) -> dict[str, float]:
    """One model on the held-out set -> the quality metrics the gate reads (plus the
    informational feedback AUC). Latency: ``paired_latency``."""
    return {**quality_metrics(heldout.base, scorer), **feedback_auc(heldout.feedback, scorer)}


def paired_latency(
    corpus: Corpus,
    scorers: dict[str, Any],
    n: int,
    seed: int,
    *,
    rounds: int = 3,
    warmup: int = 30,
) -> dict[str, dict[str, float]]:
    """Decision latency (messages -> tier, µs) of several scorers on the same held-out
    prompts, interleaved prompt by prompt so machine noise hits them alike; p50/p99 are
    the medians over ``rounds`` rounds (one noisy burst does not decide a promotion)."""
    import gc
    import random

    import numpy as np

    from router_service.routing import RoutingPolicy, decide

    test = list(np.flatnonzero(corpus.mask("test")))
    if not test:
        return {}
    rng = random.Random(seed)
    policy = RoutingPolicy()
    per_round: dict[str, list[tuple[float, float]]] = {name: [] for name in scorers}
    for _ in range(rounds):
        msgs = [
            corpus.frame["messages"].iloc[test[rng.randrange(len(test))]] for _ in range(n + warmup)
        ]
        times: dict[str, list[float]] = {name: [] for name in scorers}
        gc.collect()
        for k, m in enumerate(msgs):
            for name, scorer in scorers.items():
                us = decide(scorer, policy, m).decision_us
                if k >= warmup:
                    times[name].append(us)
        for name, t in times.items():
            per_round[name].append((float(np.percentile(t, 50)), float(np.percentile(t, 99))))
    return {
        name: {
            "latency_p50_us": float(np.median([r[0] for r in rs])),
            "latency_p99_us": float(np.median([r[1] for r in rs])),
            "latency_n": float(n * rounds),
        }
        for name, rs in per_round.items()
    }
