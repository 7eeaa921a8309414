"""Benchmark (slow): latency of ``await DecisionLog.record()`` with 1 and 64 concurrent
writers, i.e. the group-commit cost a response pays before it completes.

    pytest -m slow -s tests/test_logstore_bench.py
    source .ci/postgres.sh && pytest -m slow -s tests/test_logstore_bench.py   # + PostgreSQL

Prints p50/p99 per case; asserts only that concurrent writers share commits."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from router_service.logstore import LogRow, create_decision_log, metadata

PG_URL = os.environ.get("ROUTER_TEST_POSTGRES_URL")


def typical_row(i: int) -> LogRow:
    question = "Explain how transformers use attention, in three short paragraphs. " * 4
    return LogRow(
        f"bench-{i}",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": question},
        ],
        intent="knowledge_qa",
        intent_confidence=0.9,
        strong_win_rate=0.3,
        tier="primary",
        reason="knowledge_qa: 0.15 <= strong_win_rate 0.300 < 0.4",
        scorer="learned",
        backend="openai-mini",
        model="gpt-4o-mini",
        status=200,
        decision_us=150.0,
        total_ms=800.0,
        prompt_tokens=60,
        completion_tokens=220,
        answer="A transformer is a neural network that ... " * 20,
        extra={"n": 1},
    )


async def measure(url: str | None, path: Path, writers: int, rows: int) -> dict[str, float]:
    log = create_decision_log(url, path)
    await log.start()
    await log.record(typical_row(-1))  # warm up: schema, connection
    latencies: list[float] = []

    async def writer(w: int) -> None:
        for k in range(rows // writers):
            start = time.perf_counter()
            await log.record(typical_row(w * 1_000_000 + k))
            latencies.append((time.perf_counter() - start) * 1e6)

    t0 = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - t0
    stats = log.stats()
    await log.close()
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return {
        "p50_us": q(0.50),
        "p99_us": q(0.99),
        "rows_per_s": len(latencies) / elapsed,
        "avg_batch": stats["rows_written"] / max(1, stats["batches"]),  # type: ignore[operator]
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "backend",
    ["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.skipif(
        not PG_URL, reason="ROUTER_TEST_POSTGRES_URL is not set")])],
)  # fmt: skip
def test_record_latency(backend: str, tmp_path: Path) -> None:
    url = PG_URL if backend == "postgres" else None
    if url:
        engine = sa.create_engine(url)
        metadata.drop_all(engine)
        engine.dispose()
    results = {}
    for writers, rows in ((1, 2_000), (64, 20_000)):
        r = asyncio.run(measure(url, tmp_path / f"bench{writers}.db", writers, rows))
        results[writers] = r
        print(
            f"\n{backend} writers={writers:3d}: record() p50 {r['p50_us']:7.0f} us  "
            f"p99 {r['p99_us']:7.0f} us  {r['rows_per_s']:7.0f} rows/s  "
            f"avg rows/commit {r['avg_batch']:.1f}"
        )
        if url:
            engine = sa.create_engine(url)
            metadata.drop_all(engine)
            engine.dispose()
    assert results[1]["avg_batch"] == 1.0
    assert results[64]["avg_batch"] > 8  # concurrent requests share commits
