"""Notebooks -> executed top to bottom with nbclient (``python3`` kernel of this interpreter).

    python -m notebooks.execute            # check (CI, ``make notebooks-check``)
    python -m notebooks.execute --write    # execute, save outputs in place (``make notebooks``)
    python -m notebooks.execute --static   # structure only, no execution (fast)
    python -m notebooks.execute latency    # one notebook (name with or without .ipynb)

Check mode executes a fresh copy of every committed notebook (the files are not touched)
and fails when

* a cell raises (the traceback is printed), or a notebook exceeds its time limit;
* the committed notebook is not what ``--write`` would produce: its code cells differ from
  the executed copy's (they never change on execution, so a difference means the file was
  edited without re-running), a code cell was never run (``execution_count`` missing or out
  of order), a cell's committed outputs differ in KIND from the fresh run (e.g. the
  committed cell shows a PNG and the fresh one does not, or an error was committed), or
  its printed VALUES differ: the text a cell prints or displays (stdout, ``text/plain``)
  must read the same, with every number within one unit of its last printed digit (float
  sums may differ in the last bit between BLAS builds; a stale model, metric or table does
  not pass). Cells tagged ``volatile`` are compared by kind only: timings, memory, and
  numbers of models trained inside the notebook (float sums run in an order that depends on
  the CPU's vector width, so another machine may grow slightly different trees). Model
  versions (training date + hash) are masked for the same reason. Figures are compared by
  kind: they draw the numbers the cells print.

Kernels start in the repository root with it on ``PYTHONPATH``, headless matplotlib and
``HF_HUB_OFFLINE=1`` and no progress bars; caches go under ``.cache/`` like ``make train``."""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NOTEBOOK_DIR = Path(__file__).resolve().parent
REPO_ROOT = NOTEBOOK_DIR.parent
NOTEBOOKS: tuple[str, ...] = (
    "heuristic_vs_learned.ipynb",
    "retrain_from_feedback.ipynb",
    "latency.ipynb",
)
KERNEL = "python3"
CELL_TIMEOUT_S = 900
VOLATILE_TAG = "volatile"  # cell tag: timings, memory, models trained in the cell: by kind only
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.(\d+))?(?:[eE][-+]?\d+)?(?![\w])")
_MASKS = ((re.compile(r"learned-\d{8}-[0-9a-f]{8}"), "learned-<version>"),)


def notebook_paths(names: Sequence[str] = ()) -> list[Path]:
    chosen = []
    for name in names or NOTEBOOKS:
        fname = name if name.endswith(".ipynb") else f"{name}.ipynb"
        if fname not in NOTEBOOKS:
            raise SystemExit(f"unknown notebook {name!r}; known: {list(NOTEBOOKS)}")
        chosen.append(NOTEBOOK_DIR / fname)
    return chosen


def kernel_env() -> None:
    """Environment inherited by the kernels this process starts."""
    path = os.environ.get("PYTHONPATH", "")
    if str(REPO_ROOT) not in path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), path) if p)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Progress bars depend on what the cache already holds: keep them out of the outputs.
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def execute(nb: Any, timeout: int = CELL_TIMEOUT_S) -> Any:
    """A notebook node -> the same node executed (raises ``CellExecutionError`` on failure)."""
    from nbclient import NotebookClient

    kernel_env()
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=timeout,
        resources={"metadata": {"path": str(REPO_ROOT)}},
        record_timing=False,
    )
    client.execute()
    return nb


def output_kinds(cell: Any) -> list[str]:
    """A code cell -> the kinds of its outputs, e.g. ["stream:stdout", "display:image/png"].

    Stream outputs are merged per stream name (Jupyter splits them arbitrarily); stderr is
    left out (library warnings and progress bars come and go with caches and versions)."""
    kinds: list[str] = []
    for out in cell.get("outputs", []):
        t = out.get("output_type")
        if t == "stream":
            if out.get("name") == "stderr":
                continue
            kind = f"stream:{out.get('name')}"
        elif t in ("display_data", "execute_result"):
            data = out.get("data", {})
            main = (
                "image/png"
                if "image/png" in data
                else ("text/html" if "text/html" in data else "text/plain")
            )
            kind = f"display:{main}"
        elif t == "error":
            kind = f"error:{out.get('ename')}"
        else:
            kind = str(t)
        if kind.startswith("stream:") and kind in kinds:
            continue
        kinds.append(kind)
    return sorted(kinds)


def static_problems(nb: Any) -> list[str]:
    """Problems visible without running: cells never run, errors committed, no outputs."""
    problems: list[str] = []
    count = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        count += 1
        if cell.get("execution_count") != count:
            problems.append(
                f"cell {i}: execution_count {cell.get('execution_count')!r}, expected {count} "
                "(re-run with --write)"
            )
        if any(k.startswith("error:") for k in output_kinds(cell)):
            problems.append(f"cell {i}: an error output is committed")
    if count and not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
        problems.append("no code cell has outputs (re-run with --write)")
    return problems


def printed_text(cell: Any) -> str:
    """A code cell -> what it printed and displayed as text (stdout + ``text/plain``), with
    model versions masked."""
    parts: list[str] = []
    for out in cell.get("outputs", []):
        t = out.get("output_type")
        if t == "stream" and out.get("name") == "stdout":
            parts.append(str(out.get("text", "")))
        elif t in ("display_data", "execute_result") and "image/png" not in out.get("data", {}):
            parts.append(str(out.get("data", {}).get("text/plain", "")) + "\n")
    text = "".join(parts)
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return text


def _numbers(text: str) -> tuple[str, list[tuple[float, float]]]:
    """Text -> (the text with numbers replaced by "#", [(value, tolerance)]): tolerance is
    one unit of the last printed digit (0 for integers)."""
    values: list[tuple[float, float]] = []

    def take(m: re.Match[str]) -> str:
        digits = m.group(1)
        value = float(m.group(0).replace(",", ""))
        unit = 10.0 ** -len(digits) if digits else 0.0
        if "e" in m.group(0).lower():
            unit = abs(value) * 10.0 ** -len(digits or "")
        values.append((value, unit * (1 + 1e-9)))
        return "#"

    return _NUMBER.sub(take, text), values


def value_differences(committed: str, fresh: str) -> str | None:
    """Two printed texts -> None if they read the same (numbers within their printed
    precision), else a short description of the first difference."""
    skel_a, nums_a = _numbers(committed)
    skel_b, nums_b = _numbers(fresh)
    if skel_a != skel_b:
        la, lb = skel_a.splitlines(), skel_b.splitlines()
        for i, (x, y) in enumerate(zip(la, lb, strict=False)):
            if x != y:
                return f"line {i + 1} reads {x.strip()[:80]!r}, fresh run {y.strip()[:80]!r}"
        return f"{len(la)} lines committed, {len(lb)} in the fresh run"
    for (a, tol_a), (b, tol_b) in zip(nums_a, nums_b, strict=True):
        if abs(a - b) > max(tol_a, tol_b):
            return f"committed {a:g}, fresh run {b:g}"
    return None


def compare(committed: Any, fresh: Any) -> list[str]:
    """Committed vs freshly executed notebook -> differences in code, output kinds and the
    values cells print (except cells tagged ``volatile``)."""
    problems: list[str] = []
    a = [c for c in committed.cells if c.cell_type == "code"]
    b = [c for c in fresh.cells if c.cell_type == "code"]
    if len(a) != len(b):
        return [f"{len(a)} code cells committed, {len(b)} executed"]
    for i, (ca, cb) in enumerate(zip(a, b, strict=True)):
        if ca.source != cb.source:
            problems.append(f"code cell {i + 1}: source differs")
        ka, kb = output_kinds(ca), output_kinds(cb)
        if ka != kb:
            problems.append(f"code cell {i + 1}: committed outputs {ka}, fresh run {kb}")
        elif VOLATILE_TAG not in ca.get("metadata", {}).get("tags", []):
            diff = value_differences(printed_text(ca), printed_text(cb))
            if diff:
                problems.append(f"code cell {i + 1}: stale values ({diff}; re-run with --write)")
    return problems


def strip_volatile(nb: Any) -> Any:
    """Metadata that changes on every run is dropped before writing (smaller diffs)."""
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def run_one(path: Path, mode: str) -> tuple[bool, float, list[str]]:
    import nbformat
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    committed = nbformat.read(path, as_version=4)
    problems: list[str] = []
    if mode == "check" or mode == "static":
        problems += static_problems(committed)
    t0 = time.perf_counter()
    if mode == "static":
        return not problems, 0.0, problems
    fresh = copy.deepcopy(committed)
    for cell in fresh.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    try:
        execute(fresh)
    except (CellExecutionError, DeadKernelError, TimeoutError, RuntimeError) as exc:
        return False, time.perf_counter() - t0, [*problems, f"execution failed: {exc}"]
    seconds = time.perf_counter() - t0
    if mode == "write":
        nbformat.validate(fresh)
        nbformat.write(strip_volatile(fresh), path)
        return True, seconds, []
    problems += compare(committed, fresh)
    return not problems, seconds, problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help=f"default: all of {list(NOTEBOOKS)}")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="execute and save outputs in place")
    group.add_argument("--static", action="store_true", help="structure checks only, no kernel")
    args = parser.parse_args(argv)
    mode = "write" if args.write else ("static" if args.static else "check")
    failed = 0
    total = time.perf_counter()
    for path in notebook_paths(args.notebooks):
        ok, seconds, problems = run_one(path, mode)
        status = "ok" if ok else "FAILED"
        print(f"{path.name}: {status} ({seconds:.0f} s, {mode})", flush=True)
        for p in problems:
            print(f"  - {p}", flush=True)
        failed += not ok
    print(f"notebooks: {failed} failed, {time.perf_counter() - total:.0f} s total", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
