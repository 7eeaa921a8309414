"""Router vs direct upstream over real HTTP on 127.0.0.1 -> added latency, throughput, streams.

Three processes: the fake OpenAI upstream (``benchmarks.upstream``), the router
(``learned-router serve``: uvicorn, the committed model, decision log ON in SQLite) and this
process as the load generator (``benchmarks.httpload`` on asyncio; httpx for the streams).
The baseline is always the same request sent straight to the upstream, in the same run:

* added latency: one request at a time, router and direct alternating, real prompts;
  added p50/p99 = router p50/p99 - direct p50/p99 (targets: p50 <= 1 ms, p99 <= 5 ms);
* throughput: non-streaming requests from ``concurrency`` keep-alive clients, router and
  direct rounds alternating; req/s, latency under load and the CPU time each process used
  (target >= 1000 req/s on this 2-core machine, upstream and load generator included);
* streams: ``streams`` concurrent streamed answers, every chunk checked in order, then
  ``[DONE]``; the decision log is checked to hold one row per routed request;
* the LiteLLM proxy beside the router on the same upstream (``benchmarks.litellm_compare``,
  installed into its own venv; skipped with the reason when it cannot be);
* with ``--baseline-ref REF``: chat added latency and throughput of this router and of the
  router at REF (its own tree), alternating rounds (``benchmarks.baseline_router``), twice:
  both on the heuristic scorer (the request path alone) and each with its own learned model.

All traffic is loopback, every loop has a request count and a deadline."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import baseline_router, common
from benchmarks.api_latency import APIS as API_NAMES
from benchmarks.api_latency import api_latency
from benchmarks.api_latency import markdown as api_markdown
from benchmarks.proxy_load import (
    TARGET_ADDED_P50_MS,
    TARGET_ADDED_P99_MS,
    TARGET_RPS,
    UPSTREAM_MODEL,
    Budget,
    added_latency,
    count_log_rows,
    streams,
    throughput,
)
from benchmarks.proxy_procs import Proc, start_router, start_upstream

NAME = "proxy"
# The router just before the Responses and Messages APIs landed (a5b26fd^): chat must not
# have slowed by more than 5% since (issue 9), measured against it in the same run.
API_BASELINE_REF = "9b2ba0e3785b5a674307954dc7793bf083916030"

FULL = Budget(
    latency_pairs=500,
    latency_rounds=5,
    load_requests=12000,
    load_rounds=3,
    load_deadline_s=30.0,
    concurrency=64,
    streams=200,
    stream_chunks=32,
    chunk_delay_s=0.004,
    warmup=300,
    workers=(1, 2),
    litellm=True,
)
QUICK = Budget(
    latency_pairs=20,
    latency_rounds=2,
    load_requests=200,
    load_rounds=1,
    load_deadline_s=10.0,
    concurrency=8,
    streams=20,
    stream_chunks=8,
    chunk_delay_s=0.002,
    warmup=10,
    workers=(1,),
    litellm=False,
)


# --- the benchmark ------------------------------------------------------------------------


def _prompts(n: int, seed: int = 0) -> list[str]:
    from benchmarks.prompts import bucketed_prompts

    b = bucketed_prompts(n, 0, seed)
    pool = b["<=32"] + b["<=128"] + b["<=512"]
    random.Random(seed).shuffle(pool)
    return pool


async def _run_workers(
    upstream: Proc,
    budget: Budget,
    tmp: Path,
    scorer: str,
    model_dir: Path,
    workers: int,
    prompts: Sequence[str],
) -> dict[str, Any]:
    router = start_router(upstream, tmp, scorer, model_dir, workers)
    out: dict[str, Any] = {"workers": workers}
    try:
        if workers == budget.workers[0]:
            out["latency"] = await added_latency(router, upstream, prompts, budget)
            out["apis"] = await api_latency(
                router.port, upstream.port, UPSTREAM_MODEL, prompts,
                *_api_plan(budget),
            )  # fmt: skip
        out["throughput"] = await throughput(router, upstream, prompts, budget)
        if workers == budget.workers[0]:
            out["streams_router"] = await streams(
                router.url, "auto", budget.streams, budget.stream_chunks, 120
            )
            out["streams_direct"] = await streams(
                upstream.url, UPSTREAM_MODEL, budget.streams, budget.stream_chunks, 120
            )
    except Exception:
        print(f"router ({workers} workers) log tail:\n{router.log_tail()}", file=sys.stderr)
        raise
    finally:
        router.stop()
    out["log_rows"] = count_log_rows(tmp / f"decisions-{workers}.db")
    sent = sum(r["sent"] for r in out["throughput"]["router"]["rounds"])
    if "latency" in out:
        sent += budget.warmup + budget.latency_pairs * budget.latency_rounds
        pairs, rounds, warmup = _api_plan(budget)
        sent += len(API_NAMES) * (warmup + pairs * rounds)
        sent += out["streams_router"]["streams"]
    out["router_requests_sent"] = sent
    return out


def _api_plan(budget: Budget) -> tuple[int, int, int]:
    """-> (pairs, rounds, warm-up) of the per-API latency measurement."""
    return max(budget.latency_pairs // 2, 5), budget.latency_rounds, max(budget.warmup // 10, 3)


async def _traced_latency(
    upstream: Proc, budget: Budget, tmp: Path, scorer: str, model_dir: Path, prompts: Sequence[str]
) -> dict[str, Any] | None:
    """Added latency with ``ROUTER_OTEL=true`` (every span created and ended; no exporter
    configured, so what is measured is the router's own tracing work), one worker."""
    if importlib.util.find_spec("opentelemetry.sdk") is None:
        return None
    env = {"ROUTER_OTEL": "true", "OTEL_SDK_DISABLED": "false"}
    router = start_router(upstream, tmp, scorer, model_dir, 1, extra_env=env, tag="-otel")
    try:
        lat = await added_latency(router, upstream, prompts, budget)
    finally:
        router.stop()
    return {
        "added_us": {k: lat["added_us"][k] for k in ("p50", "p99")},
        "router_us": lat["router_us"],
    }


def _litellm(
    upstream: Proc, budget: Budget, tmp: Path, scorer: str, model_dir: Path, prompts: Sequence[str]
) -> dict[str, Any]:
    """The router (one worker) and the LiteLLM proxy side by side -> ``litellm_compare``'s
    results, or {"skipped": why} when LiteLLM cannot be installed here."""
    from benchmarks import litellm_compare

    python, why = litellm_compare.litellm_python(common.REPO_ROOT / ".cache" / "bench")
    if python is None:
        print(f"bench_proxy: LiteLLM not measured: {why}", file=sys.stderr)
        return {"skipped": why}
    router = start_router(upstream, tmp, scorer, model_dir, 1, tag="-litellm")
    try:
        plan = litellm_compare.FULL_PLAN
        return litellm_compare.compare(
            python, router.port, upstream.url, upstream.port, tmp, plan, prompts,
            budget.stream_chunks,
        )  # fmt: skip
    finally:
        router.stop()


def run(budget: Budget, model_dir: Path, baseline_ref: str | None = None) -> dict[str, Any]:
    from router_service.scoring import load_scorer

    _, error = load_scorer("learned", model_dir, log=False)
    scorer_kind = "learned" if error is None else "heuristic"
    prompts = _prompts(max(budget.latency_pairs, 200))
    t0 = time.perf_counter()
    upstream = start_upstream(budget.stream_chunks, budget.chunk_delay_s)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
            runs = [
                asyncio.run(
                    _run_workers(upstream, budget, Path(tmp), scorer_kind, model_dir, w, prompts)
                )
                for w in budget.workers
            ]
            traced = asyncio.run(
                _traced_latency(upstream, budget, Path(tmp), scorer_kind, model_dir, prompts)
            )
            litellm = (
                _litellm(upstream, budget, Path(tmp), scorer_kind, model_dir, prompts)
                if budget.litellm
                else None
            )
            # The heuristic A/B runs the same scorer kind on both sides, so it measures the
            # request path alone; the learned one adds the change of model (each router
            # serves its own committed model, which cannot load across versions).
            ab_kinds = dict.fromkeys(("heuristic", scorer_kind)) if baseline_ref else {}
            ab_runs = [
                baseline_router.run_ab(
                    str(baseline_ref),
                    upstream,
                    Path(tmp),
                    kind,
                    model_dir,
                    prompts,
                    budget,
                    added_latency,
                    throughput,
                )
                for kind in ab_kinds
            ]
    finally:
        upstream.stop()
    first = runs[0]
    return {
        "scorer": scorer_kind,
        "scorer_fallback_reason": error,
        "targets": {
            "added_p50_ms": TARGET_ADDED_P50_MS,
            "added_p99_ms": TARGET_ADDED_P99_MS,
            "rps": TARGET_RPS,
        },
        "latency": first["latency"],
        "latency_otel": traced,
        "apis": first["apis"],
        "litellm": litellm,
        "ab_baselines": ab_runs,
        "streams_router": first["streams_router"],
        "streams_direct": first["streams_direct"],
        "throughput": {f"workers_{r['workers']}": r["throughput"] for r in runs},
        "log_rows": {
            f"workers_{r['workers']}": {
                "written": r["log_rows"],
                "requests": r["router_requests_sent"],
            }
            for r in runs
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


def markdown(results: Mapping[str, Any], png: str | None) -> str:
    lat = results["latency"]
    ms = 1000.0
    rows = [
        [
            name,
            common.fmt(lat[f"{name}_us"]["p50_median_of_rounds"] / ms, 3),
            common.fmt(lat[f"{name}_us"]["p99_median_of_rounds"] / ms, 3),
            lat[f"{name}_us"]["pooled"]["n"],
        ]
        for name in ("direct", "router")
    ]
    added = lat["added_us"]
    rows.append(
        [
            "**added by the router**",
            f"**{added['p50'] / ms:.3f}** (target ≤ {TARGET_ADDED_P50_MS:g})",
            f"**{added['p99'] / ms:.3f}** (target ≤ {TARGET_ADDED_P99_MS:g})",
            "",
        ]
    )
    traced = results.get("latency_otel")
    if traced:
        on = traced["added_us"]

        def vs_off(q: str) -> str:
            return f"{on[q] / ms:.3f} ({common.fmt_ratio(common.ratio(on[q], added[q]))} off)"

        label = "added with tracing on (`ROUTER_OTEL=true`, separate run)"
        rows.append([label, vs_off("p50"), vs_off("p99"), ""])
    tp_rows = []
    for key, tp in results["throughput"].items():
        for name in ("direct", "router"):
            t = tp[name]
            lat_p50 = np.median([r["latency_us"].get("p50", np.nan) for r in t["rounds"]]) / ms
            lat_p99 = np.median([r["latency_us"].get("p99", np.nan) for r in t["rounds"]]) / ms
            tp_rows.append(
                [
                    key.replace("workers_", ""),
                    name,
                    f"{t['rps_median']:,.0f}",
                    f"{t['rps_min']:,.0f}–{t['rps_max']:,.0f}",
                    common.fmt(float(lat_p50), 2),
                    common.fmt(float(lat_p99), 2),
                    t["errors"],
                    common.fmt(tp.get("router_cpu_us_per_request_median"), 0)
                    if name == "router"
                    else "",
                ]
            )
    sr, sd = results["streams_router"], results["streams_direct"]
    stream_rows = [
        [
            name,
            s["streams"],
            s["chunks_per_stream"],
            s["ok"],
            s["failed"],
            common.fmt(s["first_chunk_s"].get("p50", float("nan")) * ms, 1),
            common.fmt(s["first_chunk_s"].get("p99", float("nan")) * ms, 1),
            common.fmt(s["wall_s"], 2),
        ]
        for name, s in (("direct", sd), ("router", sr))
    ]
    b = results.get("_budget", {})
    parts = [
        f"Router (`learned-router serve`, scorer `{results['scorer']}`, decision log ON in "
        f"SQLite) vs the same requests sent straight to the fake upstream, all on this "
        f"2-core machine (router, upstream and load generator share the cores).",
        "",
        f"**Added latency**, one request at a time (ms; per-round p50/p99, median over "
        f"{len(added['p50_rounds'])} rounds):",
        "",
        common.md_table(["path", "p50 ms", "p99 ms", "requests"], rows),
        "",
        f"**Throughput**, non-streaming, {b.get('concurrency', '?')} concurrent keep-alive "
        f"clients (target ≥ {TARGET_RPS:,.0f} req/s):",
        "",
        common.md_table(
            [
                "router workers",
                "path",
                "req/s (median)",
                "req/s range",
                "p50 ms",
                "p99 ms",
                "errors",
                "router CPU µs/request",
            ],
            tp_rows,
        ),
        "",
        "**Concurrent streams**, every chunk checked in order, then `[DONE]`:",
        "",
        common.md_table(
            [
                "path",
                "streams",
                "chunks each",
                "ok",
                "failed",
                "first chunk p50 ms",
                "first chunk p99 ms",
                "wall s",
            ],
            stream_rows,
        ),
        "",
        "Decision-log rows written / requests sent to the router: "
        + ", ".join(
            f"{k.replace('_', ' ')}: {v['written']} / {v['requests']}"
            for k, v in results["log_rows"].items()
        )
        + ".",
    ]
    from benchmarks import litellm_compare

    for extra in (
        api_markdown(results.get("apis")),
        litellm_compare.markdown(results.get("litellm")),
        *(baseline_router.markdown(ab) for ab in results.get("ab_baselines", [])),
    ):
        if extra:
            parts += ["", extra]
    if png:
        parts += ["", f"![proxy latency and throughput]({png})"]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    from router_service.scoring import DEFAULT_MODEL_DIR

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_args(parser)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument(
        "--no-litellm", action="store_true", help="skip the LiteLLM proxy comparison"
    )
    parser.add_argument(
        "--baseline-ref",
        default=API_BASELINE_REF,
        help="also A/B chat latency + throughput against the router at this git ref "
        "(default: the router before the Responses/Messages APIs; 'none' skips it)",
    )
    ns = parser.parse_args(argv)
    args = common.bench_args(ns)
    budget = QUICK if args.quick else FULL
    if ns.no_litellm:
        budget = dataclasses.replace(budget, litellm=False)
    ref = None if str(ns.baseline_ref).lower() == "none" else ns.baseline_ref
    results = run(budget, ns.model_dir, ref)
    rounds = results["latency"].pop("_rounds")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    png = args.out_dir / f"{NAME}.png"
    from benchmarks.plots import proxy_figure

    proxy_figure(rounds, results["throughput"], png)
    doc = common.envelope(NAME, results, params=asdict(budget), quick=args.quick)
    link = common.relative_link(png, args.markdown) if args.markdown else None
    common.publish(NAME, doc, markdown({**results, "_budget": asdict(budget)}, link), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
