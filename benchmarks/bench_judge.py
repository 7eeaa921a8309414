"""Judge throughput: ``training.loop.judge.run_judge`` against a scripted loopback judge.

A decision log (SQLite, temp dir) is filled with real prompts; a judge server on 127.0.0.1
answers every grading request with ``Rating: [[N]]`` after a fixed simulated latency (a
real judge model takes seconds; the point is how well the client overlaps calls). The job
is run at concurrency 1, 8 and 32 and reports requests judged per second, judge calls per
second and the wall time, with the SQLite feedback writes included.

    python -m benchmarks.bench_judge [--quick] [--latency-ms 50 500]"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from benchmarks.common import add_common_args, bench_args, envelope, fmt, md_table, publish
from benchmarks.prompts import real_prompts
from router_service.logstore import DecisionLog, LogRow, create_decision_log
from router_service.policy import BackendConfig, Price, ResolvedBackend, Timeouts
from training.loop.judge import JudgeOptions, Priced, run_judge

NAME = "judge"
CONCURRENCY = (1, 8, 32)


def _serve(latency_s: float, conn: Any) -> None:
    """Child process: an OpenAI-compatible judge that rates everything 7 after ``latency_s``."""
    body = orjson.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "bench-judge",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Fine.\nRating: [[7]]"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 600, "completion_tokens": 30, "total_tokens": 630},
        }
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await asyncio.sleep(latency_s)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it each response's second write waits for
    # the client's delayed ACK (~40 ms on Linux), which would dominate the numbers.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    conn.send(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio")
    uvicorn.Server(config).run(sockets=[sock])


class JudgeServer:
    """The scripted judge in its own process (so it does not share the client's GIL)."""

    def __init__(self, latency_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(latency_s, child), daemon=True)
        self.process.start()
        if not parent.poll(60):
            raise RuntimeError("judge server did not start")
        self.port = int(parent.recv())
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(timeout=10)


def target(url: str, model: str) -> Priced:
    config = BackendConfig(
        name="bench-judge",
        type="openai",
        base_url=f"{url}/v1",
        model=model,
        timeouts=Timeouts(connect=5, first_byte=60, idle=60, total=60),
        price=Price(input_per_1m=2.5, output_per_1m=10.0),
        max_connections=64,
    )
    return Priced.of(ResolvedBackend("strong", config, None, True, None))  # as the CLI builds it


def seed_log(path: Path, n: int) -> None:
    prompts = real_prompts()
    log = create_decision_log(None, path)
    asyncio.run(log.start())
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    try:
        for i in range(n):
            log.record_sync(
                LogRow(
                    request_id=f"bench-{i}",
                    created_at=t0 + timedelta(seconds=i),
                    messages=[{"role": "user", "content": prompts[i % len(prompts)]}],
                    tier="local",
                    intent="knowledge_qa",
                    answer="A plausible answer of moderate length. " * 8,
                )
            )
    finally:
        log.close_sync()


def one_latency(db: Path, latency_ms: float, rounds: int) -> dict[str, Any]:
    """Every concurrency against one judge latency; each worker judges ``rounds`` requests,
    so the ideal wall time is ``rounds x latency`` at every concurrency."""
    server = JudgeServer(latency_ms / 1000.0)
    out: dict[str, Any] = {}
    try:
        for c in CONCURRENCY:
            log = create_decision_log(None, db)
            judge = target(f"http://127.0.0.1:{server.port}", f"bench-{latency_ms:g}ms-c{c}")
            opts = JudgeOptions(concurrency=c, max_count=c * rounds, progress=False)

            async def go(
                log: DecisionLog = log, judge: Priced = judge, opts: JudgeOptions = opts
            ) -> Any:
                try:
                    return await run_judge(log, judge, opts)
                finally:
                    await judge.backend.aclose()

            summary = asyncio.run(go())
            log.close_sync()
            out[f"concurrency_{c}"] = {
                "concurrency": c,
                "requests": summary.ok + summary.failed,
                "failed": summary.failed,
                "seconds": summary.elapsed_s,
                "judged_per_s": summary.judged_per_s,
                "calls_per_s": summary.calls / summary.elapsed_s,
                "ideal_per_s": c / (latency_ms / 1000.0),
                "estimated_cost_usd": summary.cost_usd,
            }
    finally:
        server.stop()
    return out


def run(quick: bool, latencies_ms: list[float]) -> dict[str, Any]:
    rounds = 5 if quick else 20
    latencies = [5.0] if quick else latencies_ms
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "log.db"
        seed_log(db, max(CONCURRENCY) * rounds)
        return {
            "rounds_per_worker": rounds,
            "by_latency_ms": {f"{ms:g}": one_latency(db, ms, rounds) for ms in latencies},
        }


def markdown(doc: dict[str, Any]) -> str:
    res = doc["results"]
    rows = [
        [
            f"{ms} ms",
            r["concurrency"],
            r["requests"],
            fmt(r["seconds"], 2),
            fmt(r["judged_per_s"], 1),
            fmt(r["ideal_per_s"], 0),
            r["failed"],
        ]
        for ms, runs in res["by_latency_ms"].items()
        for r in runs.values()
    ]
    return (
        "`learned-router judge` (asyncio, the router's keep-alive HTTP pool, feedback rows "
        "written to SQLite) against a "
        "scripted judge in another process on 127.0.0.1 that answers after a fixed latency. "
        "*Ideal* is concurrency / latency. At 50 ms the client's own cost per request "
        "(prompt, HTTP, parse, write) is the limit; at realistic judge latencies the job "
        "scales with concurrency.\n\n"
        + md_table(
            [
                "judge latency",
                "concurrency",
                "requests",
                "seconds",
                "judged / s",
                "ideal / s",
                "failed",
            ],
            rows,
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[50.0, 500.0])
    ns = parser.parse_args(argv)
    args = bench_args(ns)
    results = run(args.quick, list(ns.latency_ms))
    params = {"concurrency": list(CONCURRENCY), "latency_ms": list(ns.latency_ms)}
    doc = envelope(NAME, results, params=params, quick=args.quick)
    publish(NAME, doc, markdown(doc), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
