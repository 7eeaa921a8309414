"""(held-out corpus, models) -> the metrics the promotion gate compares.

``gate_metrics``: intent accuracy (ShareGPT test split), APGR (mean over the benchmark
test splits) and, informational, the AUC of ``strong_win_rate`` against feedback labels in
the test split. ``paired_latency``: decision latency of several models on the same
held-out prompts, interleaved. Both run the same code on the same rows for the candidate
and the champion, so the gate compares like with like."""

from __future__ import annotations

from typing import Any


def gate_metrics(corpus: Any, scorer: Any, cfg: Any) -> dict[str, float]:
    """One model on the corpus's held-out rows -> the quality metrics the gate reads.

    ``intent_accuracy`` (ShareGPT test split), ``apgr`` (mean over the benchmark test
    splits) and, informational, ``feedback_auc`` of ``strong_win_rate`` against feedback
    labels in the test split. Latency: ``paired_latency``."""
    import numpy as np

    from router_service.intents import INTENTS
    from training import metrics
    from training.data import BENCHMARKS

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
    idx = np.flatnonzero(corpus.win_mask("test", ["feedback"]))
    labels = frame["strong_win"].to_numpy(np.float64)[idx] if len(idx) else np.zeros(0)
    if len(idx) >= 10 and 0 < labels.sum() < len(labels):
        from sklearn.metrics import roc_auc_score

        _, win, _ = scorer.predict_batch(list(frame["messages"].iloc[idx]))
        out["feedback_auc"] = float(roc_auc_score(labels, win))
        out["feedback_n"] = float(len(idx))
    return out


def paired_latency(
    corpus: Any,
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
