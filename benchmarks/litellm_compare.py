"""Fake upstream + the router + the LiteLLM proxy -> the same three measurements for both,
rounds alternating, beside the direct baseline (one part of ``bench_proxy``).

LiteLLM's proxy is the gateway most users of this project would otherwise run. It is not a
dependency: ``litellm_python`` installs ``litellm[proxy]`` into a venv of its own under the
cache directory (reused while it imports), and every caller gets a printed reason instead of
numbers when that cannot be done (offline, no wheel for this Python). The proxy runs with one
worker, the offline cost map, no database and one model (``auto`` -> the fake upstream
through its OpenAI provider), the router with one worker and the committed model; both in
front of the same upstream process.

* added latency: one request at a time, router / LiteLLM / direct in a rotating order with the
  same prompt, added p50/p99 = p50/p99 minus direct's, median over rounds;
* throughput: ``concurrency`` keep-alive clients for ``seconds`` per round (closed loop),
  router and LiteLLM rounds alternating;
* streaming: ``streams`` concurrent streamed answers each, time to the first chunk."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks import common
from benchmarks.httpload import Target, closed_loop, encode_request, rotating_rounds

SPEC = "litellm[proxy]"
MODEL = "auto"  # what clients ask both gateways for
# The bundled cost map instead of a fetch from GitHub at import time.
OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}


@dataclass(frozen=True)
class Plan:
    pairs: int  # sequential triples per latency round
    rounds: int
    seconds: float  # per throughput round
    concurrency: int
    streams: int


FULL_PLAN = Plan(pairs=150, rounds=3, seconds=15.0, concurrency=64, streams=50)
QUICK_PLAN = Plan(pairs=10, rounds=1, seconds=3.0, concurrency=8, streams=5)


def litellm_python(cache: Path, timeout: float = 900.0) -> tuple[Path | None, str | None]:
    """-> (the venv's python with ``litellm`` importable, None) or (None, why not)."""
    venv = cache / "litellm-venv"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import litellm.proxy.proxy_server"]

    def imports() -> bool:
        env = {**os.environ, **OFFLINE_ENV}
        return subprocess.run(probe, capture_output=True, env=env, timeout=120).returncode == 0

    if python.is_file() and imports():
        return python, None
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", SPEC]
        done = subprocess.run(pip, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"could not create the LiteLLM venv: {exc}"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        return None, f"pip install {SPEC} failed: {tail[0]}"
    if not imports():
        return None, f"{SPEC} installed but litellm.proxy does not import"
    return python, None


def litellm_version(python: Path) -> str | None:
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() or None


def start_litellm(python: Path, upstream_url: str, tmp: Path, port: int) -> subprocess.Popen[str]:
    """The proxy on ``port`` with one model, ``auto`` -> the upstream; -> its process once it
    answers ``/health/liveliness`` (raises with its log tail if it does not in 120 s)."""
    import httpx

    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": "openai/fake-model",
                    "api_base": f"{upstream_url}/v1",
                    "api_key": "sk-bench",
                },
            }
        ],
        "litellm_settings": {"drop_params": True, "telemetry": False},
        # No key on either side: the router runs without ROUTER_API_KEYS here too, and a
        # master key would add LiteLLM's auth path to every request. Loopback only.
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM", "DATABASE"))}
    env.update(OFFLINE_ENV)
    log = tmp / "litellm.log"
    bin_dir = python.parent
    cmd = [str(bin_dir / "litellm"), "--config", str(path), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--num_workers", "1"]
    with log.open("w") as out:
        popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"litellm exited: {log.read_text(errors='replace')[-2000:]}")
        url = f"http://127.0.0.1:{port}/health/liveliness"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return popen
        time.sleep(0.25)
    popen.kill()
    raise RuntimeError(f"litellm did not start: {log.read_text(errors='replace')[-2000:]}")


def _body(prompt: str, model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": prompt}]}


def _ok(resp: Any) -> bool:
    return bool(resp.status == 200 and b'"choices"' in resp.body)


async def added_latency(
    ports: dict[str, int], models: dict[str, str], prompts: Sequence[str], plan: Plan
) -> dict[str, Any]:
    """Sequential triples, the order rotating per triple -> per-target percentiles and the
    added p50/p99 against ``direct`` (median over rounds), errors per target."""

    def target(name: str) -> Target:
        port, model = ports[name], models[name]
        path = "/v1/chat/completions"
        return port, lambda p: encode_request("127.0.0.1", port, path, _body(p, model)), _ok

    targets = {name: target(name) for name in ports}
    # warm-up: connections, caches, the proxies' first-call paths
    samples, errors = await rotating_rounds(
        "127.0.0.1", targets, prompts, plan.pairs, plan.rounds, warmup=20
    )
    summary, added = common.added_over(samples, "direct")
    return {"us": summary, "added_us": added, "errors": errors}


async def throughput(
    ports: dict[str, int], models: dict[str, str], prompts: Sequence[str], plan: Plan
) -> dict[str, Any]:
    """Closed-loop rounds of ``plan.seconds`` per gateway, alternating -> req/s per round."""
    names = [n for n in ports if n != "direct"]
    out: dict[str, Any] = {n: {"rps": [], "errors": 0} for n in names}
    for r in range(plan.rounds):
        for n in names if r % 2 == 0 else names[::-1]:
            reqs = [
                encode_request("127.0.0.1", ports[n], "/v1/chat/completions", _body(p, models[n]))
                for p in prompts[:200]
            ]
            res = await closed_loop(
                "127.0.0.1", ports[n], reqs, plan.concurrency, 10**7, plan.seconds, _ok
            )
            out[n]["rps"].append(res.rps)
            out[n]["errors"] += res.errors
    for n in names:
        out[n]["rps_median"] = float(np.median(out[n]["rps"]))
    return out


async def first_chunks(
    urls: dict[str, str], models: dict[str, str], plan: Plan, chunks: int
) -> dict[str, Any]:
    """``plan.streams`` concurrent streams per target, targets in turn -> first-chunk times."""
    from benchmarks.proxy_load import streams

    out = {}
    for n, url in urls.items():
        res = await streams(url, models[n], plan.streams, chunks, 300)
        out[n] = {
            "ok": res["ok"],
            "failed": res["failed"],
            "failures_sample": res["failures_sample"],
            "first_chunk_ms": {
                q: v * 1000 for q, v in res["first_chunk_s"].items() if q in ("p50", "p99")
            },
        }
    return out


def compare(
    python: Path, router_port: int, upstream_url: str, upstream_port: int, tmp: Path, plan: Plan,
    prompts: Sequence[str], chunks: int,
) -> dict[str, Any]:  # fmt: skip
    """Start LiteLLM beside the running router and upstream, measure all three, stop it."""
    from benchmarks.proxy_load import UPSTREAM_MODEL
    from benchmarks.proxy_procs import free_port

    port = free_port()
    try:
        proc = start_litellm(python, upstream_url, tmp, port)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][:300]
        print(f"bench_proxy: LiteLLM not measured: {exc}", file=sys.stderr)
        return {"skipped": f"the LiteLLM proxy did not start: {reason}"}
    ports = {"router": router_port, "litellm": port, "direct": upstream_port}
    models = {"router": MODEL, "litellm": MODEL, "direct": UPSTREAM_MODEL}
    urls = {n: f"http://127.0.0.1:{p}" for n, p in ports.items()}
    try:
        latency = asyncio.run(added_latency(ports, models, prompts, plan))
        load = asyncio.run(throughput(ports, models, prompts, plan))
        ttft = asyncio.run(first_chunks(urls, models, plan, chunks))
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    r, lt = load["router"]["rps_median"], load["litellm"]["rps_median"]
    return {
        "litellm_version": litellm_version(python),
        "plan": plan.__dict__,
        "latency": latency,
        "throughput": load,
        "streams": ttft,
        "ratios": {
            "added_p50_litellm_to_router": common.ratio(
                latency["added_us"]["litellm"]["p50"], latency["added_us"]["router"]["p50"]
            ),
            "rps_router_to_litellm": common.ratio(r, lt),
            "first_chunk_p50_litellm_to_router": common.ratio(
                ttft["litellm"]["first_chunk_ms"].get("p50"),
                ttft["router"]["first_chunk_ms"].get("p50"),
            ),
        },
    }


def markdown(res: dict[str, Any] | None) -> str:
    """The comparison -> its BENCHMARKS.md paragraph and table ('' when it did not run)."""
    if not res:
        return ""
    if "skipped" in res:
        return f"**LiteLLM proxy**: not measured ({res['skipped']})."
    lat, load, ttft = res["latency"], res["throughput"], res["streams"]
    ms = 1000.0
    rows = []
    for n in ("direct", "router", "litellm"):
        added = lat["added_us"].get(n)
        rows.append(
            [
                f"`{n}`",
                common.fmt(lat["us"][n]["p50_median_of_rounds"] / ms, 3),
                common.fmt(lat["us"][n]["p99_median_of_rounds"] / ms, 3),
                "–" if added is None else common.fmt(added["p50"] / ms, 3),
                "–" if added is None else common.fmt(added["p99"] / ms, 3),
                "–" if n == "direct" else f"{load[n]['rps_median']:,.0f}",
                common.fmt(ttft[n]["first_chunk_ms"].get("p50"), 1),
                f"{ttft[n]['ok']}/{ttft[n]['ok'] + ttft[n]['failed']}",
                lat["errors"][n] + (load[n]["errors"] if n in load else 0),
            ]
        )
    plan, ratios = res["plan"], res["ratios"]
    return "\n".join(
        [
            f"**Against the LiteLLM proxy** (`litellm[proxy]` {res['litellm_version']}, one "
            "worker, offline cost map, no database; the router with one worker; same fake "
            "upstream, same prompts, latency triples in rotating order over "
            f"{plan['rounds']} rounds of {plan['pairs']}, throughput rounds of "
            f"{plan['seconds']:g} s with {plan['concurrency']} clients alternating, "
            f"{plan['streams']} concurrent streams each). LiteLLM adds "
            f"**{common.fmt_ratio(ratios['added_p50_litellm_to_router'])}** the router's p50 "
            f"latency; the router serves "
            f"**{common.fmt_ratio(ratios['rps_router_to_litellm'])}** LiteLLM's req/s; "
            "LiteLLM's first streamed chunk comes "
            f"**{common.fmt_ratio(ratios['first_chunk_p50_litellm_to_router'])}** later (p50).",
            "",
            common.md_table(
                [
                    "path",
                    "p50 ms",
                    "p99 ms",
                    "added p50 ms",
                    "added p99 ms",
                    f"req/s ({plan['concurrency']} clients)",
                    "first chunk p50 ms",
                    "streams ok",
                    "errors",
                ],
                rows,
            ),
        ]
    )
