"""(corpus, embeddings, config) -> the out-of-distribution table: each scorer on sources
it never trained on, with its in-distribution score beside it.

Folds (``training.evaluate.folds``; leave one source out: a fold's models train on the train
split of every *other* source and are scored on every uncontaminated row of the held-out
one):

* correctness family (strong-win; APGR on RouteLLM's GPT-4 / Mixtral outcomes): the four
  MMLU subject groups (``training.data.mmlu``) and GSM8K;
* preference family (strong-win; APGR on AlpacaEval's judge verdicts against Mixtral): each
  AlpacaEval origin (helpful_base, koala, oasst, selfinstruct, vicuna);
* pooled correctness: every correctness fold's out-of-fold probabilities together, so the
  ranking *across* sources (is a held-out GSM8K prompt ranked above a held-out humanities
  one?) counts too;
* intent (accuracy, macro-F1, balanced accuracy): handwritten, ShareGPT and AlpacaEval
  prompts each held out, and ShareGPT split by language (non-ASCII-script) and length.

Scorers: random, prompt length, the heuristic, kNN on the embedding (strong-win) and one
learned model per candidate (keys ``learned_<spec>`` for strong-win candidates, whose specs
``training.evaluate.candidates`` parses: head kind, data, row weighting, regularisation;
``intent_<spec>`` for intent candidates: head kind and blend weights with the heuristic, each
kind fitted once per fold, temperature-calibrated on the calibration rows of the fold's
training sources and blended at every weight). The in-distribution score (train split -> test
split of the same sources) is reported beside every OOD number, never instead of it. Every
strong-win fold model also scores the labelled ShareGPT prompts (``behaviour``: the strong
share per intent, ``training.evaluate.behaviour``). This module measures;
``training.evaluate.selection`` decides what ships."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from router_service.features import FEATURE_NAMES
from router_service.heuristic import HeuristicScorer
from router_service.intent_blend import NON_ASCII_FEATURE, IntentBlend, view_probs
from router_service.intents import INTENTS
from training.config import TrainConfig
from training.data.corpus import Corpus
from training.evaluate import metrics
from training.evaluate.behaviour import mean_shares, probe_rows, strong_share_by_intent
from training.evaluate.candidates import parse_candidate, parse_intent_candidate
from training.evaluate.folds import (
    CORRECTNESS,
    INTENT_SOURCES,
    PREFERENCE,
    Fold,
    intent_folds,
    strong_folds,
)
from training.model.embed import StaticEmbedding
from training.model.finetune import tune_settings
from training.model.heads import (
    fit_intent_linear,
    fit_intent_stacked,
    fit_strong,
    intent_input,
    intent_labels,
    intent_logits,
    outcome_targets,
    strong_logit,
)

BASELINES = ("random", "length", "heuristic", "knn")
FEATURE_LENGTH = FEATURE_NAMES.index("log_chars_total")


class _Data:
    """Arrays the folds index into, computed once."""

    def __init__(
        self, corpus: Corpus, X: np.ndarray, cfg: TrainConfig, base: StaticEmbedding | None
    ) -> None:
        f = corpus.frame
        self.corpus, self.X, self.cfg, self.base = corpus, X, cfg, base
        self.tune = tune_settings(cfg)
        self.n_emb = X.shape[1] - len(FEATURE_NAMES)
        self.win = f["strong_win"].to_numpy(np.float64)
        self.weak = f["weak_correct"].to_numpy(np.float64)
        self.strong = f["strong_correct"].to_numpy(np.float64)
        self.group = f["win_group"].to_numpy(object)
        self.source = f["win_source"].to_numpy(object)
        self.intents = f["intent"].to_numpy(object)
        self.length = corpus.features[:, FEATURE_LENGTH].astype(np.float64)
        heuristic = HeuristicScorer()
        scores = [heuristic.score(m) for m in f["messages"]]
        self.h_win = np.array([s.strong_win_rate for s in scores])
        self.h_intent = np.array([s.intent for s in scores], object)
        self.h_view = view_probs(list(f["text"]))  # what an intent blend reads
        self.non_ascii = corpus.features[:, NON_ASCII_FEATURE].astype(np.float64)


def _strong_scorer(d: _Data, spec: str) -> Callable[[np.ndarray], Callable[[np.ndarray], Any]]:
    cand = parse_candidate(spec)
    cfg = cand.config(d.cfg)

    def fit(train: np.ndarray) -> Callable[[np.ndarray], Any]:
        if not cand.alpaca:
            train = train[d.source[train] != "alpaca_eval"]
        rows = d.corpus.frame.iloc[train]
        head = fit_strong(
            d.X[train],
            d.win[train],
            cfg,
            d.source[train],
            outcome_targets(rows),
            kind=cand.kind,
            groups=d.group[train],
        )
        return lambda idx: strong_logit(head, d.X[idx])

    return fit


def _intent_scorer(d: _Data, kind: str) -> Callable[[np.ndarray], Callable[[np.ndarray], Any]]:
    """An intent head kind -> fit(train rows) -> (rows -> raw intent logits)."""

    def fit(train: np.ndarray) -> Callable[[np.ndarray], Any]:
        if kind == "tuned":  # the table tuned on this fold's rows only, with its linear head
            from training.model.finetune import tune_table

            if d.base is None:
                raise ValueError('the "tuned" intent candidate needs the untuned embedder')
            texts = d.corpus.frame["text"].to_numpy(object)
            tuned, head = tune_table(d.base, list(texts[train]), list(d.intents[train]), d.tune)
            return lambda idx: head.intent_logits(tuned.embed(list(texts[idx])))
        if kind == "linear":  # on the final (possibly tuned) embedding
            lin = fit_intent_linear(d.X[train], d.intents[train], d.cfg)
            return lambda idx: lin.intent_logits(d.X[idx])
        trees, stack = fit_intent_stacked(d.X[train], d.intents[train], d.cfg)
        return lambda idx: intent_logits(trees, intent_input(d.X[idx], stack))

    return fit


def _intent_predictions(
    d: _Data, specs: Sequence[str], train: np.ndarray, calib: np.ndarray, test: np.ndarray
) -> dict[str, list[str]]:
    """Intent specs -> each one's predicted intents on ``test``: every head kind is fitted
    once on ``train`` and temperature-calibrated on ``calib`` (as ``fit_heads`` does), then
    blended with the heuristic at each spec's weights (``router_service.intent_blend``)."""
    from training.model.calibrators import TemperatureScaler

    cands = [parse_intent_candidate(s) for s in specs]
    probs: dict[str, np.ndarray] = {}
    for kind in dict.fromkeys(c.kind for c in cands):
        logits = _intent_scorer(d, kind)(train)
        temperature = TemperatureScaler()
        if len(calib):
            temperature.fit(logits(calib), intent_labels(d.intents[calib]))
        probs[kind] = temperature(logits(test))
    out = {}
    for spec, cand in zip(specs, cands, strict=True):
        p = probs[cand.kind]
        if cand.blended:
            blend = IntentBlend(cand.h, cand.non_english)
            p = blend.logits(p, d.h_view[test], d.non_ascii[test])
        out[spec] = [INTENTS[i] for i in np.asarray(p).argmax(axis=1)]
    return out


def _apgr(d: _Data, scores: np.ndarray, idx: np.ndarray) -> float:
    return metrics.apgr(scores, d.weak[idx], d.strong[idx])


def _knn(d: _Data, train: np.ndarray, idx: np.ndarray) -> np.ndarray:
    from training.evaluate.report import knn_scores

    emb = d.X[:, : d.n_emb]
    return knn_scores(emb[train], d.win[train], emb[idx], d.cfg.knn_k)


def _strong_row(
    d: _Data, fold: Fold, learned: dict[str, np.ndarray], bootstrap: int
) -> dict[str, Any]:
    idx = fold.test
    rand, _ = metrics.random_apgr(d.weak[idx], d.strong[idx], d.cfg.random_repeats, d.cfg.seed)
    row: dict[str, Any] = {
        "family": fold.family,
        "n": len(idx),
        "apgr": {
            "random": rand,
            "length": _apgr(d, d.length[idx], idx),
            "heuristic": _apgr(d, d.h_win[idx], idx),
            "knn": _apgr(d, _knn(d, fold.train, idx), idx),
            **{f"learned_{k}": _apgr(d, s, idx) for k, s in learned.items()},
        },
    }
    if bootstrap:  # paired bootstrap over the fold's prompts: learned - heuristic
        seed = d.cfg.seed + zlib.crc32(fold.name.encode())  # independent draws per fold
        row["vs_heuristic_draws"] = {
            f"learned_{k}": metrics.apgr_difference_draws(
                s, d.h_win[idx], d.weak[idx], d.strong[idx], bootstrap, seed
            )
            for k, s in learned.items()
        }
        row["vs_heuristic_ci"] = {
            k: metrics.percentile_interval(v) for k, v in row["vs_heuristic_draws"].items()
        }
    return row


def _family_intervals(rows: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """Rows with bootstrap draws -> per family, the 95% interval (``_lo``, ``_hi``) of the mean
    over its folds of learned - heuristic (folds hold disjoint prompts: their draws combine
    independently)."""
    out: dict[str, Any] = {}
    for family in ("correctness", "preference"):
        draws = [
            r["vs_heuristic_draws"][key]
            for r in rows.values()
            if r["family"] == family and key in r.get("vs_heuristic_draws", {})
        ]
        if draws:
            lo, hi = metrics.percentile_interval(np.mean(draws, axis=0))
            out[f"{family}_vs_heuristic_lo"], out[f"{family}_vs_heuristic_hi"] = lo, hi
    return out


def intent_scores(truth: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """-> accuracy, macro-F1 and balanced accuracy (mean recall over the true classes)."""
    rep = metrics.intent_report(list(truth), list(pred), INTENTS)
    t, p = np.asarray(truth, object), np.asarray(pred, object)
    recalls = [float(np.mean(p[t == c] == c)) for c in np.unique(t)]
    return {
        "accuracy": rep["accuracy"],
        "macro_f1": rep["macro_f1"],
        "balanced_accuracy": float(np.mean(recalls)) if recalls else float("nan"),
    }


def _family_means(rows: dict[str, dict[str, Any]], metric: str, key: str) -> dict[str, float]:
    """-> per family: the mean and worst score of ``key`` over the family's folds, and its
    worst margin over the heuristic on the same fold (``FAMILY_vs_heuristic_worst``)."""
    out: dict[str, float] = {}
    for family in ("correctness", "preference", "intent"):
        fam = [r[metric] for r in rows.values() if r["family"] == family and key in r[metric]]
        if fam:
            vals = [m[key] for m in fam]
            out[family] = float(np.mean(vals))
            out[f"{family}_worst"] = float(np.min(vals))
            margins = [m[key] - m["heuristic"] for m in fam if "heuristic" in m]
            if margins:
                out[f"{family}_vs_heuristic_worst"] = float(np.min(margins))
    return out


def ood_table(
    corpus: Corpus,
    X: np.ndarray,
    cfg: TrainConfig,
    strong_kinds: Sequence[str],
    intent_kinds: Sequence[str],
    base_embedder: StaticEmbedding | None = None,
    bootstrap: int = 0,
) -> dict[str, Any]:
    """Every fold, every scorer -> {"strong": {fold: row}, "intent": {fold: row},
    "pooled_correctness": ..., "in_distribution": ..., "behaviour": per-scorer strong share
    per ShareGPT intent (fold mean), "summary": per-scorer family means (and
    ``cheap_strong_share``), "candidates": the specs scored}. ``bootstrap`` > 0: each
    strong-win row also holds the 95% paired-bootstrap interval of learned - heuristic
    (``vs_heuristic_ci``) over that many resamples of its prompts, and each learned summary
    the interval of its family means' margin (``FAMILY_vs_heuristic_lo`` / ``_hi``)."""
    d = _Data(corpus, X, cfg, base_embedder)
    probe = probe_rows(corpus)
    shares: dict[str, list[dict[str, float]]] = {k: [] for k in strong_kinds}
    strong_rows: dict[str, dict[str, Any]] = {}
    pooled = {k: np.zeros(len(corpus.frame)) for k in strong_kinds}
    pooled_idx: list[np.ndarray] = []
    for fold in strong_folds(corpus):
        learned = {}
        for kind in strong_kinds:
            score = _strong_scorer(d, kind)(fold.train)
            learned[kind] = np.asarray(score(fold.test), np.float64)
            shares[kind].append(_shares(d, np.asarray(score(probe), np.float64), probe))
            if fold.family == "correctness":  # the fold's own model, Platt-scaled
                pooled[kind][fold.test] = _calibrated(d, score, fold, learned[kind])
        strong_rows[fold.name] = _strong_row(d, fold, learned, bootstrap)
        if fold.family == "correctness":
            pooled_idx.append(fold.test)
    pooled_row = _pooled(d, pooled, pooled_idx, strong_kinds)

    intent_rows: dict[str, dict[str, Any]] = {}
    for fold in intent_folds(corpus):
        truth = list(d.intents[fold.test])
        row: dict[str, Any] = {"family": "intent", "n": len(fold.test), "macro_f1": {}}
        detail = {"heuristic": intent_scores(truth, list(d.h_intent[fold.test]))}
        calib = fold.calib if fold.calib is not None else np.array([], np.int64)
        preds = _intent_predictions(d, intent_kinds, fold.train, calib, fold.test)
        for spec, pred in preds.items():
            detail[f"intent_{spec}"] = intent_scores(truth, pred)
        row["macro_f1"] = {k: v["macro_f1"] for k, v in detail.items()}
        row["detail"] = detail
        intent_rows[fold.name] = row

    summary = {
        **{
            name: _family_means(strong_rows, "apgr", name)
            for name in (*BASELINES, *(f"learned_{k}" for k in strong_kinds))
        }
    }
    for name in (f"learned_{k}" for k in strong_kinds):
        summary[name].update(_family_intervals(strong_rows, name))
    for row in strong_rows.values():  # the draws served the intervals: keep those only
        row.pop("vs_heuristic_draws", None)
    for name in ("heuristic", *(f"intent_{k}" for k in intent_kinds)):
        summary.setdefault(name, {}).update(_family_means(intent_rows, "macro_f1", name))
    behaviour = {"heuristic": _shares(d, d.h_win[probe], probe)} if strong_kinds else {}
    for kind, per_fold in shares.items():
        behaviour[f"learned_{kind}"] = mean_shares(per_fold)
    for name, row in behaviour.items():
        if "cheap" in row:
            summary[name]["cheap_strong_share"] = row["cheap"]
    in_dist = in_distribution(d, strong_kinds, intent_kinds)
    return {
        "strong": strong_rows,
        "pooled_correctness": pooled_row,
        "intent": intent_rows,
        "in_distribution": in_dist,
        "behaviour": behaviour,
        "summary": summary,
        "candidates": {"strong": list(strong_kinds), "intent": list(intent_kinds)},
    }


def _shares(d: _Data, scores: np.ndarray, probe: np.ndarray) -> dict[str, float]:
    cfg = d.cfg
    return strong_share_by_intent(
        scores, d.intents[probe], cfg.behaviour_strong_share, cfg.cheap_intents
    )


def _calibrated(
    d: _Data, score: Callable[[np.ndarray], Any], fold: Fold, scores: np.ndarray
) -> np.ndarray:
    """A fold model (``score``) and its raw scores -> Platt probabilities fitted on the
    calibration split of its training sources, so different folds can be ranked together."""
    from training.model.calibrators import PlattScaler

    calib = np.flatnonzero(d.corpus.win_mask("calib"))
    calib = calib[d.group[calib] != fold.name]
    raw = score(calib)
    platt = PlattScaler().fit(np.asarray(raw, np.float64), d.win[calib] >= 0.5)
    return platt(scores)


def _pooled(
    d: _Data, pooled: dict[str, np.ndarray], parts: list[np.ndarray], kinds: Sequence[str]
) -> dict[str, Any]:
    if not parts:
        return {"n": 0}
    idx = np.concatenate(parts)
    out = {
        "n": len(idx),
        "apgr": {
            "length": _apgr(d, d.length[idx], idx),
            "heuristic": _apgr(d, d.h_win[idx], idx),
            **{f"learned_{k}": _apgr(d, pooled[k][idx], idx) for k in kinds},
        },
    }
    return out


def in_distribution(
    d: _Data, strong_kinds: Sequence[str], intent_kinds: Sequence[str]
) -> dict[str, Any]:
    """Train split -> test split of the same sources: the number OOD is shown beside."""
    corpus = d.corpus
    train = np.flatnonzero(corpus.win_mask("train"))
    out: dict[str, Any] = {"strong": {}, "intent": {}}
    scorers = {k: _strong_scorer(d, k)(train) for k in strong_kinds}
    for name in (*CORRECTNESS, *PREFERENCE):
        idx = np.flatnonzero(corpus.win_mask("test") & (d.group == name))
        idx = idx[~np.isnan(d.weak[idx])]
        if len(idx) < 20:
            continue
        out["strong"][name] = {
            "n": len(idx),
            "apgr": {
                "heuristic": _apgr(d, d.h_win[idx], idx),
                **{f"learned_{k}": _apgr(d, np.asarray(s(idx)), idx) for k, s in scorers.items()},
            },
        }
    labelled = corpus.frame["intent"].notna().to_numpy()
    tr = np.flatnonzero(labelled & corpus.mask("train"))
    ca = np.flatnonzero(labelled & corpus.mask("calib"))
    src = corpus.frame["intent_source"].to_numpy(object)
    tests = {
        name: idx
        for name in INTENT_SOURCES
        if len(idx := np.flatnonzero(labelled & corpus.mask("test") & (src == name))) >= 20
    }
    every = np.concatenate(list(tests.values())) if tests else np.array([], np.int64)
    preds = _intent_predictions(d, intent_kinds, tr, ca, every) if tests else {}
    at = 0
    for name, idx in tests.items():
        truth = list(d.intents[idx])
        out["intent"][name] = {
            "n": len(idx),
            "macro_f1": {
                "heuristic": intent_scores(truth, list(d.h_intent[idx]))["macro_f1"],
                **{
                    f"intent_{k}": intent_scores(truth, p[at : at + len(idx)])["macro_f1"]
                    for k, p in preds.items()
                },
            },
        }
        at += len(idx)
    return out
