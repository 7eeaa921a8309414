"""A saturated local tier under load stays local (slow: ``pytest -m slow``).

400 concurrent requests hit a router whose local tier is a slow model (answers after 5 s)
with a llama.cpp-sized accept queue (backlog 8), so a burst of new connections overflows it
and the kernel drops SYNs; the connect timeout is 0.5 s. Router and upstreams are separate
processes (``learned-router serve``, ``benchmarks.upstream``), the client is httpx on
asyncio. Before saturation handling 40-48 of 400 such requests went to the cloud as
``connect_error``; now none may, and ``/health`` answers under 100 ms at p99, on the main
port and on the probe listener (``ROUTER_PROBE_PORT``, ``router_service.probe_server``),
which the burst of answers on the event loop cannot starve."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
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
def router(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """-> (the router's URL, its probe listener's URL)."""
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
    probe_port = free_port()
    env["ROUTER_PROBE_PORT"] = str(probe_port)
    cmd = [sys.executable, "-m", "router_service.cli", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--policy", str(tmp_path / "policy.yaml")]
    cmd += ["--scorer", "heuristic", "--log-level", "warning"]
    url = f"http://127.0.0.1:{port}"
    try:
        with served(cmd, url, env=env, cwd=REPO, log_path=tmp_path / "router.log"):
            yield url, f"http://127.0.0.1:{probe_port}"
    finally:
        for p in (slow, fast):
            p.terminate()
            p.wait(10)


def _health_sampler(*urls: str) -> subprocess.Popen[str]:
    """/health latencies measured from a separate process (``fakes/health_sampler.py``)."""
    sampler = Path(__file__).parent / "fakes" / "health_sampler.py"
    proc = subprocess.Popen(
        [sys.executable, str(sampler), *urls], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


async def _load(url: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=N + 16)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        return list(
            await asyncio.gather(
                *(client.post(f"{url}/v1/chat/completions", json=body) for _ in range(N))
            )
        )


def _p50_p99(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def test_saturated_local_tier_never_spills_to_the_cloud(router: tuple[str, str]) -> None:
    url, probe_url = router
    sampler = _health_sampler(f"{url}/health", f"{probe_url}/health")
    try:
        answers = asyncio.run(_load(url))
    finally:
        out, _ = sampler.communicate("", timeout=30)
    latencies = json.loads(out)
    health, probe = latencies[f"{url}/health"], latencies[f"{probe_url}/health"]
    assert [r.status_code for r in answers] == [200] * N
    spilled = [r.headers["x-router-fallback"] for r in answers if "x-router-fallback" in r.headers]
    assert spilled == [], spilled[:5]
    assert {r.headers["x-router-model"] for r in answers} == {"m"}
    assert {r.headers["x-router-tier"] for r in answers} == {"local"}
    p50, p99 = _p50_p99(health)
    probe_p50, probe_p99 = _p50_p99(probe)
    print(f"/health under load: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    print(f"probe /health under load: p50 {probe_p50 * 1000:.1f} ms, p99 {probe_p99 * 1000:.1f} ms")
    # Backend probes never block /health (stale-while-revalidate): it waited ~1.9 s on the
    # saturated backend's probe before. What remains on the main port is queueing behind the
    # burst of answers on the event loop (p99 13-38 ms over five runs here, measured from
    # another process; a sampler thread inside this process, which also runs the load
    # generator, had read 50-230 ms); the probe listener answers from its own thread (p99
    # ~10 ms in the same runs) whatever the size of the burst.
    assert p99 < 0.1, f"/health p99 {p99 * 1000:.0f} ms under load"
    assert probe_p99 < 0.1, f"probe /health p99 {probe_p99 * 1000:.0f} ms under load"
