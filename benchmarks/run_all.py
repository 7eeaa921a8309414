"""``make bench``: every benchmark, one after the other -> results/*.json, *.png, BENCHMARKS.md.

Each benchmark runs in its own subprocess (``python -m benchmarks.bench_<name>``), never two
at once, so their timings do not disturb each other and a crash in one does not stop the
others. Afterwards the ``summary`` section of BENCHMARKS.md is rebuilt from the JSON files
(headline numbers with their baselines and targets). Exit status 1 if any benchmark failed.

    python -m benchmarks.run_all                 # full budgets (tens of minutes)
    python -m benchmarks.run_all --quick         # tiny budgets: checks the harness only
    python -m benchmarks.run_all --only decision_latency,proxy --out-dir /tmp/b --no-markdown
    python -m benchmarks.run_all --summary-only  # after running single benchmarks by hand
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import common

# Run order: the timing-sensitive ones first, the long ones last.
BENCHMARKS: tuple[str, ...] = (
    "decision_latency",
    "proxy",
    "quality",
    "multiturn",
    "embedding",
    "training",
    "retrain",
    "judge",
)
TIMEOUT_S = {"full": 3 * 3600, "quick": 900}


def available(name: str) -> bool:
    return importlib.util.find_spec(f"benchmarks.bench_{name}") is not None


def command(name: str, quick: bool, out_dir: Path, markdown: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", f"benchmarks.bench_{name}", "--out-dir", str(out_dir)]
    if quick:
        cmd.append("--quick")
    cmd += ["--markdown", str(markdown)] if markdown is not None else ["--no-markdown"]
    return cmd


def run_one(name: str, quick: bool, out_dir: Path, markdown: Path | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    print(f"== {name} ==", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run(
            command(name, quick, out_dir, markdown),
            cwd=common.REPO_ROOT,
            timeout=TIMEOUT_S["quick" if quick else "full"],
        )
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = -1
    seconds = round(time.perf_counter() - t0, 1)
    ok = code == 0 and (out_dir / f"{name}.json").is_file()
    print(f"== {name}: {'ok' if ok else f'FAILED ({code})'} in {seconds} s ==", file=sys.stderr)
    return {"name": name, "ok": ok, "returncode": code, "seconds": seconds}


def _load(out_dir: Path, name: str) -> dict[str, Any] | None:
    path = out_dir / f"{name}.json"
    if not path.is_file():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except ValueError:
        return None


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, Mapping) or k not in d:
            return None
        d = d[k]
    return d


def ood_rows(quality: Mapping[str, Any] | None) -> list[list[Any]]:
    """The headline: family means out of distribution (leave one source out), learned vs
    the heuristic measured in the same run."""
    summary = _get(quality, "results", "ood", "summary") if quality else None
    if not summary:
        return []
    rows = []
    for family, metric in (
        ("correctness", "APGR"),
        ("preference", "APGR"),
        ("intent", "macro-F1"),
    ):
        learned, heur = summary.get("learned", {}), summary.get("heuristic", {})
        if family not in learned:
            continue
        target = "≥ heuristic on every source" + (", mean +0.05" if family == "correctness" else "")
        lo, hi = learned.get(f"{family}_vs_heuristic_lo"), learned.get(f"{family}_vs_heuristic_hi")
        margin = f" (mean − heuristic, 95% CI [{lo:+.3f}, {hi:+.3f}])" if lo is not None else ""
        rows.append(
            [
                f"**OOD {metric}, {family} family** (mean / worst held-out source)",
                f"{learned[family]:.3f} / {learned[f'{family}_worst']:.3f}{margin}",
                f"heuristic {heur[family]:.3f} / {heur[f'{family}_worst']:.3f}",
                target,
            ]
        )
    return rows


def summary_rows(out_dir: Path) -> list[list[Any]]:
    """Headline numbers from whatever result files exist (missing ones are skipped)."""
    rows: list[list[Any]] = ood_rows(_load(out_dir, "quality"))
    lat = _load(out_dir, "decision_latency")
    if lat:
        r = lat["results"]["latency_us"]
        for bucket in ("<=32", "<=128", "<=512", "1MB"):
            learned = _get(r, bucket, "learned")
            heur = _get(r, bucket, "heuristic")
            if not learned:
                continue
            slow = _get(r, bucket, "minilm_sklearn", "pooled", "p50")
            rows.append(
                [
                    f"decision latency, prompts {bucket}",
                    f"p50 {common.fmt(learned['pooled']['p50'])} µs / p99 "
                    f"{common.fmt(learned['pooled']['p99'])} µs",
                    f"heuristic p50 {common.fmt(_get(heur, 'pooled', 'p50'))} µs"
                    + (f"; MiniLM+sklearn p50 {common.fmt(slow, 0)} µs" if slow else ""),
                    "p50 ≤ 250 µs, p99 ≤ 1000 µs" if bucket != "1MB" else "–",
                ]
            )
        size = _get(lat, "results", "model_size", "total_bytes")
        rss = _get(lat, "results", "serving_rss", "learned", "rss_after_mib")
        heur_rss = _get(lat, "results", "serving_rss", "heuristic", "rss_after_mib")
        if size:
            rows.append(
                [
                    "model size / serving RSS",
                    f"{size / 1e6:.1f} MB / {common.fmt(rss)} MiB",
                    f"heuristic RSS {common.fmt(heur_rss)} MiB",
                    "–",
                ]
            )
    proxy = _load(out_dir, "proxy")
    if proxy:
        res = proxy["results"]
        added = res["latency"]["added_us"]
        rows.append(
            [
                "router added latency (one at a time)",
                f"p50 {added['p50'] / 1000:.3f} ms / p99 {added['p99'] / 1000:.3f} ms",
                f"direct p50 {res['latency']['direct_us']['p50_median_of_rounds'] / 1000:.3f} ms",
                "p50 ≤ 1 ms, p99 ≤ 5 ms",
            ]
        )
        for key, tp in res["throughput"].items():
            rows.append(
                [
                    f"throughput, {key.replace('workers_', '')} router worker(s)",
                    f"{tp['router']['rps_median']:,.0f} req/s",
                    f"direct {tp['direct']['rps_median']:,.0f} req/s",
                    "≥ 1000 req/s",
                ]
            )
        sr = res["streams_router"]
        rows.append(
            [
                "concurrent streams, chunks in order",
                f"{sr['ok']}/{sr['streams']} ok",
                f"direct {res['streams_direct']['ok']}/{res['streams_direct']['streams']} ok",
                "all",
            ]
        )
        for ab in res.get("ab_baselines", []):
            rows += ab_rows(ab)
        rows += litellm_rows(res.get("litellm"))
    quality = _load(out_dir, "quality")
    if quality:
        res = quality["results"]
        share = _get(res, "intent", "sharegpt_test")
        if share:
            rows.append(
                [
                    "intent accuracy / macro-F1 (ShareGPT test)",
                    f"{share['learned']['accuracy']:.3f} / {share['learned']['macro_f1']:.3f}",
                    f"heuristic {share['heuristic']['accuracy']:.3f} / "
                    f"{share['heuristic']['macro_f1']:.3f}",
                    "beat the heuristic",
                ]
            )
        for bench, block in res["routing"].items():
            s = block["scorers"]
            rows.append(
                [
                    f"APGR {bench} test",
                    f"{s['learned']['apgr']:.3f}",
                    f"random {s['random']['apgr']:.3f}, heuristic {s['heuristic']['apgr']:.3f}, "
                    f"kNN {s['knn']['apgr']:.3f}",
                    f"RouteLLM MMLU {res['reference']['routellm_mmlu_apgr']}"
                    if bench == "mmlu"
                    else "–",
                ]
            )
    multiturn = _get(_load(out_dir, "multiturn"), "results") or {}
    block = _get(multiturn, "sets", "sharegpt_later_turns")
    if block:
        from benchmarks.bench_multiturn import view_name

        shipped = multiturn["shipped_view"]
        view = view_name(shipped["follow_up_chars"], shipped["context_chars"])
        new, old = block["views"][view], block["views"][view_name(0, 0)]
        rows.append(
            [
                "intent accuracy, later ShareGPT turns (unseen turns of a training source)",
                f"{new['learned']['intent']['accuracy']:.3f}",
                f"last turn alone {old['learned']['intent']['accuracy']:.3f}; heuristic "
                f"{new['heuristic']['intent']['accuracy']:.3f}",
                "beat the last-turn view",
            ]
        )
    training = _load(out_dir, "training")
    if training:
        sizes = training["results"]["sizes"]
        n = max(sizes, key=int)
        rate = _get(
            training, "results", "embedding_same_prompts", "transformer", "prompts_per_second"
        )
        rows.append(
            [
                f"training time, {int(n):,} prompts",
                f"{sizes[n]['total_seconds']:.0f} s",
                "MiniLM embedding alone: " + (f"{int(n) / rate:.0f} s" if rate else "not measured"),
                "–",
            ]
        )
    return rows


def ab_rows(ab: Mapping[str, Any] | None) -> list[list[Any]]:
    """bench_proxy's A/B against the router before the Responses/Messages APIs -> one
    summary row (or why it was not measured)."""
    if not ab:
        return []
    what = "chat vs the router before the Responses/Messages APIs (same run, " + (
        "both on the heuristic scorer)"
        if ab.get("scorer") == "heuristic"
        else "each with its own model)"
    )
    if "error" in ab:
        return [[what, "not measured", ab["error"], "within 5%"]]
    cur, base, v = ab["current"], ab["baseline"], ab["verdict"]

    def times(key: str) -> str:
        r = v["ratios"].get(key)
        return "–" if r is None else f"{r:.2f}×"

    return [
        [
            what,
            f"added p50 {cur['added_p50_us'] / 1000:.3f} ms, {cur['rps_median']:,.0f} req/s "
            f"({times('added_p50_us')} / {times('rps_median')} the baseline)",
            f"`{ab['sha'][:9]}`: {base['added_p50_us'] / 1000:.3f} ms, "
            f"{base['rps_median']:,.0f} req/s",
            "within 5%" + ("" if v["passes"] else f" (**not met**: {', '.join(v['failed'])})"),
        ]
    ]


def litellm_rows(res: Mapping[str, Any] | None) -> list[list[Any]]:
    """bench_proxy's LiteLLM comparison -> one summary row (or the reason it was skipped)."""
    if not res:
        return []
    if "skipped" in res:
        return [["vs the LiteLLM proxy", "not measured", res["skipped"], "–"]]
    added = res["latency"]["added_us"]
    load = res["throughput"]
    ttft = res["streams"]
    clients = res["plan"]["concurrency"]
    return [
        [
            "vs the LiteLLM proxy (1 worker each, same run)",
            f"added p50 {added['router']['p50'] / 1000:.2f} ms, "
            f"{load['router']['rps_median']:,.0f} req/s ({clients} clients), first chunk p50 "
            f"{ttft['router']['first_chunk_ms']['p50']:.1f} ms",
            f"LiteLLM {added['litellm']['p50'] / 1000:.2f} ms, "
            f"{load['litellm']['rps_median']:,.0f} req/s, "
            f"{ttft['litellm']['first_chunk_ms']['p50']:.1f} ms",
            "–",
        ]
    ]


def summary_markdown(out_dir: Path, runs: Sequence[Mapping[str, Any]], quick: bool) -> str:
    rows = summary_rows(out_dir)
    parts = [
        "Headline numbers (the learned router, its baseline measured in the same run, the "
        "target). Details and plots in the sections below.",
    ]
    if quick:
        parts.append("\n**Quick mode: tiny budgets, these numbers check the harness only.**")
    parts += [
        "",
        common.md_table(["what", "learned router", "baseline (same run)", "target"], rows),
    ]
    failed = [r["name"] for r in runs if not r["ok"] and not r.get("missing")]
    missing = [b for b in BENCHMARKS if not (out_dir / f"{b}.json").is_file()]
    if failed:
        parts += ["", "Failed in the last run: " + ", ".join(f"`{n}`" for n in failed) + "."]
    if missing:
        parts += ["", "No results yet: " + ", ".join(f"`{n}`" for n in missing) + "."]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--skip", default="", help="comma-separated benchmark names")
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="run nothing: rebuild the summary section from the results already there",
    )
    ns = parser.parse_args(argv)
    args = common.bench_args(ns)
    only = [n for n in ns.only.split(",") if n]
    skip = {n for n in ns.skip.split(",") if n}
    unknown = sorted((set(only) | skip) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}")
    names = [] if ns.summary_only else [n for n in (only or BENCHMARKS) if n not in skip]
    runs = []
    for name in names:
        if not available(name):
            print(f"== {name}: benchmarks/bench_{name}.py not present, skipped ==", file=sys.stderr)
            runs.append(
                {"name": name, "ok": False, "returncode": None, "seconds": 0.0, "missing": True}
            )
            continue
        runs.append(run_one(name, args.quick, args.out_dir, args.markdown))
    if args.markdown is not None:
        common.update_markdown(
            "summary", summary_markdown(args.out_dir, runs, args.quick), args.markdown
        )
    for r in runs:
        status = "missing" if r.get("missing") else ("ok" if r["ok"] else "FAILED")
        print(f"{r['name']:<18} {status:<8} {r['seconds']:>8.1f} s", file=sys.stderr)
    return 0 if all(r["ok"] or r.get("missing") for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
