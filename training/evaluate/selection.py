"""(corpus, design matrices, config) -> the head kinds to ship, chosen out of distribution,
and the OOD table of the shipped model on its own (final) embedding.

Two passes, each on the representation its heads will read: ``select_intent_head`` scores
the intent candidates on the untuned table (candidate "tuned" tunes a table per fold, on
that fold's training rows only), which decides whether and how the table is tuned;
``select_strong_head`` then scores the strong-win candidates on the design matrix the
shipped model reads (the tuned table when it is tuned: its strong-win folds never see a
strong-win label of the source they are scored on, but AlpacaEval prompts did shape the
table through their intent labels). ``merge_selection`` joins the two halves,
``apply_selection`` turns the winners into config fields; ``shipped_table`` re-scores the
shipped strong-win kind on the final embedding beside the baselines."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.data.corpus import Corpus
from training.evaluate.behaviour import cheap_share
from training.evaluate.candidates import (
    intent_candidate_of,
    parse_candidate,
    parse_intent_candidate,
)
from training.evaluate.ood import ood_table
from training.model.embed import StaticEmbedding


def select_intent_head(
    corpus: Corpus, X: np.ndarray, cfg: TrainConfig, base: StaticEmbedding
) -> dict[str, Any]:
    """Untuned design matrix -> the OOD table of every intent candidate (``selected.intent``)."""
    table = ood_table(corpus, X, cfg, [], cfg.intent_candidates, base)
    return {**table, "selected": {"intent": select_intent(table["summary"], cfg.intent_candidates)}}


def select_strong_head(corpus: Corpus, X: np.ndarray, cfg: TrainConfig) -> dict[str, Any]:
    """The design matrix the shipped heads read -> the OOD table of every strong-win
    candidate (``selected.strong``)."""
    table = ood_table(corpus, X, cfg, cfg.strong_candidates, [])
    chosen = select_strong(table["summary"], cfg.strong_candidates, cfg.cheap_max_strong_share)
    return {**table, "selected": {"strong": chosen}}


def _mean_of(summary: dict[str, dict[str, float]], name: str, families: Sequence[str]) -> float:
    vals = [summary.get(name, {}).get(f) for f in families]
    finite = [v for v in vals if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else -np.inf


def behaves(summary: dict[str, dict[str, float]], candidate: str, max_cheap: float | None) -> bool:
    """Does a strong-win candidate keep the cheap intents (small talk) off the strong tier:
    its fold models' mean cheap-intent strong share (``training.evaluate.behaviour``) at most
    ``max_cheap``? True when not measured or no bound is set."""
    share = cheap_share(summary.get(f"learned_{candidate}", {}))
    return max_cheap is None or share is None or share <= max_cheap


def select_strong(
    summary: dict[str, dict[str, float]],
    candidates: Sequence[str],
    max_cheap_share: float | None = None,
) -> str:
    """The strong-win candidate to ship: among the kinds trained without AlpacaEval, the best
    mean of the correctness and preference family means (first listed on ties). An
    AlpacaEval variant of it (the same kind and options, "+alpaca" or "+alpaca-trees" at any
    weight) replaces it only if it is at least as good on both family means and puts no
    correctness source below the heuristic that the plain kind kept at or above it, so the
    CC BY-NC data is kept only where it costs correctness nothing; among several such
    variants, the best mean. Only candidates that ``behaves`` (small talk stays off the
    strong tier) compete; when none does, all do (the run's table shows it)."""
    fit = [c for c in candidates if behaves(summary, c, max_cheap_share)] or list(candidates)
    plain = [c for c in fit if not parse_candidate(c).alpaca] or fit
    fams = ("correctness", "preference")
    margin = "correctness_vs_heuristic_worst"
    order = list(candidates)

    def score(c: str) -> tuple[float, int]:
        return _mean_of(summary, f"learned_{c}", fams), -order.index(c)

    best = max(plain, key=score)
    head = parse_candidate(best)
    ours = summary.get(f"learned_{best}", {})

    def keeps_up(c: str) -> bool:
        cand, theirs = parse_candidate(c), summary.get(f"learned_{c}", {})
        same = (cand.kind, cand.rows, cand.c) == (head.kind, head.rows, head.c)
        floor = min(0.0, ours.get(margin, 0.0))
        return (
            cand.alpaca
            and same
            and all(theirs.get(f, -np.inf) >= ours.get(f, np.inf) for f in fams)
            and theirs.get(margin, -np.inf) >= floor
        )

    variants = [c for c in fit if c != best and keeps_up(c)]
    return max(variants, key=score) if variants else best


def select_intent(summary: dict[str, dict[str, float]], candidates: Sequence[str]) -> str:
    """The intent candidate with the best mean leave-one-source-out macro-F1."""
    return max(
        candidates,
        key=lambda c: (_mean_of(summary, f"intent_{c}", ("intent",)), -list(candidates).index(c)),
    )


def merge_selection(intent: dict[str, Any], strong: dict[str, Any]) -> dict[str, Any]:
    """The two passes -> one selection, what its readers use (``shipped_table``, the model
    card, the manifest): the intent rows, the strong-win candidates' behaviour, both halves'
    family means, candidates and winners (strong-win and baselines from the strong pass,
    intent from the intent pass)."""
    names = dict.fromkeys([*intent["summary"], *strong["summary"]])
    summary = {n: {**intent["summary"].get(n, {}), **strong["summary"].get(n, {})} for n in names}
    return {
        "intent": intent["intent"],
        "behaviour": strong["behaviour"],
        "summary": summary,
        "selected": {
            "strong": strong["selected"]["strong"],
            "intent": intent["selected"]["intent"],
        },
        "candidates": {
            "strong": strong["candidates"]["strong"],
            "intent": intent["candidates"]["intent"],
        },
    }


def apply_selection(cfg: TrainConfig, selection: dict[str, Any]) -> TrainConfig:
    """Config + selected candidates (either may be None: not chosen yet) -> the config that
    trains them."""
    chosen = selection["selected"]
    if chosen.get("strong"):
        cfg = parse_candidate(chosen["strong"]).config(cfg)
    if chosen.get("intent"):
        cfg = parse_intent_candidate(chosen["intent"]).config(cfg)
    return cfg


def selection_summary(selection: dict[str, Any] | None) -> dict[str, Any] | None:
    """The selection -> what the manifest keeps of it (candidates, family means, winners and
    the strong-win candidates' behaviour on ShareGPT prompts)."""
    if selection is None:
        return None
    keys = ("candidates", "summary", "selected", "behaviour")
    return {k: selection[k] for k in keys if k in selection}


def shipped_spec(cfg: TrainConfig) -> str:
    if not cfg.strong_train_alpaca:
        return cfg.strong_head
    return cfg.strong_head + ("+alpaca-trees" if cfg.strong_alpaca_trees_only else "+alpaca")


def shipped_table(
    corpus: Corpus,
    X: np.ndarray,
    cfg: TrainConfig,
    selection: dict[str, Any] | None,
    base: StaticEmbedding | None = None,
) -> dict[str, Any]:
    """The shipped strong-win kind on the final embedding, every fold, beside the baselines;
    intent rows from the selection (the shipped intent candidate's leave-one-source-out
    numbers) when there is one, else the shipped intent kind on this embedding."""
    # A tuned table saw every intent source: its intent folds re-tune per fold from ``base``.
    shipped = intent_candidate_of(cfg)
    if shipped.kind == "tuned" and base is None:
        shipped = dataclasses.replace(shipped, kind=cfg.intent_head)
    intent_kind = shipped.spec
    kinds = [] if selection else [intent_kind]
    table = ood_table(corpus, X, cfg, [shipped_spec(cfg)], kinds, base, cfg.ood_bootstrap)
    table = _rename_learned(table, shipped_spec(cfg), intent_kind)
    if selection is not None:  # intent: the shipped candidate's rows of the selection
        chosen = selection["selected"]["intent"]
        picked = _rename_learned(
            {"intent": selection["intent"], "summary": selection["summary"]}, "", chosen
        )
        table["intent"] = {
            name: {
                **row,
                "macro_f1": {k: row["macro_f1"][k] for k in ("heuristic", "learned")},
                "detail": {k: row["detail"][k] for k in ("heuristic", "learned")},
            }
            for name, row in picked["intent"].items()
        }
        for key in ("heuristic", "learned"):
            table["summary"].setdefault(key, {}).update(
                {k: v for k, v in picked["summary"].get(key, {}).items() if k.startswith("intent")}
            )
    return table


def _rename_learned(table: dict[str, Any], strong: str, intent: str) -> dict[str, Any]:
    """``learned_<strong kind>`` and ``intent_<intent kind>`` keys -> ``learned``."""

    def fix(obj: Any) -> Any:
        if isinstance(obj, dict):
            out: dict[str, Any] = {}
            for k, v in obj.items():
                if k in (f"learned_{strong}", f"intent_{intent}"):
                    k = "learned"
                v = fix(v)
                if isinstance(out.get(k), dict) and isinstance(v, dict):
                    out[k] = {**out[k], **v}  # strong-win and intent halves of one summary
                else:
                    out[k] = v
            return out
        return obj

    return fix(table)


def model_context(cfg: TrainConfig, manifest: dict[str, Any]) -> tuple[TrainConfig, Any]:
    """A saved model's manifest -> (the config its heads were trained with, the untuned
    embedder when its table was tuned, else None): what ``evaluate_model`` needs to score
    that model out of distribution without leaking the tuning."""
    from training.model.embed import load_static

    selection = manifest.get("selection")
    if selection:
        cfg = apply_selection(cfg, selection)
    tuned = "tuned" in str(manifest.get("embedder", {}).get("source", ""))
    blend = manifest.get("intent_blend") or {}
    cfg = dataclasses.replace(
        cfg,
        tune_embedding=tuned,
        intent_blend_weight=float(blend.get("heuristic_weight", 0.0)),
        intent_blend_non_english=blend.get("non_english_weight"),
    )
    base = load_static(dataclasses.replace(cfg, static_from_model=None)) if tuned else None
    return cfg, base
