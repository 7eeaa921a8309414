"""A git ref + the fake upstream -> chat added latency and throughput of the router at that
ref beside the current router, in alternating rounds of the same run (issue 9: adding the
Responses/Messages APIs must not slow chat by more than 5%).

* ``materialise(ref)``: ``git archive REF | tar -x`` into a temp dir (removed afterwards);
* the baseline is that tree's ``learned-router serve`` run by this venv's python
  (``PYTHONPATH`` and working directory = the tree, so its own ``router_service`` and its
  own committed ``models/default`` load), same fake upstream, same policy file, decision log
  ON in SQLite, one worker, like the current router;
* interleaved: one request at a time to current, baseline and direct with the same prompt,
  the order rotating per prompt (``httpload.rotating_rounds``), so drift of this shared
  machine hits all three alike; added p50/p99 = the router's minus direct's, median over
  rounds;
* rounds: each round measures both routers with ``bench_proxy``'s ``added_latency`` (one
  request at a time) and ``throughput`` (closed loop, ``concurrency`` clients), the order of
  the two routers rotating per round; per side: median over rounds of added p50/p99, req/s;
* ``ab_verdict``: current/baseline ratios against the tolerance (added latency may grow,
  req/s may drop, by at most 5%); ``markdown``: the table for BENCHMARKS.md.

A baseline that cannot be materialised or started is recorded as ``{"error": why}`` (and
printed), never raised. Standalone (only this A/B, no other proxy measurement)::

    python -m benchmarks.baseline_router --baseline-ref REF [--quick] --out ab.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks import common
from benchmarks.httpload import Target, encode_request, rotating_rounds
from benchmarks.proxy_load import UPSTREAM_MODEL
from benchmarks.proxy_procs import HOST, Proc, start_router

if TYPE_CHECKING:
    from benchmarks.proxy_load import Budget

TOLERANCE = 0.05
# summary key -> (table label, True when higher is worse)
METRICS: dict[str, tuple[str, bool]] = {
    "interleaved_added_p50_us": ("added p50 ms, interleaved per request", True),
    "interleaved_added_p99_us": ("added p99 ms, interleaved per request", True),
    "added_p50_us": ("added p50 ms, alternating rounds", True),
    "added_p99_us": ("added p99 ms, alternating rounds", True),
    "rps_median": ("req/s median, alternating rounds", False),
}
Measure = Callable[[Proc, Proc, Sequence[str], "Budget"], Awaitable[dict[str, Any]]]


# --- the baseline tree --------------------------------------------------------------------


def resolve(ref: str, repo: Path = common.REPO_ROOT) -> str:
    """-> the full commit sha of ``ref`` (raises ``RuntimeError`` naming git's complaint)."""
    out = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"git rev-parse {ref}: {out.stderr.strip()}")
    return out.stdout.strip()


@contextlib.contextmanager
def materialise(sha: str, repo: Path = common.REPO_ROOT) -> Iterator[Path]:
    """The committed tree of ``sha`` extracted into a temp dir, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        archive = Path(tmp) / "tree.tar"
        with archive.open("wb") as f:
            subprocess.run(["git", "-C", str(repo), "archive", sha], stdout=f, check=True)
        tree = Path(tmp) / "tree"
        tree.mkdir()
        with tarfile.open(archive) as tar:
            tar.extractall(tree, filter="data")
        archive.unlink()
        yield tree


def imported_from(tree: Path) -> str:
    """-> where this python imports ``router_service`` from when run inside ``tree`` (raises
    when it is not the tree's own package, or when it does not import at all)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROUTER_")}
    env["PYTHONPATH"] = str(tree)
    code = "import router_service.app, router_service.cli as c; print(c.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the baseline does not import: {out.stderr.strip()[-1500:]}")
    where = out.stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"router_service imported from {where}, not from the baseline tree")
    return where


# --- pure summaries -----------------------------------------------------------------------


def side_summary(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-round results of one router (``added_p50_us``, ``added_p99_us``, ``rps``,
    ``direct_rps``, ``errors``; optionally one ``{"interleaved_added_us": {"p50", "p99"},
    "errors"}`` entry) -> medians over the rounds."""

    inter = [r for r in rounds if "interleaved_added_us" in r]
    rounds = [r for r in rounds if "interleaved_added_us" not in r]

    def med(key: str) -> float:
        return float(np.median([r[key] for r in rounds]))

    extra = {
        f"interleaved_added_{q}_us": float(inter[0]["interleaved_added_us"][q])
        for q in ("p50", "p99")
        if inter
    }
    return {
        **extra,
        "added_p50_us": med("added_p50_us"),
        "added_p99_us": med("added_p99_us"),
        "rps_median": med("rps"),
        "direct_rps_median": med("direct_rps"),
        "rps_to_direct_median": float(np.median([r["rps"] / r["direct_rps"] for r in rounds])),
        "errors": int(sum(r["errors"] for r in [*rounds, *inter])),
        "rounds": list(rounds),
    }


def ab_verdict(
    current: Mapping[str, float], baseline: Mapping[str, float], tolerance: float = TOLERANCE
) -> dict[str, Any]:
    """Side summaries -> ratios current/baseline and whether each stays within ``tolerance``
    of the baseline in the direction that matters (added latency up, req/s down)."""
    out: dict[str, Any] = {"tolerance": tolerance, "ratios": {}, "within": {}}
    for key, (_, worse_if_higher) in METRICS.items():
        if key not in current or key not in baseline:
            continue
        r = common.ratio(current[key], baseline[key]) if baseline[key] > 0 else None
        out["ratios"][key] = r
        if r is None:
            out["within"][key] = None
        elif worse_if_higher:
            out["within"][key] = r <= 1.0 + tolerance
        else:
            out["within"][key] = r >= 1.0 - tolerance
    failed = [k for k, ok in out["within"].items() if ok is False]
    unknown = [k for k, ok in out["within"].items() if ok is None]
    out["failed"] = failed
    out["passes"] = not failed and not unknown
    return out


def markdown(ab: Mapping[str, Any] | None) -> str | None:
    """One ``ab_baselines`` entry -> a labelled table (None when no A/B was asked for)."""
    if not ab:
        return None
    own = (
        "its own committed model"
        if ab.get("scorer", "learned") == "learned"
        else f"both routers on the `{ab['scorer']}` scorer"
    )
    label = (
        f"**Chat before/after the Responses/Messages APIs** (A/B, same run): baseline = the "
        f"router at `{ab.get('sha', '?')[:9]}` (`{ab.get('ref')}`, before the "
        f"Responses/Messages APIs), {own}"
    )
    if "error" in ab:
        return f"{label}: not measured: {ab['error']}"
    cur, base, v = ab["current"], ab["baseline"], ab["verdict"]
    tol = v["tolerance"]

    def ok(key: str) -> str:
        within = v["within"][key]
        return "n/a" if within is None else ("yes" if within else "**no**")

    def value(side: Mapping[str, Any], key: str) -> str | None:
        return f"{side[key]:,.0f}" if key == "rps_median" else common.fmt(side[key] / 1000, 3)

    rows = [
        [
            label if key != "rps_median" else f"{label} ({ab['concurrency']} clients, 1 worker)",
            value(cur, key),
            value(base, key),
            common.fmt_ratio(v["ratios"][key]),
            ok(key),
        ]
        for key, (label, _) in METRICS.items()
        if key in v["ratios"]
    ]
    verdict = (
        f"within {tol:.0%}" if v["passes"] else f"NOT within {tol:.0%}: {', '.join(v['failed'])}"
    )
    return "\n".join(
        [
            f"{label}; one request at a time or {ab['concurrency']} clients, medians over "
            f"{ab['rounds']} rounds (errors: current {cur['errors']}, baseline "
            f"{base['errors']}):",
            "",
            common.md_table(
                ["chat", "current", "baseline", "current / baseline", f"within {tol:.0%}"],
                rows,
            ),
            "",
            f"Verdict: {verdict}.",
        ]
    )


# --- the measurement ----------------------------------------------------------------------


async def _rounds(
    routers: Mapping[str, Proc],
    upstream: Proc,
    prompts: Sequence[str],
    budget: Budget,
    rounds: int,
    latency: Measure,
    throughput: Measure,
) -> dict[str, list[dict[str, Any]]]:
    names = list(routers)
    targets: dict[str, Target] = {n: _chat_target(p.port, "auto") for n, p in routers.items()}
    targets["direct"] = _chat_target(upstream.port, UPSTREAM_MODEL)
    samples, errors = await rotating_rounds(
        HOST, targets, prompts, budget.latency_pairs, rounds, budget.warmup
    )
    _, added = common.added_over(samples, "direct")
    one_lat = dataclasses.replace(budget, latency_rounds=1)
    one_load = dataclasses.replace(budget, load_rounds=1)
    got: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            lat = await latency(routers[name], upstream, prompts, one_lat)
            tp = await throughput(routers[name], upstream, prompts, one_load)
            got[name].append(
                {
                    "added_p50_us": lat["added_us"]["p50"],
                    "added_p99_us": lat["added_us"]["p99"],
                    "rps": tp["router"]["rps_median"],
                    "direct_rps": tp["direct"]["rps_median"],
                    "errors": lat["errors"] + tp["router"]["errors"],
                    "first": r % len(names) == names.index(name),
                }
            )
    for n in names:  # the interleaved measurement, kept beside the per-round ones
        got[n].append({"interleaved_added_us": added[n], "errors": errors[n]})
    return got


def _chat_target(port: int, model: str) -> Target:
    def make(prompt: str) -> bytes:
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
        return encode_request(HOST, port, "/v1/chat/completions", body)

    return port, make, lambda r: r.status == 200 and b'"choices"' in r.body


def run_ab(
    ref: str,
    upstream: Proc,
    tmp: Path,
    scorer: str,
    model_dir: Path,
    prompts: Sequence[str],
    budget: Budget,
    latency: Measure,
    throughput: Measure,
    rounds: int | None = None,
) -> dict[str, Any]:
    """The current router (``model_dir``) and the router at ``ref`` (its own model), one
    worker each, measured in alternating rounds -> one ``ab_baselines`` entry."""
    n = rounds or max(budget.latency_rounds, budget.load_rounds, 2)
    out: dict[str, Any] = {"ref": ref, "rounds": n, "concurrency": budget.concurrency}
    out.update(scorer=scorer, current_model_dir=str(model_dir))
    t0 = time.perf_counter()
    procs: dict[str, Proc] = {}
    try:
        out["sha"] = resolve(ref)
        with materialise(out["sha"]) as tree:
            out["baseline_module"] = imported_from(tree)
            out["baseline_model_dir"] = "models/default (the baseline's own)"
            procs["current"] = start_router(upstream, tmp, scorer, model_dir, 1, tag="-ab-current")
            procs["baseline"] = start_router(
                upstream, tmp, scorer, tree / "models" / "default", 1,
                tag="-ab-baseline", source=tree,
            )  # fmt: skip
            try:
                got = asyncio.run(_rounds(procs, upstream, prompts, budget, n, latency, throughput))
            except Exception:
                for name, proc in procs.items():
                    print(f"{name} router log tail:\n{proc.log_tail()}", file=sys.stderr)
                raise
            finally:
                for proc in procs.values():
                    proc.stop()
    except Exception as exc:  # the A/B never sinks the rest of the benchmark
        out["error"] = f"{type(exc).__name__}: {exc}"[:3000]
        print(f"bench_proxy: baseline {ref} not measured: {out['error']}", file=sys.stderr)
        return out
    out["current"] = side_summary(got["current"])
    out["baseline"] = side_summary(got["baseline"])
    out["verdict"] = ab_verdict(out["current"], out["baseline"])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks import bench_proxy, proxy_load
    from benchmarks.proxy_procs import start_upstream
    from router_service.scoring import DEFAULT_MODEL_DIR, load_scorer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-ref", required=True, help="git ref of the baseline router")
    parser.add_argument("--quick", action="store_true", help="the quick budget")
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--rounds", type=int, default=None, help="A/B rounds (default: budget)")
    parser.add_argument(
        "--scorer",
        choices=("learned", "heuristic"),
        help="both routers (default: learned when the current model loads); heuristic takes "
        "the two models, which differ and may cost differently, out of the comparison",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON results (NAME.json)")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    ns = parser.parse_args(argv)
    budget = bench_proxy.QUICK if ns.quick else bench_proxy.FULL
    _, error = load_scorer("learned", ns.model_dir, log=False)
    scorer = ns.scorer or ("learned" if error is None else "heuristic")
    prompts = bench_proxy._prompts(max(budget.latency_pairs, 200))
    upstream = start_upstream(budget.stream_chunks, budget.chunk_delay_s)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
            ab = run_ab(
                ns.baseline_ref, upstream, Path(tmp), scorer, ns.model_dir, prompts, budget,
                proxy_load.added_latency, proxy_load.throughput, ns.rounds,
            )  # fmt: skip
    finally:
        upstream.stop()
    params = {**dataclasses.asdict(budget), "rounds": ab["rounds"]}
    doc = common.envelope("proxy_ab", {"ab_baseline": ab}, params=params, quick=ns.quick)
    common.write_result(ns.out.stem, doc, ns.out.parent)
    table = markdown(ab) or ""
    if ns.markdown:
        ns.markdown.write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0 if "error" not in ab else 1


if __name__ == "__main__":
    sys.exit(main())
