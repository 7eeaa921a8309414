"""A saturated local tier under load stays local (slow: ``pytest -m slow``).

400 concurrent requests hit a router whose local tier is a slow model (answers after 5 s)
with a llama.cpp-sized accept queue (backlog 8), so a burst of new connections overflows it
and the kernel drops SYNs; the connect timeout is 0.5 s. Router and upstreams are separate
processes (``learned-router serve``, ``benchmarks.upstream``), the client is httpx on
asyncio. Before saturation handling 40-48 of 400 such requests went to the cloud as
``connect_error``; now none may, and ``/health`` keeps answering."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from fakes.process import free_port, served

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
N = 400


def _upstream(*args: str) -> tuple[subprocess.Popen[str], int]:
    cmd = [sys.executable, "-m", "benchmarks.upstream", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == "PORT", line
    return proc, int(line[1])


@pytest.fixture
def router(tmp_path: Path) -> Iterator[str]:
    slow, slow_port = _upstream("--answer-delay", "5", "--backlog", "8")
    fast, fast_port = _upstream()
    timeouts = {"connect": 0.5, "first_byte": 30.0, "idle": 30.0, "total": 60.0}

    def tier(name: str, port: int) -> dict:
        url = f"http://127.0.0.1:{port}/v1"
        return {"backends": [{"name": name, "type": "openai", "base_url": url, "model": "m",
                              "timeouts": timeouts}]}  # fmt: skip

    policy = {
        "tiers": {
            "local": tier("slow-local", slow_port),
            "primary": tier("fast-primary", fast_port),
            "strong": tier("fast-strong", fast_port),
        }
    }
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["ROUTER_SQLITE_PATH"] = str(tmp_path / "decisions.db")
    cmd = [sys.executable, "-m", "router_service.cli", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--policy", str(tmp_path / "policy.yaml")]
    cmd += ["--scorer", "heuristic", "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    try:
        with served(cmd, url, env=env, cwd=REPO, log_path=tmp_path / "router.log"):
            yield url
    finally:
        for p in (slow, fast):
            p.terminate()
            p.wait(10)


def _sample_health(url: str, out: list[float], stop: threading.Event) -> None:
    """/health latencies from its own thread and connection (the load client's event loop
    is busy parsing hundreds of answers at once; timing /health on it would measure that)."""
    with httpx.Client(timeout=10) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            assert client.get(f"{url}/health").status_code == 200
            out.append(time.perf_counter() - t0)
            stop.wait(0.05)


async def _load(url: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=N + 16)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        return list(
            await asyncio.gather(
                *(client.post(f"{url}/v1/chat/completions", json=body) for _ in range(N))
            )
        )


def test_saturated_local_tier_never_spills_to_the_cloud(router: str) -> None:
    health: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_health, args=(router, health, stop))
    sampler.start()
    try:
        answers = asyncio.run(_load(router))
    finally:
        stop.set()
        sampler.join()
    assert [r.status_code for r in answers] == [200] * N
    spilled = [r.headers["x-router-fallback"] for r in answers if "x-router-fallback" in r.headers]
    assert spilled == [], spilled[:5]
    assert {r.headers["x-router-model"] for r in answers} == {"m"}
    assert {r.headers["x-router-tier"] for r in answers} == {"local"}
    health.sort()
    p50, p99 = health[len(health) // 2], health[int(len(health) * 0.99)]
    print(f"/health under load: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    # Probes never block it (stale-while-revalidate): it waited ~1.9 s on the saturated
    # backend's probe before. What remains is queueing behind the burst of 400 answers on a
    # 2-core machine that also runs the load generator (p99 ~130-160 ms here).
    assert p99 < 1.0, f"/health p99 {p99 * 1000:.0f} ms under load"
