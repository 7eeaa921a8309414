"""Committed model + corpus -> routing quality and intent accuracy vs every baseline.

The numbers come from ``training.evaluate.report.evaluate_model`` (what ``make eval``
prints), run on the same held-out hash splits, with one extra scorer added: ``oracle``
(scores each prompt by ``strong_correct - weak_correct``, the best possible order). Reported:

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
    corpus: Any  # training.data.corpus.Corpus
    scorer: Any  # router_service.learned.LearnedScorer
    config: Any  # training.config.TrainConfig


def config_for(quick: bool) -> Any:
    from training.config import load_config

    if quick:
        return load_config("tiny", random_repeats=3, latency_prompts=20)
    return load_config("default")


def ood_frames(results: Mapping[str, Any]) -> dict[str, Any]:
    """The OOD table -> DataFrames: strong-win APGR per held-out source (baselines and
    learned in one run, with the bootstrap interval of learned - heuristic), intent per
    held-out source, family means beside the in-distribution means, and the share of each
    ShareGPT intent the strong tier gets at a 20% cut (the selection's behaviour guard)."""
    import pandas as pd

    ood = results["ood"]
    strong = pd.DataFrame(
        [
            {"held-out source": k, "family": r["family"], "n": r["n"], **r["apgr"]}
            for k, r in ood["strong"].items()
        ]
    ).set_index("held-out source")
    strong["learned - heuristic"] = strong["learned"] - strong["heuristic"]
    ci = {k: r.get("vs_heuristic_ci", {}).get("learned") for k, r in ood["strong"].items()}
    if any(ci.values()):  # the 95% paired-bootstrap interval of that difference
        strong["95% CI low"] = [ci[k][0] if ci[k] else np.nan for k in strong.index]
        strong["95% CI high"] = [ci[k][1] if ci[k] else np.nan for k in strong.index]
    intent = pd.DataFrame(
        [
            {
                "held-out source": k,
                "n": r["n"],
                **{
                    f"{who} {m}": r["detail"][who][m]
                    for who in ("heuristic", "learned")
                    for m in ("macro_f1", "accuracy", "balanced_accuracy")
                },
            }
            for k, r in ood["intent"].items()
        ]
    ).set_index("held-out source")
    means = pd.DataFrame(ood["summary"]).T
    behaviour = (results.get("selection") or {}).get("behaviour") or {}
    shipped = f"learned_{(results.get('selection') or {}).get('selected', {}).get('strong')}"
    strong_share = pd.DataFrame(
        {
            name: behaviour[key]
            for name, key in (("heuristic", "heuristic"), ("learned", shipped))
            if key in behaviour
        }
    ).rename(index={"cheap": "(cheap intents)"})
    return {
        "strong_win": strong,
        "intent": intent,
        "family_means": means,
        "strong_share_by_intent": strong_share,
    }


def oracle_scores(corpus: Any) -> np.ndarray:
    """Per row: strong_correct - weak_correct (NaN-free; rows without outcomes get 0)."""
    frame = corpus.frame
    weak = frame["weak_correct"].to_numpy(np.float64)
    strong = frame["strong_correct"].to_numpy(np.float64)
    return np.nan_to_num(strong - weak)


def evaluate(cfg: Any, model_dir: Path) -> Evaluation:
    """The ``learned-router eval`` pipeline (``training.evaluate.report.evaluate_model`` on the
    corpus of ``cfg`` with the static embedding of ``model_dir``) plus the oracle."""
    from router_service.learned import LearnedScorer
    from training.data.corpus import load_corpus
    from training.evaluate import report as ev
    from training.model.embed import embed_cached, static_from_model_dir

    scorer = LearnedScorer.load(model_dir)
    corpus = load_corpus(cfg)
    spec = scorer.manifest["embedder"]
    embedder = static_from_model_dir(
        model_dir, bool(spec["normalize"]), int(spec.get("head_tokens", 0))
    )
    emb = embed_cached(embedder, corpus.frame["text"].tolist(), cfg.path(cfg.cache_dir))
    from training.evaluate.selection import model_context

    cfg, base = model_context(cfg, scorer.manifest)
    report = ev.evaluate_model(corpus, scorer, emb, cfg, None, base)
    report["selection"] = scorer.manifest.get("selection")
    add_oracle(report, corpus)
    return Evaluation(report, corpus, scorer, cfg)


def add_oracle(report: dict[str, Any], corpus: Any) -> None:
    """The oracle on every eval set of the report, on exactly the rows the others used:
    each benchmark's test split and, for leave-one-benchmark-out, every uncontaminated
    prompt of the target benchmark (a block whose row count differs is left alone)."""
    from training.evaluate import report as ev

    frame = corpus.frame
    oracle = oracle_scores(corpus)
    clean = ~frame["contaminated"].to_numpy(bool)
    sets = [(block, corpus.win_mask("test", [b])) for b, block in report["routing"].items()]
    sets += [
        (block, corpus.win_mask(None, [pair.split("->")[1]]) & clean)
        for pair, block in report.get("routing_lobo", {}).items()
    ]
    for block, mask in sets:
        idx = np.flatnonzero(mask)
        if len(idx) != block["n"]:
            continue
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


def results_of(ev: Evaluation, seconds: float | None = None) -> dict[str, Any]:
    """An ``Evaluation`` -> the benchmark's results (report sections + tier shares)."""
    from router_service.heuristic import HeuristicScorer

    report = ev.report
    convs = held_out_conversations(ev.corpus)
    shares = tier_shares({"learned": ev.scorer, "heuristic": HeuristicScorer()}, convs)
    return {
        "model_version": report["model_version"],
        "config": ev.config.name,
        "reference": report["reference"],
        "intent": report["intent"],
        "routing": report["routing"],
        "routing_lobo": report["routing_lobo"],
        "ood": report["ood"],
        "selection": report.get("selection"),
        "latency_in_eval": report["latency"],
        "metrics": report["metrics"],
        "tier_shares_sharegpt_test": {"n": len(convs), **shares},
        "data": {"snapshot": ev.corpus.snapshot, "counts": ev.corpus.stats},
        "seconds": seconds,
    }


def run(quick: bool, model_dir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    ev = evaluate(config_for(quick), model_dir)
    return results_of(ev, round(time.perf_counter() - t0, 1))


def headline(results: Mapping[str, Any]) -> str:
    """A few sentences comparing learned and heuristic, computed from ``results``."""
    lines = []
    share = results["intent"].get("sharegpt_test")
    if share:
        la, ha = share["learned"]["accuracy"], share["heuristic"]["accuracy"]
        lf, hf = share["learned"]["macro_f1"], share["heuristic"]["macro_f1"]
        lines.append(
            f"Intent (ShareGPT test, n={share['n']}): learned accuracy {la:.1%} vs heuristic "
            f"{ha:.1%} ({(la - ha) * 100:+.1f} points); macro-F1 {lf:.3f} vs {hf:.3f}."
        )
    for label, blocks in (("test", results["routing"]), ("LOBO", results["routing_lobo"])):
        for name, block in blocks.items():
            s = block["scorers"]
            lead = s["learned"]["apgr"] - s["heuristic"]["apgr"]
            lines.append(
                f"APGR {name} ({label}, n={block['n']}): learned {s['learned']['apgr']:.3f}, "
                f"heuristic {s['heuristic']['apgr']:.3f} ({lead:+.3f}), kNN "
                f"{s['knn']['apgr']:.3f}, random {s['random']['apgr']:.3f}."
            )
    lines.append(
        f"Reference: RouteLLM's best published MMLU APGR is "
        f"{results['reference']['routellm_mmlu_apgr']:.3f} (their setup)."
    )
    return "\n".join(lines)


def intent_frame(results: Mapping[str, Any]) -> Any:
    """-> DataFrame: accuracy and macro-F1 per test split, heuristic vs learned."""
    import pandas as pd

    rows = [
        {
            "test split": split,
            "n": block["n"],
            "scorer": name,
            "accuracy": block[name]["accuracy"],
            "macro_f1": block[name]["macro_f1"],
        }
        for split, block in results["intent"].items()
        for name in ("heuristic", "learned")
    ]
    return pd.DataFrame(rows).set_index(["test split", "scorer"])


def routing_frame(results: Mapping[str, Any]) -> Any:
    """-> DataFrame: APGR / CPT(50%) / CPT(80%) per eval set and scorer (+ RouteLLM)."""
    import pandas as pd

    rows = []
    sets = {**results["routing"], **{f"{k} (LOBO)": v for k, v in results["routing_lobo"].items()}}
    for label, block in sets.items():
        for name in SCORERS:
            m = block["scorers"].get(name)
            if m is not None:
                rows.append(
                    {
                        "eval set": label,
                        "scorer": name,
                        "n": block["n"],
                        "APGR": m["apgr"],
                        "CPT(50%)": m["cpt50"],
                        "CPT(80%)": m["cpt80"],
                        "share for 95%": m.get("share95"),
                    }
                )
    rows += published_references(results["reference"])
    return pd.DataFrame(rows).set_index(["eval set", "scorer"])


def error_examples(ev: Evaluation, per_intent: int = 2, chars: int = 160) -> Any:
    """ShareGPT test prompts the learned model gets wrong, ``per_intent`` per true intent,
    with the heuristic's answer beside it -> DataFrame."""
    import pandas as pd

    from router_service.heuristic import HeuristicScorer
    from router_service.intents import INTENTS

    corpus = ev.corpus
    idx = np.flatnonzero(corpus.intent_mask("test", "sharegpt"))
    convs = [corpus.frame["messages"].iloc[i] for i in idx]
    probs, _, _ = ev.scorer.predict_batch(convs)
    heur = HeuristicScorer()
    rows = []
    taken: dict[str, int] = {}
    for k, i in enumerate(idx):
        truth = corpus.frame["intent"].iloc[i]
        pred = INTENTS[int(probs[k].argmax())]
        if pred == truth or taken.get(truth, 0) >= per_intent:
            continue
        taken[truth] = taken.get(truth, 0) + 1
        text = " ".join(corpus.frame["text"].iloc[i].split())
        rows.append(
            {
                "true intent": truth,
                "learned": f"{pred} ({probs[k].max():.2f})",
                "heuristic": heur.score(convs[k]).intent,
                "prompt": text[:chars] + ("…" if len(text) > chars else ""),
            }
        )
    return pd.DataFrame(rows).sort_values("true intent").reset_index(drop=True)


def strong_win_reliability(ev: Evaluation, n_bins: int = 10) -> dict[str, dict[str, Any]]:
    """Reliability curves of ``strong_win_rate`` on each benchmark's test split: the learned
    model (calibrated) and the heuristic (complexity / 100, not a probability)."""
    from router_service.heuristic import HeuristicScorer
    from training.data.corpus import BENCHMARKS
    from training.evaluate import metrics

    frame = ev.corpus.frame
    y = frame["strong_win"].to_numpy(np.float64)
    heur = HeuristicScorer()
    out: dict[str, dict[str, Any]] = {}
    for bench in BENCHMARKS:
        idx = np.flatnonzero(ev.corpus.win_mask("test", [bench]))
        if len(idx) < 20:
            continue
        convs = [frame["messages"].iloc[i] for i in idx]
        _, win, _ = ev.scorer.predict_batch(convs)
        h = np.array([heur.score(m).strong_win_rate for m in convs])
        for name, p in (("learned", win), ("heuristic", h)):
            conf, freq, count = metrics.reliability_curve(p, y[idx], n_bins)
            out[f"{bench} {name} (ECE {metrics.ece(p, y[idx], n_bins):.3f})"] = {
                "confidence": [None if np.isnan(v) else float(v) for v in conf],
                "frequency": [None if np.isnan(v) else float(v) for v in freq],
                "count": [int(c) for c in count],
            }
    return out


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
                _pct(m.get("share95")),
            ]
        )
    return rows


def _pct(value: float | None) -> str | None:
    return common.fmt(value * 100 if value is not None else None, 1, "%")


def published_references(reference: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RouteLLM's published figures (the paper's MMLU APGR, the announced strong-call shares
    for 95% of GPT-4's score) -> one reference row per benchmark, table columns as keys."""
    shares = reference.get("routellm_announced_share95", {})
    rows = []
    for bench in ("mmlu", "gsm8k"):
        apgr = reference.get("routellm_mmlu_apgr") if bench == "mmlu" else None
        if bench in shares or apgr is not None:
            rows.append(
                {
                    "eval set": f"{bench} (RouteLLM, published)",
                    "scorer": "best router",
                    "APGR": apgr,
                    "share for 95%": shares.get(bench),
                }
            )
    return rows


def _published_rows(reference: Mapping[str, Any]) -> list[list[Any]]:
    """``published_references`` as rows of the markdown routing table."""
    return [
        [
            r["eval set"],
            r["scorer"],
            "–",
            common.fmt(r["APGR"], 3),
            "–",
            "–",
            "–" if r["share for 95%"] is None else f"≤ {_pct(r['share for 95%'])}",
        ]
        for r in published_references(reference)
    ]


def markdown(results: Mapping[str, Any], png: str | None) -> str:
    intent_rows = []
    for split, block in results["intent"].items():
        for name in ("heuristic", "learned"):
            r = block[name]
            intent_rows.append(
                [
                    split,
                    f"`{name}`",
                    block["n"],
                    common.fmt(r["accuracy"] * 100, 1, "%"),
                    common.fmt(r["macro_f1"], 3),
                ]
            )
    routing_rows: list[list[Any]] = []
    for bench, block in results["routing"].items():
        routing_rows += _routing_rows(block, f"{bench} test")
    for pair, block in results["routing_lobo"].items():
        routing_rows += _routing_rows(block, f"{pair} (LOBO)")
    calib = [
        [
            bench,
            common.fmt(block.get("learned_ece"), 3),
            common.fmt(block["strong_win_rate"], 3),
            common.fmt(block["weak_accuracy"], 3),
            common.fmt(block["strong_accuracy"], 3),
        ]
        for bench, block in results["routing"].items()
    ]
    shares = results["tier_shares_sharegpt_test"]
    share_rows: list[list[str | None]] = [
        [f"`{k}`", *(common.fmt(v[t] * 100, 1, "%") for t in ("local", "primary", "strong"))]
        for k, v in shares.items()
        if isinstance(v, dict)
    ]
    from training.evaluate import ood_markdown

    ood = [
        "**Out of distribution (the headline)**: every learned number below comes from models",
        "that never trained on the source they are scored on (leave one source out,",
        "`training.evaluate.ood`); random, prompt length, heuristic and kNN in the same run.",
        "",
        ood_markdown.render(results["ood"], results.get("selection")),
    ]
    parts = [
        *ood,
        "**In distribution** (hash-split test rows of the sources the model trained on):",
        "",
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
        "share for 95%: share of strong calls for the mix to reach 95% of the strong model's "
        "accuracy; lower is better):",
        "",
        common.md_table(
            ["eval set", "scorer", "n", "APGR", "CPT(50%)", "CPT(80%)", "share for 95%"],
            routing_rows + _published_rows(results["reference"]),
        ),
        "",
        "RouteLLM's figures are reference points, not a like-for-like comparison: the APGR "
        '0.603 is their paper\'s best MMLU router, and the "≤" shares come from their '
        "announcement (95% of GPT-4's score at over 45% / 35% lower cost on MMLU / GSM8K; with "
        "Mixtral ~100x cheaper than GPT-4, cost ≈ share of strong calls). Same GPT-4 / Mixtral "
        "pair as this data, but routers trained on Chatbot Arena preferences and evaluated on "
        "the whole benchmarks.",
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
