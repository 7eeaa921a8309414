"""One router and its upstream, both running -> the measurements ``bench_proxy`` reports.

* ``added_latency``: sequential (router, direct) pairs with the same prompt, order alternating
  -> per-round p50/p99 of each path and of their difference;
* ``throughput``: ``concurrency`` keep-alive clients, router and direct rounds alternating
  -> req/s, latency under load and the CPU seconds each process used;
* ``streams``: concurrent streamed answers, every chunk checked in order, then ``[DONE]``
  -> ok/failed counts and first-chunk times;
* ``count_log_rows``: the decision log a router wrote -> its row count.

``Budget`` holds the request counts and deadlines of all three; every loop is bounded by both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks import common
from benchmarks.httpload import Connection, Response, closed_loop, encode_request
from benchmarks.proxy_procs import HOST, Proc, cpu_seconds
from benchmarks.upstream import stream_piece

TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 5.0
TARGET_RPS = 1000.0
UPSTREAM_MODEL = "fake-model"


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
