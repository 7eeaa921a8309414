"""Committed model + corpus -> routing quality and intent accuracy vs every baseline.

The numbers come from ``training.evaluate.evaluate_model`` (what ``make eval`` prints), run on
the same held-out hash splits, with one extra scorer added: ``oracle`` (scores each prompt
by ``strong_correct - weak_correct``, the best possible order). Reported:

* intent accuracy and macro-F1, learned vs heuristic, on the ShareGPT and handwritten test
  splits;
* APGR, CPT(50%), CPT(80%) for random, heuristic, kNN-on-embeddings, learned and oracle on
  the MMLU and GSM8K test splits and leave-one-benchmark-out (train on one benchmark,
  evaluate on the other), with RouteLLM's published MMLU APGR (0.603) as the reference;
* strong-win calibration (ECE) and the tier shares each scorer produces on real prompts;
* ``quality.png``: quality-vs-cost curves (mixed accuracy vs share sent to strong)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common

NAME = "quality"
SCORERS = ("random", "heuristic", "knn", "learned", "oracle")
BENCHES = ("mmlu", "gsm8k")
LOBO = ("mmlu->gsm8k", "gsm8k->mmlu")


@dataclass
class Evaluation:
    report: dict[str, Any]
    corpus: Any  # training.data.Corpus
    scorer: Any  # router_service.learned.LearnedScorer
    config: Any  # training.config.TrainConfig


def config_for(quick: bool) -> Any:
    from training.config import load_config

    if quick:
        return load_config("tiny", random_repeats=3, latency_prompts=20)
    return load_config("default")


def oracle_scores(corpus: Any) -> np.ndarray:
    """Per row: strong_correct - weak_correct (NaN-free; rows without outcomes get 0)."""
    frame = corpus.frame
    weak = frame["weak_correct"].to_numpy(np.float64)
    strong = frame["strong_correct"].to_numpy(np.float64)
    return np.nan_to_num(strong - weak)


def evaluate(cfg: Any, model_dir: Path) -> Evaluation:
    """The ``learned-router eval`` pipeline (``training.evaluate.evaluate_model`` on the
    corpus of ``cfg`` with the static embedding of ``model_dir``) plus the oracle."""
    from router_service.learned import LearnedScorer
    from training import evaluate as ev
    from training.data import load_corpus
    from training.embed import StaticEmbedding, embed_cached, table_from_model_dir

    scorer = LearnedScorer.load(model_dir)
    corpus = load_corpus(cfg)
    table, tokenizer = table_from_model_dir(model_dir)
    embedder = StaticEmbedding(
        table, tokenizer, bool(scorer.manifest["embedder"]["normalize"]), f"model:{model_dir}"
    )
    emb = embed_cached(embedder, corpus.frame["text"].tolist(), cfg.path(cfg.cache_dir))
    oracle = oracle_scores(corpus)
    report = ev.evaluate_model(corpus, scorer, emb, cfg, extra_routing={"oracle": lambda i: oracle[i]})
    _add_lobo_oracle(report, corpus, oracle)
    return Evaluation(report, corpus, scorer, cfg)


def _add_lobo_oracle(report: dict[str, Any], corpus: Any, oracle: np.ndarray) -> None:
    """The oracle on each leave-one-benchmark-out target set (same rows as the others)."""
    from training import evaluate as ev

    frame = corpus.frame
    clean = ~frame["contaminated"].to_numpy(bool)
    for pair, block in report.get("routing_lobo", {}).items():
        dst = pair.split("->")[1]
        idx = np.flatnonzero(corpus.win_mask(None, [dst]) & clean)
        if len(idx) != block["n"]:
            continue  # a different row set: do not mix
        weak = frame["weak_correct"].to_numpy(np.float64)[idx]
        strong = frame["strong_correct"].to_numpy(np.float64)[idx]
        block["scorers"]["oracle"] = ev.routing_metrics(oracle[idx], weak, strong)


def tier_shares(
    scorers: Mapping[str, Any], conversations: Sequence[Any], policy: Any = None
) -> dict[str, dict[str, float]]:
    """Each scorer through ``routing.decide`` with the default policy -> share per tier."""
    from router_service.decision import TIERS
    from router_service.routing import RoutingPolicy, decide

    policy = policy or RoutingPolicy()
    out: dict[str, dict[str, float]] = {}
    for name, scorer in scorers.items():
        tiers = [decide(scorer, policy, m).tier for m in conversations]
        out[name] = {t: tiers.count(t) / max(len(tiers), 1) for t in TIERS}
    return out


def held_out_conversations(corpus: Any, source: str = "sharegpt") -> list[Any]:
    idx = np.flatnonzero(corpus.intent_mask("test", source))
    return [corpus.frame["messages"].iloc[i] for i in idx]


def run(quick: bool, model_dir: Path) -> dict[str, Any]:
    from router_service.heuristic import HeuristicScorer

    t0 = time.perf_counter()
    cfg = config_for(quick)
    ev = evaluate(cfg, model_dir)
    report = ev.report
    convs = held_out_conversations(ev.corpus)
    shares = tier_shares({"learned": ev.scorer, "heuristic": HeuristicScorer()}, convs)
    return {
        "model_version": report["model_version"],
        "config": cfg.name,
        "reference": report["reference"],
        "intent": report["intent"],
        "routing": report["routing"],
        "routing_lobo": report["routing_lobo"],
        "latency_in_eval": report["latency"],
        "metrics": report["metrics"],
        "tier_shares_sharegpt_test": {"n": len(convs), **shares},
        "data": {"snapshot": ev.corpus.snapshot, "counts": ev.corpus.stats},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _routing_rows(block: Mapping[str, Any], label: str) -> list[list[Any]]:
    rows = []
    for name in SCORERS:
        m = block["scorers"].get(name)
        if m is None:
            continue
        apgr = common.fmt(m["apgr"], 3)
        if name == "random" and m.get("apgr_std") is not None:
            apgr = f"{apgr} ± {m['apgr_std']:.3f}"
        rows.append(
            [
                label,
                f"`{name}`" if name != "learned" else "**`learned`**",
                block["n"],
                apgr,
                common.fmt(m["cpt50"] * 100 if m["cpt50"] is not None else None, 1, "%"),
                common.fmt(m["cpt80"] * 100 if m["cpt80"] is not None else None, 1, "%"),
            ]
        )
    return rows


def markdown(results: Mapping[str, Any], png: str | None) -> str:
    intent_rows = []
    for split, block in results["intent"].items():
        for name in ("heuristic", "learned"):
            r = block[name]
            intent_rows.append(
                [split, f"`{name}`", block["n"], common.fmt(r["accuracy"] * 100, 1, "%"),
                 common.fmt(r["macro_f1"], 3)]
            )
    routing_rows: list[list[Any]] = []
    for bench, block in results["routing"].items():
        routing_rows += _routing_rows(block, f"{bench} test")
    for pair, block in results["routing_lobo"].items():
        routing_rows += _routing_rows(block, f"{pair} (LOBO)")
    ref = results["reference"]["routellm_mmlu_apgr"]
    routing_rows.append(["MMLU (RouteLLM paper)", "best published router", "", f"{ref:.3f}", "", ""])
    calib = [
        [bench, common.fmt(block.get("learned_ece"), 3), common.fmt(block["strong_win_rate"], 3),
         common.fmt(block["weak_accuracy"], 3), common.fmt(block["strong_accuracy"], 3)]
        for bench, block in results["routing"].items()
    ]
    shares = results["tier_shares_sharegpt_test"]
    share_rows = [
        [f"`{k}`"] + [common.fmt(v[t] * 100, 1, "%") for t in ("local", "primary", "strong")]
        for k, v in shares.items()
        if isinstance(v, dict)
    ]
    parts = [
        f"Model `{results['model_version']}`, data snapshot `{results['data']['snapshot']}` "
        f"(config `{results['config']}`), hash-split held-out rows; contaminated benchmark "
        f"prompts excluded from evaluation. Same numbers as `make eval`, plus the oracle.",
        "",
        "**Intent** (14 classes):",
        "",
        common.md_table(["test split", "scorer", "n", "accuracy", "macro-F1"], intent_rows),
        "",
        "**Routing quality** (RouteLLM protocol; APGR: random = 0.5, oracle = best possible; "
        "CPT(x%): share of calls sent to the strong model to recover x% of the quality gap; "
        "lower is better):",
        "",
        common.md_table(["eval set", "scorer", "n", "APGR", "CPT(50%)", "CPT(80%)"], routing_rows),
        "",
        "RouteLLM's 0.603 is on their own MMLU setup (different split, GPT-4 vs Mixtral on all "
        "of MMLU), shown as a reference point, not a like-for-like comparison.",
        "",
        "**Strong-win calibration** of the learned model on the benchmark test splits:",
        "",
        common.md_table(
            ["benchmark", "ECE", "strong-win rate", "weak accuracy", "strong accuracy"], calib
        ),
        "",
        f"**Tier shares** with the default policy on {shares['n']} real ShareGPT test prompts:",
        "",
        common.md_table(["scorer", "local", "primary", "strong"], share_rows),
    ]
    if png:
        parts += ["", f"![quality vs cost]({png})"]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    from router_service.scoring import DEFAULT_MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    ns = parser.parse_args(argv)
    args = common.bench_args(ns)
    results = run(args.quick, ns.model_dir)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    png = args.out_dir / f"{NAME}.png"
    from benchmarks.plots import quality_curves

    quality_curves(results, png)
    doc = common.envelope(NAME, results, params={"config": results["config"]}, quick=args.quick)
    link = common.relative_link(png, args.markdown) if args.markdown else None
    common.publish(NAME, doc, markdown(results, link), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
