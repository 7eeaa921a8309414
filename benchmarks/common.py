"""Measurements -> result envelope, JSON file and the matching BENCHMARKS.md section.

Shared by every ``benchmarks/bench_*.py``:

* ``envelope``: the machine (CPU model, cores, RAM, OS), Python and package versions, the
  git commit (read from ``.git`` without running git) and a UTC timestamp around a result.
* ``summarize`` / ``rounds_summary``: percentiles of one sample, and the spread of per-round
  percentiles and ratios over many rounds (single timings here are noisy, so every number
  comes from many runs and every candidate is measured beside its baseline in the same run).
* ``write_result``: ``<out_dir>/<name>.json``; ``update_markdown``: rewrites the text between
  ``<!-- bench:<name> -->`` and ``<!-- /bench:<name> -->`` in BENCHMARKS.md (appends the
  section when the markers are missing), leaving every other section untouched.
* ``BenchArgs`` / ``add_common_args``: ``--quick`` (tiny budget for tests), ``--out-dir``,
  ``--markdown`` so a test can write somewhere else than the committed files."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
MARKDOWN = REPO_ROOT / "BENCHMARKS.md"
SCHEMA_VERSION = 1

PACKAGES: tuple[str, ...] = (
    "numpy",
    "onnxruntime",
    "tokenizers",
    "scikit-learn",
    "torch",
    "sentence-transformers",
    "model2vec",
    "fastapi",
    "uvicorn",
    "httpx",
    "pydantic",
    "sqlalchemy",
    "learned-router",
)

SECTIONS: tuple[tuple[str, str], ...] = (
    ("summary", "Summary"),
    ("decision_latency", "Decision latency"),
    ("proxy", "Proxy overhead, throughput and streaming"),
    ("quality", "Routing quality and intent accuracy"),
    ("training", "Training throughput"),
    ("retrain", "Retraining from judge feedback"),
    ("judge", "Judge"),
)

MARKDOWN_HEADER = """# Benchmarks

Does the learned router beat the keyword heuristic, and what does it cost? Every number below
is produced by `make bench` (`python -m benchmarks.run_all`), which runs each
`benchmarks/bench_NAME.py` in its own process, one after the other, writes
`benchmarks/results/NAME.json` (with the machine, package versions and git commit) and the PNGs,
and rewrites each section between its `<!-- bench:NAME -->` markers. Nothing in a section is
written by hand.

How the numbers are made:

* **Baseline in the same run.** Every candidate is measured beside its baseline in the same process
  and the same rounds (interleaved, rotating order), and ratios are taken round by round.
* **Many runs.** Timings on a shared 2-core machine are noisy, so each timing is reported as
  percentiles (p50, p99) of many calls, plus the spread of per-round p50s.
* **Real prompts.** Latency uses ShareGPT first turns and the handwritten prompts, bucketed by
  WordPiece length; quality uses the held-out hash splits of `make eval` (contaminated benchmark
  prompts excluded).
* **Loopback only.** The proxy benchmark's upstream, router and load generator talk over 127.0.0.1,
  with bounded request counts and deadlines.

Run one benchmark: `python -m benchmarks.bench_decision_latency` (each takes `--quick` for a tiny
smoke budget, `--out-dir` and `--markdown`/`--no-markdown`). The notebooks in `notebooks/` draw the
same pictures from the same code (`make notebooks`; CI runs `make notebooks-check`, which executes
a copy of each notebook and fails if a cell fails or the committed notebook differs structurally
from a fresh run: edited code cells, cells never run, or different kinds of outputs).
"""


def markdown_skeleton() -> str:
    """A new BENCHMARKS.md: the header and one empty, titled section per benchmark."""
    parts = [MARKDOWN_HEADER]
    for name, title in SECTIONS:
        start, end = markers(name)
        parts.append(f"## {title}\n\n{start}\n_Not run yet._\n{end}\n")
    return "\n".join(parts)


# --- environment --------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores (and those this process may use), RAM, OS."""
    ram = _ram_bytes()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "os": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(root: Path = REPO_ROOT) -> str | None:
    """The checked-out commit, read from ``.git`` (HEAD, loose refs, packed-refs)."""
    git = root / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: <path>"
            git = (root / git.read_text().split(":", 1)[1].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head or None
        ref = head.split(":", 1)[1].strip()
        for base in (git, _common_dir(git)):
            loose = base / ref
            if loose.is_file():
                return loose.read_text().strip() or None
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
    except OSError:
        return None
    return None


# What a benchmark run itself rewrites: not "uncommitted code".
_OUTPUTS = (
    ":(exclude)benchmarks/results",
    ":(exclude)BENCHMARKS.md",
    ":(exclude)notebooks/*.ipynb",
)


def uncommitted_changes(root: Path = REPO_ROOT) -> list[str] | None:
    """Tracked files (outside the benchmark outputs) that differ from the commit -> their
    paths, so a result measured on a dirty tree says so; None if git is not available."""
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *_OUTPUTS],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted(line[3:] for line in out.splitlines() if line.strip())


def _common_dir(git: Path) -> Path:
    common = git / "commondir"
    return (git / common.read_text().strip()).resolve() if common.is_file() else git


def envelope(
    name: str, results: Mapping[str, Any], *, params: Mapping[str, Any], quick: bool
) -> dict[str, Any]:
    """A benchmark's results -> the JSON document written to ``results/<name>.json``."""
    return {
        "benchmark": name,
        "schema_version": SCHEMA_VERSION,
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "git_commit": git_commit(),
        "uncommitted_changes": uncommitted_changes(),
        "machine": machine_info(),
        "packages": package_versions(),
        "params": dict(params),
        "results": dict(results),
    }


# --- statistics ---------------------------------------------------------------------------


def summarize(samples: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Samples -> n, mean, min, p50, p90, p99, max (NaN-free; empty -> n = 0 only)."""
    a = np.asarray(samples, np.float64).ravel()
    a = a[np.isfinite(a)]
    if len(a) == 0:
        return {"n": 0}
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {
        "n": len(a),
        "mean": float(a.mean()),
        "min": float(a.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(a.max()),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    if not (math.isfinite(numerator) and math.isfinite(denominator)):
        return None
    return float(numerator / denominator)


def added_over(
    rounds: Mapping[str, Sequence[Sequence[float]]], baseline: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, float]]]:
    """Per-round latencies of several targets -> (``rounds_summary``, {target: {"p50", "p99"}
    added over ``baseline``: the median over rounds of its p50/p99 minus the baseline's})."""
    summary = rounds_summary(rounds, baseline)
    added = {
        name: {
            q: summary[name][f"{q}_median_of_rounds"] - summary[baseline][f"{q}_median_of_rounds"]
            for q in ("p50", "p99")
        }
        for name in rounds
        if name != baseline
    }
    return summary, added


def rounds_summary(
    rounds: Mapping[str, Sequence[Sequence[float]]], baseline: str
) -> dict[str, dict[str, Any]]:
    """{candidate: [samples of round 1, round 2, ...]} -> per candidate: pooled percentiles,
    the median (and min/max) over rounds of each round's p50 and p99, and the ratio of each
    round's p50/p99 to the ``baseline``'s in the same round (median over rounds)."""
    per_round: dict[str, list[dict[str, Any]]] = {
        k: [summarize(r) for r in v] for k, v in rounds.items()
    }
    out: dict[str, dict[str, Any]] = {}
    for name, runs in per_round.items():
        pooled = summarize(np.concatenate([np.asarray(r, np.float64) for r in rounds[name]]))
        entry: dict[str, Any] = {"pooled": pooled, "rounds": len(runs)}
        for q in ("p50", "p99"):
            vals = [r[q] for r in runs if q in r]
            if vals:
                entry[f"{q}_median_of_rounds"] = float(np.median(vals))
                entry[f"{q}_rounds_min"] = float(np.min(vals))
                entry[f"{q}_rounds_max"] = float(np.max(vals))
            base_runs = per_round.get(baseline, [])
            ratios = [
                r
                for r in (ratio(c.get(q), b.get(q)) for c, b in zip(runs, base_runs, strict=False))
                if r is not None
            ]
            if ratios:
                entry[f"{q}_ratio_to_{baseline}"] = float(np.median(ratios))
        out[name] = entry
    return out


# --- output -------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _finite(value: Any) -> Any:
    """NaN/inf -> None everywhere, so the file is strict JSON."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_result(name: str, payload: Mapping[str, Any], out_dir: Path = RESULTS_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    text = json.dumps(_finite(payload), indent=2, default=_json_default, allow_nan=False)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_result(name: str, out_dir: Path = RESULTS_DIR) -> dict[str, Any] | None:
    """``<out_dir>/<name>.json`` -> its document, or None when it does not exist."""
    path = out_dir / f"{name}.json"
    if not path.is_file():
        return None
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def update_markdown(name: str, body: str, path: Path = MARKDOWN) -> Path:
    """Replace the text between ``name``'s markers in ``path`` (create/append as needed)."""
    start, end = markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.is_file() else markdown_skeleton()
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return "–" if v is None else str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 1, suffix: str = "") -> str | None:
    if value is None or not math.isfinite(value):
        return None
    return f"{value:,.{digits}f}{suffix}"


def fmt_ratio(value: float | None) -> str | None:
    if value is None or not math.isfinite(value):
        return None
    return f"{value:.2f}×" if value < 100 else f"{value:,.0f}×"


def provenance_line(doc: Mapping[str, Any]) -> str:
    m = doc["machine"]
    commit = (doc.get("git_commit") or "unknown")[:10]
    dirty = doc.get("uncommitted_changes") or []
    if dirty:
        more = f" and {len(dirty) - 5} more files" if len(dirty) > 5 else ""
        commit += "` + uncommitted changes to `" + "`, `".join(dirty[:5]) + f"`{more}"
    else:
        commit += "`"
    quick = " — **quick mode (tiny budget, not a measurement)**" if doc.get("quick") else ""
    return (
        f"_Measured {doc['timestamp']} at commit `{commit} on {m['cpu_model']} "
        f"({m['cpu_cores']} cores, {m['ram_gib']} GiB RAM), Python {m['python']}{quick}._"
    )


def relative_link(target: Path, markdown: Path) -> str:
    return Path(os.path.relpath(target.resolve(), markdown.resolve().parent)).as_posix()


# --- command line -------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchArgs:
    quick: bool
    out_dir: Path
    markdown: Path | None  # None: do not touch BENCHMARKS.md


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny budget (tests, smoke runs)")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR, help="JSON + PNG output")
    parser.add_argument("--markdown", type=Path, default=MARKDOWN, help="BENCHMARKS.md to update")
    parser.add_argument("--no-markdown", action="store_true", help="leave BENCHMARKS.md alone")


def bench_args(ns: argparse.Namespace) -> BenchArgs:
    return BenchArgs(
        quick=bool(ns.quick),
        out_dir=Path(ns.out_dir),
        markdown=None if ns.no_markdown else Path(ns.markdown),
    )


def publish(
    name: str,
    doc: Mapping[str, Any],
    body: str,
    args: BenchArgs,
) -> Path:
    """Write the JSON and (unless disabled) the BENCHMARKS.md section; -> JSON path."""
    path = write_result(name, doc, args.out_dir)
    if args.markdown is not None:
        update_markdown(name, provenance_line(doc) + "\n\n" + body, args.markdown)
    print(f"{name}: wrote {path}", file=sys.stderr)
    return path


@contextlib.contextmanager
def one_cpu() -> Iterator[int | None]:
    """Run the block on one CPU (the last usable one) and, when torch is loaded, one torch
    thread; the previous affinity and thread count are restored afterwards."""
    before = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    cpu: int | None = None
    try:
        if before is not None:
            cpu = max(before)
            os.sched_setaffinity(0, {cpu})
        if torch is not None:
            torch.set_num_threads(1)
        yield cpu
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)
        if torch is not None and threads is not None:
            torch.set_num_threads(threads)
