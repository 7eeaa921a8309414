"""Router overhead (slow; run with ``-m slow``): added latency versus calling the upstream
directly, and non-streaming throughput with decision logging on. Prints the numbers;
the bounds only catch gross regressions (shared CI machines are noisy)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

BODY = orjson.dumps(
    {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Write a haiku about the sea and explain its imagery."},
        ],
    }
)
ANSWER = orjson.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Waves fold into light."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 6, "total_tokens": 26},
    }
)
RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(ANSWER),
    ANSWER,
)


UPSTREAM = """
import asyncio, sys
RESPONSE = bytes.fromhex(sys.argv[1])
class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.buf = t, b""
    def data_received(self, data):
        self.buf += data
        while (i := self.buf.find(b"\\r\\n\\r\\n")) >= 0:
            head = self.buf[:i].lower()
            j = head.find(b"content-length:")
            n = int(head[j + 15:].split(b"\\r\\n")[0]) if j >= 0 else 0
            if len(self.buf) < i + 4 + n:
                return
            self.buf = self.buf[i + 4 + n:]
            self.t.write(RESPONSE)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
"""


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "router exited"
        assert time.monotonic() < deadline, "router did not start"
        time.sleep(0.05)


def _p50_ms(client: httpx.Client, url: str, n: int) -> float:
    for _ in range(50):
        client.post(url, content=BODY)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        client.post(url, content=BODY).raise_for_status()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


async def _throughput(url: str, seconds: float, concurrency: int) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as c:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                (await c.post(url, content=BODY)).raise_for_status()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


@contextlib.contextmanager
def _router(policy: Path, tmp_path: Path, **env_extra: str) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "ROUTER_SQLITE_PATH": str(tmp_path / f"log-{port}.db"), **env_extra}
    cmd = [sys.executable, "-m", "router_service.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--policy", str(policy), "--log-level", "warning"], env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_up(f"{url}/health", proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _wrk_rps(url: str, tmp_path: Path) -> float | None:
    """Requests/s measured by wrk (32 connections, 5 s), when wrk is installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    script = tmp_path / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()\n'
    )
    out = subprocess.run(
        [wrk, "-t1", "-c32", "-d5s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out.split("Requests/sec:")[1].split()[0])


@pytest.mark.slow
def test_router_overhead(tmp_path, capsys):
    """Upstream, router and load generator are separate processes (no shared GIL)."""
    up = subprocess.Popen([sys.executable, "-c", UPSTREAM, RESPONSE.hex()], stdout=subprocess.PIPE)
    try:
        assert up.stdout is not None
        base = f"http://127.0.0.1:{int(up.stdout.readline())}/v1"
        policy = tmp_path / "p.yaml"
        policy.write_text(
            "tiers:\n"
            + "".join(
                f"  {t}:\n    backends:\n      - {{name: {t}, type: openai, base_url: '{base}', "
                "model: m}\n"
                for t in ("local", "primary", "strong")
            )
        )
        results = {}
        with httpx.Client() as client:
            results["direct"] = _p50_ms(client, f"{base}/chat/completions", 500)
            for wait in ("true", "false"):
                with _router(policy, tmp_path, ROUTER_LOG_WAIT=wait) as url:
                    chat = f"{url}/v1/chat/completions"
                    results[f"routed log_wait={wait}"] = _p50_ms(client, chat, 500)
                    rps = _wrk_rps(chat, tmp_path)
                    if rps is None:
                        rps = asyncio.run(_throughput(chat, 5.0, 32))
                    results[f"req/s log_wait={wait}"] = rps
    finally:
        up.terminate()
        up.wait(timeout=20)
    with capsys.disabled():
        print("\nrouter overhead (one uvicorn worker, decision logging to SQLite):")
        for name, value in results.items():
            unit = "req/s" if name.startswith("req/s") else "ms p50"
            print(f"  {name:<24} {value:10.3f} {unit}")
    assert results["routed log_wait=true"] - results["direct"] < 10.0
    assert results["req/s log_wait=true"] > 100
