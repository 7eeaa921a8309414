"""N training prompts (real ones, sampled and perturbed) -> time of each training stage.

The stages are those of ``training.train.run_training`` (what ``make train`` runs), called
directly on a synthetic corpus of N rows: ``build_corpus`` (serving features, de-duplication,
hash split) -> static embedding (uncached) -> ``fit_heads`` (both boosted heads +
calibration) -> ONNX export (``build_graph`` + ``save_model``). Evaluation and MLflow are
left out: they do not grow with N.

Rows are drawn with replacement from the real labelled rows (``training.data.corpus.load_raw``),
and every copy is perturbed (words dropped, swapped and a few words from another real
prompt appended) so the corpus has N distinct prompts and no row is merged away. Labels
(intent, strong-win outcome) stay those of the source row. The baseline in the same run is
the full-MiniLM embedding (the training code's ``transformer`` embedder) on a subset,
reported as prompts/s and extrapolated to N."""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import common

NAME = "training"


@dataclass(frozen=True)
class Budget:
    sizes: tuple[int, ...]
    transformer_prompts: int  # MiniLM embedding baseline subset (0: not measured)
    preset: str  # hyper-parameters: "default" is what ``make train`` uses


FULL = Budget(
    sizes=(1_000, 5_000, 10_000, 25_000, 50_000, 100_000),
    transformer_prompts=1_000,
    preset="default",
)
QUICK = Budget(sizes=(250, 500), transformer_prompts=0, preset="tiny")


def perturb(text: str, donor: str, rng: random.Random) -> str:
    """A real prompt -> a distinct variant with the same intent (light word-level noise)."""
    words = text.split()
    if len(words) > 3:
        del words[rng.randrange(len(words))]
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    extra = donor.split()[: rng.randint(1, 4)]
    return " ".join([*words, *extra, f"#{rng.randrange(10**9)}"])


def synthetic_rows(source: Sequence[Mapping[str, Any]], n: int, seed: int) -> list[dict]:
    """``n`` perturbed copies of random real labelled rows (labels kept)."""
    rng = random.Random(seed)
    donors = [r["messages"][-1]["content"] for r in source if r["messages"]]
    out = []
    for _ in range(n):
        row = source[rng.randrange(len(source))]
        messages = [dict(m) for m in row["messages"]]
        if not messages:
            continue
        messages[-1]["content"] = perturb(messages[-1]["content"], rng.choice(donors), rng)
        out.append({**row, "messages": messages, "ref": f"synthetic:{row['ref']}"})
    return out


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_once(cfg: Any, embedder: Any, rows: Sequence[dict], out_dir: Path) -> dict[str, Any]:
    """One pass of the training stages on ``rows`` -> seconds per stage."""
    from training.data.corpus import build_corpus
    from training.model.export_onnx import build_graph, save_model
    from training.model.heads import design_matrix, fit_heads

    t: dict[str, float] = {}
    t0 = time.perf_counter()
    corpus = build_corpus(cfg, rows)
    t["data"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = embedder.embed(corpus.frame["text"].tolist())
    t["embed_static"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    heads, calib = fit_heads(corpus, design_matrix(emb, corpus.features), cfg)
    t["fit_heads"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    saved = save_model(build_graph(embedder, heads), embedder, out_dir)
    t["export_onnx"] = time.perf_counter() - t0
    total = sum(t.values())
    return {
        "rows": len(corpus.frame),
        "train_rows": calib["train_rows"],
        "seconds": {k: round(v, 3) for k, v in t.items()},
        "total_seconds": round(total, 3),
        "prompts_per_second": len(corpus.frame) / total if total else None,
        "heads": f"{calib['intent_head']}/{calib['strong_head']}",
        "onnx_bytes": saved["onnx_bytes"],
        "peak_rss_mib_so_far": round(_peak_rss_mib(), 1),
    }


def transformer_baseline(cfg: Any, texts: Sequence[str]) -> dict[str, Any]:
    """Full MiniLM (sentence-transformers) embedding of ``texts``, uncached -> prompts/s."""
    from training.model.embed import TransformerEmbedding, minilm_source

    if not texts:
        return {"error": "skipped (quick budget)"}
    try:
        tr = TransformerEmbedding(minilm_source(cfg.minilm_source), cfg.transformer_batch_size)
        tr.embed(list(texts[:4]))  # load the model outside the timing
        t0 = time.perf_counter()
        tr.embed(list(texts))
        seconds = time.perf_counter() - t0
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "prompts": len(texts),
        "seconds": round(seconds, 3),
        "prompts_per_second": len(texts) / seconds,
    }


def run(budget: Budget) -> dict[str, Any]:
    from training.config import load_config
    from training.data.corpus import load_raw
    from training.model.embed import load_static

    t_all = time.perf_counter()
    cfg = load_config(
        budget.preset, mlflow=False, static_from_model="models/default", out_dir="unused"
    )
    labelled, _, _ = load_raw(cfg)
    embedder = load_static(cfg)
    results: dict[str, Any] = {
        "preset": budget.preset,
        "source_rows": len(labelled),
        "embedder": embedder.source,
        "cores": common.machine_info()["cpu_cores_usable"],
        "sizes": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        for n in budget.sizes:
            rows = synthetic_rows(labelled, n, seed=n)
            results["sizes"][str(n)] = train_once(cfg, embedder, rows, Path(tmp) / f"m{n}")
    n_tr = budget.transformer_prompts
    texts = [r["messages"][-1]["content"] for r in synthetic_rows(labelled, max(n_tr, 16), 7)]
    static_t0 = time.perf_counter()
    embedder.embed(texts)
    static_s = time.perf_counter() - static_t0
    base = transformer_baseline(cfg, texts if n_tr else [])
    results["embedding_same_prompts"] = {
        "static": {
            "prompts": len(texts),
            "seconds": round(static_s, 4),
            "prompts_per_second": len(texts) / static_s if static_s else None,
        },
        "transformer": base,
        "speedup_static_vs_transformer": common.ratio(base.get("seconds"), static_s),
    }
    results["seconds"] = round(time.perf_counter() - t_all, 1)
    return results


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:,.0f} min"


def markdown(results: Mapping[str, Any], png: str | None) -> str:
    rows = []
    for n, r in results["sizes"].items():
        s = r["seconds"]
        rows.append(
            [
                f"{int(n):,}",
                f"{r['rows']:,}",
                common.fmt(s["data"], 1),
                common.fmt(s["embed_static"], 1),
                common.fmt(s["fit_heads"], 1),
                common.fmt(s["export_onnx"], 1),
                f"**{common.fmt(r['total_seconds'], 1)}**",
                common.fmt(r["prompts_per_second"], 0),
                r["heads"],
                common.fmt(r["peak_rss_mib_so_far"], 0),
            ]
        )
    emb = results["embedding_same_prompts"]
    st, tr = emb["static"], emb["transformer"]
    biggest = max(int(n) for n in results["sizes"])
    static_rate = common.fmt(st["prompts_per_second"], 0)
    line = f"Embedding the same {st['prompts']:,} prompts: static {static_rate} prompts/s"
    if "prompts_per_second" in tr:
        speedup = common.fmt_ratio(emb["speedup_static_vs_transformer"])
        line += (
            f", full MiniLM (the `transformer` embedder) {common.fmt(tr['prompts_per_second'], 1)} "
            f"prompts/s: **{speedup}** faster; at that rate MiniLM alone would need "
            f"~{duration(biggest / tr['prompts_per_second'])} to embed {biggest:,} prompts."
        )
    else:
        line += f"; MiniLM baseline not measured ({tr.get('error')})."
    parts = [
        f"Training stages of `make train` (corpus build, static embedding, both heads + "
        f"calibration, ONNX export) on N real prompts sampled with replacement and perturbed, "
        f"{results['cores']} cores; evaluation and MLflow excluded. Seconds:",
        "",
        common.md_table(
            [
                "N prompts",
                "rows after de-dup",
                "data",
                "embed",
                "fit heads",
                "export",
                "total",
                "prompts/s",
                "heads (intent/strong)",
                "peak RSS MiB (so far)",
            ],
            rows,
        ),
        "",
        line,
    ]
    if png:
        parts += ["", f"![training time]({png})"]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    ns = parser.parse_args(argv)
    args = common.bench_args(ns)
    budget = QUICK if args.quick else FULL
    results = run(budget)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    png = args.out_dir / f"{NAME}.png"
    from benchmarks.plots import training_times

    training_times(results, png)
    doc = common.envelope(NAME, results, params=asdict(budget), quick=args.quick)
    link = common.relative_link(png, args.markdown) if args.markdown else None
    common.publish(NAME, doc, markdown(results, link), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
