"""A running router + the fake upstream -> added latency of each client API (one part of
``bench_proxy``).

The router speaks three wire formats and turns each into one internal chat request before
scoring, planning and forwarding (``router_service.api.run``). One request at a time, with
the same prompt: chat completions, the Responses API and Anthropic Messages through the
router, and chat completions straight to the upstream (the baseline every API is charged
against: all three end as one chat call upstream), in a rotating order, several rounds.
Added p50/p99 = the API's p50/p99 minus direct's in the same round, median over rounds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import common
from benchmarks.httpload import Connection, encode_request

HOST = "127.0.0.1"

# name -> (path, body for a prompt, what a good answer contains)
APIS: dict[str, tuple[str, Callable[[str], dict[str, Any]], bytes]] = {
    "chat": (
        "/v1/chat/completions",
        lambda p: {"model": "auto", "messages": [{"role": "user", "content": p}]},
        b'"choices"',
    ),
    "responses": ("/v1/responses", lambda p: {"model": "auto", "input": p}, b'"output"'),
    "messages": (
        "/v1/messages",
        lambda p: {
            "model": "auto",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": p}],
        },
        b'"content"',
    ),
}


async def api_latency(
    router_port: int, upstream_port: int, upstream_model: str, prompts: Sequence[str],
    pairs: int, rounds: int, warmup: int,
) -> dict[str, Any]:  # fmt: skip
    """-> {"us": per-target round summaries, "added_us": {api: {p50, p99}}, "errors"}."""
    ports = {name: router_port for name in APIS} | {"direct": upstream_port}
    conns = {n: await Connection(HOST, p).open() for n, p in ports.items()}

    def request(name: str, prompt: str) -> tuple[bytes, bytes]:
        if name == "direct":
            body = {"model": upstream_model, "messages": [{"role": "user", "content": prompt}]}
            return encode_request(HOST, upstream_port, "/v1/chat/completions", body), b'"choices"'
        path, make, marker = APIS[name]
        return encode_request(HOST, router_port, path, make(prompt)), marker

    names = list(ports)
    samples: dict[str, list[list[float]]] = {n: [] for n in names}
    errors = dict.fromkeys(names, 0)
    try:
        for i in range(warmup):
            for n in names:
                await conns[n].send(request(n, prompts[i % len(prompts)])[0])
        for r in range(rounds):
            got: dict[str, list[float]] = {n: [] for n in names}
            for i in range(pairs):
                prompt = prompts[(r * pairs + i) % len(prompts)]
                for n in names[i % len(names) :] + names[: i % len(names)]:
                    raw, marker = request(n, prompt)
                    t0 = time.perf_counter_ns()
                    resp = await conns[n].send(raw)
                    got[n].append((time.perf_counter_ns() - t0) / 1000.0)
                    errors[n] += not (resp.status == 200 and marker in resp.body)
            for n in names:
                samples[n].append(got[n])
    finally:
        for c in conns.values():
            await c.close()
    summary = common.rounds_summary(samples, "direct")
    added = {
        n: {
            q: summary[n][f"{q}_median_of_rounds"] - summary["direct"][f"{q}_median_of_rounds"]
            for q in ("p50", "p99")
        }
        for n in APIS
    }
    return {"us": summary, "added_us": added, "errors": errors, "pairs": pairs, "rounds": rounds}


def markdown(res: dict[str, Any] | None) -> str:
    """-> the per-API added-latency table ('' when it did not run)."""
    if not res:
        return ""
    ms = 1000.0
    rows = [
        [
            f"`{path}`" if n in APIS else "direct chat (baseline)",
            common.fmt(res["us"][n]["p50_median_of_rounds"] / ms, 3),
            common.fmt(res["us"][n]["p99_median_of_rounds"] / ms, 3),
            common.fmt(res["added_us"][n]["p50"] / ms, 3) if n in APIS else "–",
            common.fmt(res["added_us"][n]["p99"] / ms, 3) if n in APIS else "–",
            res["errors"][n],
        ]
        for n, path in [(n, APIS[n][0]) for n in APIS] + [("direct", "")]
    ]
    return "\n".join(
        [
            f"**Added latency per client API** (same router, one request at a time, the four "
            f"paths in rotating order with the same prompt, {res['rounds']} rounds of "
            f"{res['pairs']}; every API ends as one chat call upstream):",
            "",
            common.md_table(
                ["API", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms", "errors"], rows
            ),
        ]
    )
