"""The processes of ``bench_proxy``: stream shape -> the fake upstream; the upstream and a
source tree -> a running router (``learned-router serve``, decision log in SQLite); a pid ->
the CPU time it and its children used."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmarks import common

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and all its descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        p = int(entry.name)
        children.setdefault(int(fields[1]), []).append(p)
        stats[p] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, 0.0)
        todo += children.get(p, [])
    return total


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    port: int
    log: Path | None = None

    def log_tail(self, chars: int = 3000) -> str:
        if self.log is None or not self.log.is_file():
            return ""
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        if self.popen.stdin:
            self.popen.stdin.close()


def start_upstream(stream_chunks: int, chunk_delay_s: float) -> Proc:
    cmd = [sys.executable, "-m", "benchmarks.upstream", "--host", HOST, "--port", "0"]
    cmd += ["--stream-chunks", str(stream_chunks), "--chunk-delay", str(chunk_delay_s)]
    popen = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=common.REPO_ROOT
    )
    assert popen.stdout is not None
    line = popen.stdout.readline().strip()
    if not line.startswith("PORT "):
        popen.kill()
        raise RuntimeError(f"fake upstream did not start (said {line!r})")
    return Proc(popen, int(line.split()[1]))


def write_policy(path: Path, upstream_url: str) -> None:
    """Every tier -> the fake upstream (no API keys needed, so all are enabled)."""
    timeouts = {"connect": 2.0, "first_byte": 30.0, "idle": 30.0, "total": 120.0}
    tiers = {
        tier: {
            "backends": [
                {
                    "name": f"fake-{tier}",
                    "type": "openai",
                    "base_url": f"{upstream_url}/v1",
                    "model": f"{tier}-model",
                    "timeouts": timeouts,
                    "max_connections": 512,
                }
            ]
        }
        for tier in ("local", "primary", "strong")
    }
    path.write_text(yaml.safe_dump({"tiers": tiers}), encoding="utf-8")


def _ready(port: int) -> bool:
    """The router answers ``GET /v1/models`` with 200 (a worker is serving, not just bound)."""
    import httpx

    try:
        return httpx.get(f"http://{HOST}:{port}/v1/models", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def start_router(
    upstream: Proc,
    tmp: Path,
    scorer: str,
    model_dir: Path,
    workers: int,
    timeout: float = 60.0,
    extra_env: Mapping[str, str] | None = None,
    tag: str = "",
    source: Path | None = None,
) -> Proc:
    """``learned-router serve`` on a free port, decision log in SQLite under ``tmp``.
    ``source``: a source tree to run instead of this one (its ``router_service`` first on
    ``PYTHONPATH``, and the working directory), with this venv's python."""
    policy = tmp / "policy.yaml"
    write_policy(policy, upstream.url)
    port = free_port()
    cmd = [sys.executable, "-m", "router_service.cli", "serve", "--host", HOST, "--port", str(port)]
    cmd += ["--policy", str(policy), "--scorer", scorer, "--model-dir", str(model_dir)]
    cmd += ["--workers", str(workers), "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["ROUTER_SQLITE_PATH"] = str(tmp / f"decisions-{workers}{tag}.db")
    if source is not None:
        env["PYTHONPATH"] = str(source)
    env.update(extra_env or {})
    log = (tmp / f"router-{workers}{tag}.log").open("w")
    popen = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=source or common.REPO_ROOT,
    )
    proc = Proc(popen, port, tmp / f"router-{workers}{tag}.log")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"router exited: {proc.log_tail(2000)}")
        if _ready(port):
            return proc
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError("router did not start listening in time")
