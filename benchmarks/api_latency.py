"""A running router + the fake upstream -> added latency of each client API (one part of
``bench_proxy``).

The router speaks three wire formats and turns each into one internal chat request before
scoring, planning and forwarding (``router_service.api.run``). One request at a time, with
the same prompt: chat completions, the Responses API and Anthropic Messages through the
router, and chat completions straight to the upstream (the baseline every API is charged
against: all three end as one chat call upstream), in a rotating order, several rounds.
Added p50/p99 = the API's p50/p99 minus direct's in the same round, median over rounds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import common
from benchmarks.httpload import Target, encode_request, rotating_rounds

HOST = "127.0.0.1"

MakeBody = Callable[[str], dict[str, Any]]
# name -> (path, body for a prompt, what a good answer contains)
APIS: dict[str, tuple[str, MakeBody, bytes]] = {
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

    def target(port: int, path: str, make: MakeBody, marker: bytes) -> Target:
        return (
            port,
            lambda p: encode_request(HOST, port, path, make(p)),
            lambda r: r.status == 200 and marker in r.body,
        )

    targets = {name: target(router_port, *api) for name, api in APIS.items()}
    chat_path, chat_body, chat_marker = APIS["chat"]
    targets["direct"] = target(
        upstream_port,
        chat_path,
        lambda p: {**chat_body(p), "model": upstream_model},
        chat_marker,
    )
    samples, errors = await rotating_rounds(HOST, targets, prompts, pairs, rounds, warmup)
    summary, added = common.added_over(samples, "direct")
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
