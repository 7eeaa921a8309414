"""Real prompts -> decision latency (raw messages -> tier) per scorer and prompt length.

Everything runs on ONE CPU (``os.sched_setaffinity``; onnxruntime, torch and the BLAS/OpenMP
pools limited to one thread), with the loaded scorers frozen out of the garbage collector's
scans (``gc.freeze()``) as the service does after start-up. Each timed call is
``routing.decide(scorer, RoutingPolicy(), messages)``: message normalisation, scored text,
tokenization, model and policy. Scorers,
measured in the same run, in rotating order, round after round:

* ``learned``: the committed model (``models/default``: static embedding + boosted heads,
  one ONNX graph); targets p50 <= 250 µs and p99 <= 1 ms up to 512 tokens;
* ``heuristic``: the keyword scorer (the baseline every ratio is taken against);
* ``learned_transformer``: the training code's transformer variant (full MiniLM + the
  same calibrated heads, sklearn) and ``minilm_sklearn``: MiniLM + logistic regressions.
  Both are ~100x slower, so they get fewer prompts and rounds.

Buckets: real prompts of <=32, <=128 and <=512 WordPiece tokens (ShareGPT first turns and
the handwritten prompts) and a 1 MiB worst case. Also: model size on disk and the RSS of a
fresh process that loads each scorer and scores ``rss_prompts`` prompts."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.prompts import BUCKET_NAMES, WORST_CASE, bucketed_prompts, real_prompts
from router_service.decision import Scorer
from router_service.routing import RoutingPolicy, decide
from router_service.scoring import DEFAULT_MODEL_DIR

NAME = "decision_latency"
TARGET_P50_US = 250.0
TARGET_P99_US = 1000.0
TARGET_BUCKETS = ("<=32", "<=128", "<=512")
BASELINE = "heuristic"
FAST = ("learned", "heuristic")
SLOW = ("learned_transformer", "minilm_sklearn")
ORDER = ("learned", "heuristic", "learned_transformer", "minilm_sklearn")
STAGES = ("text+features", "tokenize", "tokenize+onnx", "intent blend", "score")


@dataclass(frozen=True)
class Budget:
    per_bucket: int  # prompts per bucket per round (fast scorers)
    rounds: int
    slow_per_bucket: int  # prompts per bucket per round (transformer scorers)
    slow_rounds: int
    n_worst: int  # distinct 1 MiB prompts
    worst_reps: int  # calls per 1 MiB prompt per round (fast scorers)
    warmup: int
    rss_prompts: int
    baseline_rows: int  # corpus cap per source for the transformer baselines


FULL = Budget(
    per_bucket=1000,
    rounds=7,
    slow_per_bucket=40,
    slow_rounds=3,
    n_worst=8,
    worst_reps=25,
    warmup=100,
    rss_prompts=1000,
    baseline_rows=1000,
)
QUICK = Budget(
    per_bucket=12,
    rounds=2,
    slow_per_bucket=2,
    slow_rounds=1,
    n_worst=1,
    worst_reps=2,
    warmup=2,
    rss_prompts=10,
    baseline_rows=40,
)
# What the latency notebook runs: enough calls for smooth histograms, a few minutes at most.
NOTEBOOK = Budget(
    per_bucket=300,
    rounds=3,
    slow_per_bucket=10,
    slow_rounds=2,
    n_worst=2,
    worst_reps=10,
    warmup=20,
    rss_prompts=0,
    baseline_rows=150,
)


# --- scorers ------------------------------------------------------------------------------


@dataclass
class Scorers:
    scorers: dict[str, Scorer]
    errors: dict[str, str]
    # kind -> (pickled heads, MiniLM source) for the subprocess that measures its memory
    pickled_heads: dict[str, tuple[Path, str]] = field(default_factory=dict)


def load_scorers(
    budget: Budget, model_dir: Path = DEFAULT_MODEL_DIR, transformers: bool = True
) -> Scorers:
    """-> every scorer that can be built here; the others with the reason in ``errors``."""
    from router_service.heuristic import HeuristicScorer

    out = Scorers({}, {})
    try:
        from router_service.learned import LearnedScorer

        out.scorers["learned"] = LearnedScorer.load(model_dir)
    except Exception as exc:
        out.errors["learned"] = str(exc)
    out.scorers["heuristic"] = HeuristicScorer()
    if not transformers:
        out.errors.update({k: "skipped (--no-transformers)" for k in SLOW})
        return out
    try:
        from benchmarks import baselines as bl

        data = bl.baseline_data(budget.baseline_rows)
        lr = bl.fit_minilm_baseline(data)
        minilm = bl.MiniLMSklearnScorer(lr)
        out.scorers[bl.TRANSFORMER_NAME] = bl.TransformerHeadsScorer(
            bl.fit_transformer_heads(data), data.source, minilm.model
        )
        out.scorers[bl.BASELINE_NAME] = minilm
        for kind in (bl.BASELINE_NAME, bl.TRANSFORMER_NAME):
            out.pickled_heads[kind] = (bl.cached_path(data, kind), data.source)
    except Exception as exc:  # missing training extras or MiniLM weights
        for k in SLOW:
            out.errors.setdefault(k, f"{type(exc).__name__}: {exc}")
    return out


# --- timing -------------------------------------------------------------------------------


@contextlib.contextmanager
def single_thread() -> Iterator[int | None]:
    """One CPU, one thread for every pool (torch, OpenMP, BLAS); restored afterwards."""
    from threadpoolctl import threadpool_limits

    with common.one_cpu() as cpu, threadpool_limits(limits=1):
        yield cpu


def time_calls(scorer: Scorer, payloads: Sequence[Any], policy: RoutingPolicy) -> np.ndarray:
    """-> wall time of ``decide`` per payload, µs (perf_counter_ns around each call)."""
    out = np.empty(len(payloads), np.float64)
    clock = time.perf_counter_ns
    for i, payload in enumerate(payloads):
        t0 = clock()
        decide(scorer, policy, payload)
        out[i] = (clock() - t0) / 1000.0
    return out


def _payloads(texts: Sequence[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": t}] for t in texts]


Rounds = dict[str, dict[str, list[list[float]]]]  # bucket -> scorer -> per-round samples


def measure(
    scorers: Mapping[str, Scorer],
    buckets: Mapping[str, Sequence[str]],
    budget: Budget,
    seed: int = 0,
) -> Rounds:
    """Interleaved rounds: every round times every (bucket, scorer) on a fresh shuffle,
    scorers in rotating order, so drift on a busy machine hits all of them alike."""
    policy = RoutingPolicy()
    rng = random.Random(seed)
    names = [n for n in ORDER if n in scorers]
    warm = _payloads([t for texts in buckets.values() for t in texts[:2]])
    for name in names:
        for p in (warm * budget.warmup)[: max(budget.warmup, len(warm))]:
            decide(scorers[name], policy, p)
    out: Rounds = {b: {n: [] for n in names} for b in buckets}
    for r in range(max(budget.rounds, budget.slow_rounds)):
        order = names[r % len(names) :] + names[: r % len(names)]
        for bucket, texts in buckets.items():
            texts = list(texts)
            rng.shuffle(texts)
            for name in order:
                slow = name in SLOW
                if r >= (budget.slow_rounds if slow else budget.rounds):
                    continue
                if bucket == WORST_CASE:
                    reps = 1 if slow else budget.worst_reps
                    chosen = texts[: budget.slow_per_bucket] if slow else texts * reps
                else:
                    chosen = texts[: budget.slow_per_bucket if slow else budget.per_bucket]
                payloads = _payloads(chosen)
                gc.collect()
                out[bucket][name].append(time_calls(scorers[name], payloads, policy).tolist())
    return out


def learned_stages(
    scorer: Any, buckets: Mapping[str, Sequence[str]], n: int
) -> dict[str, dict[str, float]]:
    """Where the learned scorer's time goes, per bucket (p50 µs of each stage, one call at a
    time): scored text + hand-crafted features, WordPiece tokenization, tokenization + the
    onnxruntime call (``LearnedScorer._run_one``), the blend with the heuristic's keyword
    intents when the model carries one (``router_service.intent_blend``, timed right after
    the graph, as ``score`` runs it), and the whole ``score``."""
    from router_service.features import handcrafted_features, scored_text
    from router_service.intent_blend import NON_ASCII_FEATURE as NON_ASCII

    if not (hasattr(scorer, "_ids") and hasattr(scorer, "_run_one")):
        return {}
    clock = time.perf_counter_ns
    out: dict[str, dict[str, float]] = {}
    for bucket, texts in buckets.items():
        stages: dict[str, list[float]] = {k: [] for k in STAGES}
        blend = getattr(scorer, "blend", None)
        for t in list(texts)[:n]:
            msgs = [{"role": "user", "content": t}]
            t0 = clock()
            text = scored_text(msgs)
            feats = handcrafted_features(msgs, text)
            t1 = clock()
            scorer._ids(text)
            t2 = clock()
            probs, _, _ = scorer._run_one(text, feats)
            t3 = clock()
            if blend is not None:
                blend.blend_one(probs[0].tolist(), blend.heuristic_one(text), feats[NON_ASCII])
            t4 = clock()
            scorer.score(msgs)
            t5 = clock()
            stages["text+features"].append((t1 - t0) / 1e3)
            stages["tokenize"].append((t2 - t1) / 1e3)
            stages["tokenize+onnx"].append((t3 - t2) / 1e3)
            if blend is not None:
                stages["intent blend"].append((t4 - t3) / 1e3)
            stages["score"].append((t5 - t4) / 1e3)
        out[bucket] = {k: float(np.percentile(v, 50)) for k, v in stages.items() if v}
    return out


def summarize_rounds(rounds: Rounds) -> dict[str, Any]:
    """Per bucket: ``common.rounds_summary`` against the heuristic, the learned speed-up
    over each transformer scorer and whether the learned targets are met."""
    out: dict[str, Any] = {}
    for bucket, per in rounds.items():
        per = {k: v for k, v in per.items() if v}
        summary = common.rounds_summary(per, BASELINE)
        learned = summary.get("learned")
        for slow in SLOW:
            if learned and slow in summary:
                summary[slow]["p50_speedup_of_learned"] = common.ratio(
                    summary[slow]["p50_median_of_rounds"], learned["p50_median_of_rounds"]
                )
        if learned and bucket in TARGET_BUCKETS:
            learned["meets_p50_target"] = bool(learned["pooled"]["p50"] <= TARGET_P50_US)
            learned["meets_p99_target"] = bool(learned["pooled"]["p99"] <= TARGET_P99_US)
        out[bucket] = summary
    return out


def latency_frame(summary: Mapping[str, Any]) -> Any:
    """``summarize_rounds`` output -> DataFrame (bucket, scorer) -> p50/p99/ratios."""
    import pandas as pd

    rows = []
    for bucket, per in summary.items():
        for name in ORDER:
            s = per.get(name)
            if s:
                rows.append(
                    {
                        "bucket": bucket,
                        "scorer": name,
                        "calls": s["pooled"]["n"],
                        "p50 µs": s["pooled"]["p50"],
                        "p99 µs": s["pooled"]["p99"],
                        "p50 / heuristic": s.get(f"p50_ratio_to_{BASELINE}"),
                        "slower than learned": s.get("p50_speedup_of_learned"),
                    }
                )
    return pd.DataFrame(rows).set_index(["bucket", "scorer"])


# --- size and memory ----------------------------------------------------------------------


def model_size(model_dir: Path) -> dict[str, Any]:
    if not model_dir.is_dir():
        return {"path": str(model_dir), "error": "missing"}
    files = {p.name: p.stat().st_size for p in sorted(model_dir.iterdir()) if p.is_file()}
    return {"path": str(model_dir), "files": files, "total_bytes": sum(files.values())}


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def serving_rss(
    kinds: Sequence[str],
    prompts: Sequence[str],
    model_dir: Path,
    pickled_heads: Mapping[str, tuple[Path, str]],
    timeout: float = 900.0,
) -> dict[str, Any]:
    """One fresh subprocess per scorer kind (``benchmarks.serving_rss``) -> its report;
    the MiniLM kinds load their pickled heads (``pickled_heads``: kind -> path, source)."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pfile = Path(tmp) / "prompts.json"
        pfile.write_text(json.dumps(list(prompts)), encoding="utf-8")
        for kind in kinds:
            cmd = [sys.executable, "-m", "benchmarks.serving_rss", "--scorer", kind]
            cmd += ["--prompts", str(pfile), "--model-dir", str(model_dir)]
            if kind in pickled_heads:
                heads, source = pickled_heads[kind]
                cmd += ["--heads", str(heads), "--source", source]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, cwd=common.REPO_ROOT
            )
            if proc.returncode != 0:
                out[kind] = {"error": proc.stderr.strip()[-2000:]}
                continue
            out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# --- the benchmark ------------------------------------------------------------------------


def run(budget: Budget, model_dir: Path = DEFAULT_MODEL_DIR, transformers: bool = True) -> dict:
    t0 = time.perf_counter()
    loaded = load_scorers(budget, model_dir, transformers)
    pool = real_prompts()
    buckets = bucketed_prompts(budget.per_bucket, budget.n_worst, seed=0, pool=pool)
    # As the service does after start-up (``app.create_app``'s lifespan): what is loaded
    # now stays for the whole run, so the collector's full scans skip it.
    gc.collect()
    gc.freeze()
    try:
        with single_thread() as cpu:
            rounds = measure(loaded.scorers, buckets, budget)
            stages = (
                learned_stages(loaded.scorers["learned"], buckets, budget.per_bucket)
                if "learned" in loaded.scorers
                else {}
            )
    finally:
        gc.unfreeze()
    results: dict[str, Any] = {
        "pinned_cpu": cpu,
        "targets": {"p50_us": TARGET_P50_US, "p99_us": TARGET_P99_US, "buckets": TARGET_BUCKETS},
        "scorers": sorted(loaded.scorers),
        "not_measured": loaded.errors,
        "bucket_sizes": {b: len(v) for b, v in buckets.items()},
        "latency_us": summarize_rounds(rounds),
        "learned_stages_p50_us": stages,
        "model_size": model_size(model_dir),
    }
    if "minilm_sklearn" in loaded.scorers:
        src = Path(getattr(loaded.scorers["minilm_sklearn"], "heads").source)  # noqa: B009
        if src.is_dir():
            results["model_size"]["minilm_weights_bytes"] = _dir_bytes(src)
    kinds = [k for k in ORDER if k in loaded.scorers]
    rss_pool = random.Random(1).sample(pool, min(budget.rss_prompts, len(pool)))
    results["serving_rss"] = serving_rss(kinds, rss_pool, model_dir, loaded.pickled_heads)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    results["_rounds"] = rounds  # raw samples, dropped from the JSON (kept for plots)
    return results


def plot(rounds: Rounds, path: Path | None = None, title: str = "") -> Any:
    """Histograms of decision latency per bucket (log x), one line per scorer."""
    from benchmarks.plots import latency_histograms

    return latency_histograms(rounds, path, title=title, targets=(TARGET_P50_US, TARGET_P99_US))


def markdown(results: Mapping[str, Any], png: str | None) -> str:
    lat = results["latency_us"]
    rows = []
    for bucket in BUCKET_NAMES:
        for name in ORDER:
            s = lat.get(bucket, {}).get(name)
            if not s:
                continue
            ok = ""
            if name == "learned" and "meets_p50_target" in s:
                ok = "yes" if s["meets_p50_target"] and s["meets_p99_target"] else "**no**"
            rows.append(
                [
                    bucket,
                    f"`{name}`",
                    s["pooled"]["n"],
                    s["rounds"],
                    common.fmt(s["pooled"]["p50"]),
                    common.fmt(s["pooled"]["p99"]),
                    common.fmt(s.get("p50_median_of_rounds")),
                    f"{common.fmt(s.get('p50_rounds_min'))}–{common.fmt(s.get('p50_rounds_max'))}",
                    common.fmt_ratio(s.get(f"p50_ratio_to_{BASELINE}")),
                    common.fmt_ratio(s.get("p50_speedup_of_learned")),
                    ok,
                ]
            )
    table = common.md_table(
        [
            "bucket",
            "scorer",
            "calls",
            "rounds",
            "p50 µs",
            "p99 µs",
            "p50 µs (median of rounds)",
            "p50 range over rounds",
            "p50 / heuristic",
            "slower than learned (p50)",
            "meets target",
        ],
        rows,
    )
    size = results["model_size"]
    rss = results["serving_rss"]
    mem_rows = [
        [
            f"`{k}`",
            common.fmt(v.get("rss_loaded_mib")),
            common.fmt(v.get("rss_after_mib")),
            common.fmt(v.get("peak_rss_mib")),
            v.get("n_prompts"),
            ", ".join(v.get("heavy_modules_loaded", [])) or "none",
        ]
        for k, v in rss.items()
        if "error" not in v
    ]
    parts = [
        f"Decision latency from raw messages to tier (`routing.decide`, tokenization included) "
        f"on one pinned CPU with one thread, real prompts by WordPiece length. Target for "
        f"`learned` up to 512 tokens: p50 ≤ {TARGET_P50_US:.0f} µs, p99 ≤ "
        f"{TARGET_P99_US:.0f} µs. Ratios are per round against `heuristic` measured in the "
        f"same round (median over rounds).",
        "",
        table,
    ]
    if png:
        parts += ["", f"![decision latency histograms]({png})"]
    stage_rows = [
        [bucket, *(common.fmt(v.get(k)) for k in STAGES)]
        for bucket, v in results.get("learned_stages_p50_us", {}).items()
    ]
    if stage_rows:
        parts += [
            "",
            "Where `learned` spends its time (p50 µs per stage, same prompts, one call at a "
            "time; `tokenize+onnx` is `LearnedScorer._run_one`):",
            "",
            common.md_table(["bucket", *STAGES], stage_rows),
        ]
    if size.get("total_bytes"):
        files = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in size["files"].items())
        line = f"Model on disk: **{size['total_bytes'] / 1e6:.2f} MB** ({files})"
        if size.get("minilm_weights_bytes"):
            line += (
                f"; MiniLM weights of the baselines: {size['minilm_weights_bytes'] / 1e6:.1f} MB"
            )
        parts += ["", line + "."]
    if mem_rows:
        parts += [
            "",
            "Serving memory: a fresh process loads the scorer and routes "
            f"{mem_rows[0][4]} real prompts.",
            "",
            common.md_table(
                [
                    "scorer",
                    "RSS loaded MiB",
                    "RSS after MiB",
                    "peak MiB",
                    "prompts",
                    "heavy imports",
                ],
                mem_rows,
            ),
        ]
    if results.get("not_measured"):
        parts += [
            "",
            "Not measured: "
            + "; ".join(
                f"`{k}` ({v.splitlines()[0][:200]})" for k, v in results["not_measured"].items()
            ),
        ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--no-transformers", action="store_true", help="skip the MiniLM scorers")
    ns = parser.parse_args(argv)
    args = common.bench_args(ns)
    budget = QUICK if args.quick else FULL
    results = run(budget, ns.model_dir, transformers=not ns.no_transformers)
    rounds = results.pop("_rounds")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    png = args.out_dir / f"{NAME}.png"
    plot(rounds, png, title="Decision latency by prompt length (1 CPU, 1 thread)")
    doc = common.envelope(NAME, results, params=asdict(budget), quick=args.quick)
    link = common.relative_link(png, args.markdown) if args.markdown else None
    common.publish(NAME, doc, markdown(results, link), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
