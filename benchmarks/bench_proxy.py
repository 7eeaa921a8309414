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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks import baseline_router, common
from benchmarks.api_latency import APIS as API_NAMES
from benchmarks.api_latency import api_latency
from benchmarks.api_latency import markdown as api_markdown
from benchmarks.httpload import Connection, Response, closed_loop, encode_request
from benchmarks.proxy_procs import HOST, Proc, cpu_seconds, start_router, start_upstream
from benchmarks.proxy_procs import free_port as free_port  # litellm_compare imports it here
from benchmarks.upstream import stream_piece

NAME = "proxy"
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0
TARGET_RPS = 1000.0
UPSTREAM_MODEL = "fake-model"
# The router just before the Responses and Messages APIs landed (a5b26fd^): chat must not
# have slowed by more than 5% since (issue 9), measured against it in the same run.
API_BASELINE_REF = "9b2ba0e3785b5a674307954dc7793bf083916030"


@dataclass(frozen=True)
class Budget:
    latency_pairs: int  # sequential router/direct pairs per round
    latency_rounds: int
    load_requests: int  # per throughput round
    load_rounds: int
    load_deadline_s: float
    concurrency: int
    streams: int
    stream_chunks: int
    chunk_delay_s: float
    warmup: int
    workers: tuple[int, ...]
    litellm: bool  # also measure the LiteLLM proxy (benchmarks.litellm_compare)


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


# --- measurements -------------------------------------------------------------------------


def _ok(resp: Response) -> bool:
    return resp.status == 200 and b'"choices"' in resp.body


def chat_body(prompt: str, model: str, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "stream": stream}


async def added_latency(
    router: Proc, upstream: Proc, prompts: Sequence[str], budget: Budget
) -> dict[str, Any]:
    """Sequential pairs (router, direct) with the same prompt, order alternating per pair."""
    r_conn = await Connection(HOST, router.port).open()
    d_conn = await Connection(HOST, upstream.port).open()
    rounds: dict[str, list[list[float]]] = {"router": [], "direct": []}
    diffs: list[float] = []
    errors = 0
    try:
        for i in range(budget.warmup):
            p = prompts[i % len(prompts)]
            await r_conn.send(
                encode_request(HOST, router.port, "/v1/chat/completions", chat_body(p, "auto"))
            )
        for r in range(budget.latency_rounds):
            got: dict[str, list[float]] = {"router": [], "direct": []}
            for i in range(budget.latency_pairs):
                p = prompts[(r * budget.latency_pairs + i) % len(prompts)]
                reqs = {
                    "router": (
                        r_conn,
                        encode_request(
                            HOST, router.port, "/v1/chat/completions", chat_body(p, "auto")
                        ),
                    ),
                    "direct": (
                        d_conn,
                        encode_request(
                            HOST,
                            upstream.port,
                            "/v1/chat/completions",
                            chat_body(p, UPSTREAM_MODEL),
                        ),
                    ),
                }
                order = ("router", "direct") if i % 2 == 0 else ("direct", "router")
                t = {}
                for name in order:
                    conn, raw = reqs[name]
                    t0 = time.perf_counter_ns()
                    resp = await conn.send(raw)
                    t[name] = (time.perf_counter_ns() - t0) / 1000.0
                    errors += not _ok(resp)
                got["router"].append(t["router"])
                got["direct"].append(t["direct"])
                diffs.append(t["router"] - t["direct"])
            rounds["router"].append(got["router"])
            rounds["direct"].append(got["direct"])
    finally:
        await r_conn.close()
        await d_conn.close()
    summary = common.rounds_summary(rounds, "direct")
    router_s, direct_s = summary["router"], summary["direct"]
    added = {
        q: router_s[f"{q}_median_of_rounds"] - direct_s[f"{q}_median_of_rounds"]
        for q in ("p50", "p99")
    }
    per_round_added = {
        q: [
            float(np.percentile(a, int(q[1:])) - np.percentile(b, int(q[1:])))
            for a, b in zip(rounds["router"], rounds["direct"], strict=True)
        ]
        for q in ("p50", "p99")
    }
    return {
        "router_us": router_s,
        "direct_us": direct_s,
        "added_us": {
            "p50": added["p50"],
            "p99": added["p99"],
            "p50_rounds": per_round_added["p50"],
            "p99_rounds": per_round_added["p99"],
            "paired_difference": common.summarize(diffs),
        },
        "meets_p50_target": added["p50"] <= TARGET_ADDED_P50_MS * 1000,
        "meets_p99_target": added["p99"] <= TARGET_ADDED_P99_MS * 1000,
        "errors": errors,
        "_rounds": rounds,
    }


async def throughput(
    router: Proc, upstream: Proc, prompts: Sequence[str], budget: Budget
) -> dict[str, Any]:
    """Closed-loop load, router and direct rounds alternating; req/s and CPU per process."""
    targets = {
        "router": (router, "auto"),
        "direct": (upstream, UPSTREAM_MODEL),
    }
    out: dict[str, Any] = {k: {"rounds": []} for k in targets}
    for r in range(budget.load_rounds):
        for name in ("router", "direct") if r % 2 == 0 else ("direct", "router"):
            proc, model = targets[name]
            reqs = [
                encode_request(HOST, proc.port, "/v1/chat/completions", chat_body(p, model))
                for p in prompts[:500]
            ]
            warm = await closed_loop(
                HOST, proc.port, reqs, budget.concurrency, budget.warmup, 30, _ok
            )
            cpu0 = {
                "router": cpu_seconds(router.popen.pid),
                "upstream": cpu_seconds(upstream.popen.pid),
            }
            self0 = time.process_time()
            res = await closed_loop(
                HOST,
                proc.port,
                reqs,
                budget.concurrency,
                budget.load_requests,
                budget.load_deadline_s,
                _ok,
            )
            cpu = {
                "router": cpu_seconds(router.popen.pid) - cpu0["router"],
                "upstream": cpu_seconds(upstream.popen.pid) - cpu0["upstream"],
                "load_generator": time.process_time() - self0,
            }
            out[name]["rounds"].append(
                {
                    "rps": res.rps,
                    "sent": res.sent + warm.sent,  # warm-up included
                    "completed": res.completed,
                    "errors": res.errors,
                    "first_error": res.first_error,
                    "elapsed_s": res.elapsed_s,
                    "latency_us": common.summarize(res.latencies_us),
                    "cpu_seconds": cpu,
                    "router_cpu_us_per_request": (
                        cpu["router"] / res.completed * 1e6
                        if name == "router" and res.completed
                        else None
                    ),
                }
            )
    for name in targets:
        rs = out[name]["rounds"]
        out[name]["rps_median"] = float(np.median([x["rps"] for x in rs]))
        out[name]["rps_min"] = float(np.min([x["rps"] for x in rs]))
        out[name]["rps_max"] = float(np.max([x["rps"] for x in rs]))
        out[name]["errors"] = int(sum(x["errors"] for x in rs))
    per_req = [
        x["router_cpu_us_per_request"]
        for x in out["router"]["rounds"]
        if x["router_cpu_us_per_request"]
    ]
    out["router_cpu_us_per_request_median"] = float(np.median(per_req)) if per_req else None
    out["rps_ratio_router_to_direct"] = common.ratio(
        out["router"]["rps_median"], out["direct"]["rps_median"]
    )
    out["meets_target"] = out["router"]["rps_median"] >= TARGET_RPS
    return out


async def streams(base_url: str, model: str, n: int, chunks: int, timeout: float) -> dict[str, Any]:
    """``n`` concurrent streamed answers; each must carry pieces 0..chunks-1 in order + [DONE]."""
    import httpx

    expected = [stream_piece(i) for i in range(chunks)]
    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)

    async def one(client: httpx.AsyncClient, i: int) -> tuple[bool, float, float, str | None]:
        t0 = time.perf_counter()
        first = None
        pieces: list[str] = []
        done = False
        body = chat_body(f"Stream {i}: count for me, please.", model, stream=True)
        async with client.stream("POST", f"{base_url}/v1/chat/completions", json=body) as resp:
            if resp.status_code != 200:
                return False, 0.0, 0.0, f"HTTP {resp.status_code}"
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if first is None:
                    first = time.perf_counter() - t0
                if data == "[DONE]":
                    done = True
                    break
                obj = orjson.loads(data)
                for choice in obj.get("choices", []):
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        pieces.append(text)
        total = time.perf_counter() - t0
        if pieces != expected or not done:
            bad = next(
                (j for j, (a, b) in enumerate(zip(pieces, expected, strict=False)) if a != b), None
            )
            return (
                False,
                first or 0.0,
                total,
                f"got {len(pieces)} pieces (first mismatch {bad}), done={done}",
            )
        return True, first or 0.0, total, None

    async with httpx.AsyncClient(limits=limits, timeout=timeout) as client:
        start = time.perf_counter()
        results = await asyncio.wait_for(
            asyncio.gather(*(one(client, i) for i in range(n)), return_exceptions=True), timeout
        )
        wall = time.perf_counter() - start
    ok = [r for r in results if not isinstance(r, BaseException) and r[0]]
    failures = [
        repr(r) if isinstance(r, BaseException) else r[3]
        for r in results
        if isinstance(r, BaseException) or not r[0]
    ]
    return {
        "streams": n,
        "chunks_per_stream": chunks,
        "ok": len(ok),
        "failed": len(failures),
        "failures_sample": failures[:5],
        "wall_s": wall,
        "first_chunk_s": common.summarize([r[1] for r in ok]),
        "stream_s": common.summarize([r[2] for r in ok]),
    }


def count_log_rows(db: Path) -> int | None:
    try:
        from router_service.logstore import create_decision_log

        log = create_decision_log(None, db)
        try:
            return int(log.count())
        finally:
            log.close_sync()
    except Exception:
        return None


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
