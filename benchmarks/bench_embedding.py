"""Embedding choice under the out-of-distribution protocol -> results/embedding.json and a
BENCHMARKS.md table.

The ONNX graph can only carry a static token table (the decision budget is p50 <= 250 µs on
one core), so the question is whether a stronger sentence encoder would *generalise*
better, i.e. whether distilling one into the table (or paying for it) is worth it. Same
corpus, same leave-one-source-out folds and head kinds as the OOD table
(``training.evaluate.ood``), one run per embedding and regularisation strength:

* ``static``: the model2vec distillation of all-MiniLM-L6-v2 that training starts from
  (with the hand-crafted features), intent also as ``tuned``: the table tuned end to end on
  each fold's intent labels, which is what ships;
* ``minilm``: the full all-MiniLM-L6-v2 sentence-transformer (6 attention layers, ~300x the
  decision latency: ``bench_decision_latency``), same features, same heads.

Random, prompt length and the heuristic come from the same run. ``--quick`` uses the tiny
training config (a few hundred rows; checks the harness, not the claim)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks import common

NAME = "embedding"
STRONG_KINDS = ("gain", "linear")
FAMILIES = ("correctness", "preference")


@dataclass(frozen=True)
class Budget:
    config: str
    strong_c: tuple[float, ...]  # inverse L2 strengths of the linear strong-win heads


FULL = Budget("default", (0.001, 0.01, 0.1))
QUICK = Budget("tiny", (0.001,))


def embeddings(cfg: Any, corpus: Any) -> dict[str, tuple[Any, Any]]:
    """-> {name: (design matrix, untuned static embedder or None)} for every embedding."""
    from training.model.embed import TransformerEmbedding, embed_cached, load_static, minilm_source
    from training.model.heads import design_matrix

    texts = corpus.frame["text"].tolist()
    cache = cfg.path(cfg.cache_dir)
    base = load_static(cfg)
    minilm = TransformerEmbedding(minilm_source(cfg.minilm_source), cfg.transformer_batch_size)
    return {
        "static": (design_matrix(embed_cached(base, texts, cache), corpus.features), base),
        "minilm": (design_matrix(embed_cached(minilm, texts, cache), corpus.features), None),
    }


def summary_row(table: Mapping[str, Any], kind: str) -> dict[str, float]:
    """An OOD table and a strong-win kind -> its family means/worsts and pooled APGR."""
    s = table["summary"][f"learned_{kind}"]
    out = {k: s[k] for k in (*FAMILIES, *(f"{f}_worst" for f in FAMILIES)) if k in s}
    pooled = table["pooled_correctness"].get("apgr", {})
    if f"learned_{kind}" in pooled:
        out["pooled"] = pooled[f"learned_{kind}"]
    return out


def baseline_rows(table: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    pooled = table["pooled_correctness"].get("apgr", {})
    rows = {}
    for name in ("random", "length", "heuristic"):
        s = table["summary"][name]
        rows[name] = {k: s[k] for k in (*FAMILIES, *(f"{f}_worst" for f in FAMILIES)) if k in s}
        if name in pooled:
            rows[name]["pooled"] = pooled[name]
    heur = table["summary"]["heuristic"]
    rows["heuristic"].update({k: heur[k] for k in ("intent", "intent_worst") if k in heur})
    return rows


def run(budget: Budget) -> dict[str, Any]:
    import dataclasses

    from training.config import load_config
    from training.data.corpus import load_corpus
    from training.evaluate.ood import ood_table

    t0 = time.perf_counter()
    # The untuned model2vec table, never a shipped one: that was tuned on every fold's labels.
    cfg = load_config(budget.config, mlflow=False)
    cfg = dataclasses.replace(cfg, static_from_model=None)
    corpus = load_corpus(cfg)
    matrices = embeddings(cfg, corpus)
    embed_s = time.perf_counter() - t0
    strong: dict[str, dict[str, float]] = {}
    intent: dict[str, dict[str, float]] = {}
    baselines: dict[str, dict[str, float]] = {}
    for name, (X, base) in matrices.items():
        for i, c in enumerate(budget.strong_c):
            run_cfg = dataclasses.replace(cfg, strong_linear_c=c)
            kinds = ("linear", "tuned") if (i == 0 and base is not None) else ("linear",)
            table = ood_table(corpus, X, run_cfg, STRONG_KINDS, kinds if i == 0 else (), base)
            for kind in STRONG_KINDS:
                strong[f"{name} {kind} C={c:g}"] = summary_row(table, kind)
            if i == 0:
                baselines = baseline_rows(table)
                for kind in kinds:
                    s = table["summary"][f"intent_{kind}"]
                    intent[f"{name} {kind}"] = {"intent": s["intent"], "worst": s["intent_worst"]}
    return {
        "n_rows": len(corpus.frame),
        "strong": strong,
        "intent": intent,
        "baselines": baselines,
        "seconds": {"embed": round(embed_s, 1), "total": round(time.perf_counter() - t0, 1)},
    }


def _f(value: float | None) -> str | None:
    return None if value is None else f"{value:.3f}"


def markdown(results: Mapping[str, Any]) -> str:
    cols = ("correctness", "correctness_worst", "pooled", "preference", "preference_worst")
    heads = ("scorer", "correctness mean", "worst", "pooled", "preference mean", "worst")
    rows = [[f"`{k}`", *(_f(v.get(c)) for c in cols)] for k, v in results["baselines"].items()]
    rows += [[f"`{k}`", *(_f(v.get(c)) for c in cols)] for k, v in results["strong"].items()]
    irows = [["`heuristic`", _f(results["baselines"]["heuristic"].get("intent")), None]]
    irows[0][2] = _f(results["baselines"]["heuristic"].get("intent_worst"))
    irows += [[f"`{k}`", _f(v["intent"]), _f(v["worst"])] for k, v in results["intent"].items()]
    best_static = _best(results["strong"], "static")
    best_minilm = _best(results["strong"], "minilm")
    return "\n".join(
        [
            "Leave-one-source-out APGR (strong-win) and macro-F1 (intent) of the same heads on "
            "the static table the graph carries and on the full MiniLM sentence encoder it "
            "was distilled from (`benchmarks/bench_embedding.py`; folds as in the OOD table "
            f"above; {results['n_rows']} rows).",
            "",
            f"Best strong-win mean (correctness and preference): static {_f(best_static)}, "
            f"MiniLM {_f(best_minilm)}.",
            "",
            common.md_table(heads, rows),
            "",
            common.md_table(("intent scorer", "macro-F1 mean", "worst"), irows),
        ]
    )


def _best(strong: Mapping[str, Mapping[str, float]], prefix: str) -> float | None:
    vals = [
        (v.get("correctness", 0.0) + v.get("preference", 0.0)) / 2
        for k, v in strong.items()
        if k.startswith(prefix + " ")
    ]
    return max(vals) if vals else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    args = common.bench_args(parser.parse_args(argv))
    budget = QUICK if args.quick else FULL
    results = run(budget)
    doc = common.envelope(NAME, results, params=asdict(budget), quick=args.quick)
    common.publish(NAME, doc, markdown(results), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
