"""Two intent annotations of the same prompts -> agreement statistics (JSON + markdown table).

Input:

* ``data/intent_audit/relabel.jsonl``: the audit (second, blind) annotation, one
  ``{"id": ..., "intent": <name or null>}`` per line;
* ``data/intent_audit/original.jsonl``: the first annotation of the same ids as it stood
  before the audit (``data/sharegpt_labels/`` has since been corrected from the
  adjudication, so it no longer is the independent first label).

Only the ids of the relabel file are compared (every one must have an original label).
``null`` is treated as a class of its own, so there are 15 classes: the 14 router intents and
``null``.

Output: ``benchmarks/results/label_agreement.json`` with the number of compared prompts, raw
agreement, Cohen's kappa, per-class one-vs-rest kappa and counts for both annotators, the
confusion matrix (rows = original, columns = audit) and the disagreement pairs
``original -> audit`` sorted by count; a markdown summary of the same is printed on stdout.

Run from the repository root: ``.venv/bin/python benchmarks/label_agreement.py``. Plain Python
and numpy (plus the intent list of ``router_service.intents``).
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_service.intents import INTENTS

ROOT = Path(__file__).resolve().parent.parent
NULL = "null"
CLASSES: tuple[str, ...] = (*INTENTS, NULL)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}


def read_labels(paths: Iterable[Path]) -> dict[str, str]:
    """JSONL files of ``{"id", "intent"}`` -> id -> class name (``None`` becomes ``"null"``)."""
    labels: dict[str, str] = {}
    for path in paths:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                intent = row["intent"]
                name = NULL if intent is None else str(intent)
                if name not in CLASS_INDEX:
                    raise ValueError(f"{path}:{lineno}: unknown intent {intent!r}")
                prompt_id = str(row["id"])
                if prompt_id in labels and labels[prompt_id] != name:
                    raise ValueError(f"{path}:{lineno}: id {prompt_id} labelled twice")
                labels[prompt_id] = name
    return labels


def confusion_matrix(original: Sequence[str], audit: Sequence[str]) -> np.ndarray:
    """Paired labels -> K x K counts, rows = original label, columns = audit label."""
    matrix = np.zeros((len(CLASSES), len(CLASSES)), dtype=np.int64)
    for a, b in zip(original, audit, strict=True):
        matrix[CLASS_INDEX[a], CLASS_INDEX[b]] += 1
    return matrix


def cohen_kappa(matrix: np.ndarray) -> float | None:
    """Confusion matrix -> Cohen's kappa, ``None`` when chance agreement is 1 (undefined)."""
    n = float(matrix.sum())
    if n == 0:
        return None
    observed = float(np.trace(matrix)) / n
    expected = float(matrix.sum(axis=1) @ matrix.sum(axis=0)) / (n * n)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1.0 - expected)


def one_vs_rest_kappa(matrix: np.ndarray, k: int) -> float | None:
    """Confusion matrix and a class index -> kappa of the binary "is class k" annotation."""
    both = int(matrix[k, k])
    only_original = int(matrix[k, :].sum()) - both
    only_audit = int(matrix[:, k].sum()) - both
    neither = int(matrix.sum()) - both - only_original - only_audit
    binary = np.array([[both, only_original], [only_audit, neither]], dtype=np.int64)
    return cohen_kappa(binary)


def disagreement_pairs(matrix: np.ndarray) -> list[dict[str, Any]]:
    """Confusion matrix -> off-diagonal cells as ``{original, audit, count}``, largest first."""
    cells = [
        (int(matrix[i, j]), CLASSES[i], CLASSES[j])
        for i in range(len(CLASSES))
        for j in range(len(CLASSES))
        if i != j and matrix[i, j] > 0
    ]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    return [{"original": a, "audit": b, "count": count} for count, a, b in cells]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def agreement(original: Mapping[str, str], audit: Mapping[str, str]) -> dict[str, Any]:
    """Original and audit labels (id -> class) -> the statistics on the audit's ids."""
    missing = sorted(set(audit) - set(original))
    if missing:
        raise KeyError(f"{len(missing)} audit ids have no original label, e.g. {missing[:3]}")
    ids = list(audit)
    matrix = confusion_matrix([original[i] for i in ids], [audit[i] for i in ids])
    n = int(matrix.sum())
    per_class = {
        name: {
            "kappa": _round(one_vs_rest_kappa(matrix, k)),
            "n_original": int(matrix[k, :].sum()),
            "n_audit": int(matrix[:, k].sum()),
            "n_both": int(matrix[k, k]),
        }
        for k, name in enumerate(CLASSES)
    }
    return {
        "n": n,
        "raw_agreement": _round(float(np.trace(matrix)) / n if n else None),
        "cohen_kappa": _round(cohen_kappa(matrix)),
        "n_disagreements": n - int(np.trace(matrix)),
        "classes": list(CLASSES),
        "per_class": per_class,
        "confusion_matrix": {"rows": "original", "columns": "audit", "counts": matrix.tolist()},
        "disagreement_pairs": disagreement_pairs(matrix),
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(result: Mapping[str, Any], top: int = 15) -> str:
    """Statistics -> a markdown summary (overall numbers, per-class table, top pairs)."""
    lines = [
        f"Compared prompts: {result['n']}, raw agreement {_fmt(result['raw_agreement'])}, "
        f"Cohen's kappa {_fmt(result['cohen_kappa'])}, "
        f"disagreements {result['n_disagreements']}",
        "",
        "| intent | kappa (one-vs-rest) | n original | n audit | n both |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, row in result["per_class"].items():
        lines.append(
            f"| {name} | {_fmt(row['kappa'])} | {row['n_original']} | {row['n_audit']} "
            f"| {row['n_both']} |"
        )
    lines += ["", "| original -> audit | count |", "| --- | ---: |"]
    for pair in result["disagreement_pairs"][:top]:
        lines.append(f"| {pair['original']} -> {pair['audit']} | {pair['count']} |")
    return "\n".join(lines)


def _display(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line -> statistics written to ``--out`` and printed as markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--relabel", type=Path, default=ROOT / "data" / "intent_audit" / "relabel.jsonl"
    )
    parser.add_argument(
        "--original", type=Path, default=ROOT / "data" / "intent_audit" / "original.jsonl"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "label_agreement.json"
    )
    parser.add_argument("--top", type=int, default=15, help="disagreement pairs to print")
    args = parser.parse_args(argv)

    audit = read_labels([args.relabel])
    original = read_labels([args.original])
    result = agreement(original, audit)
    result["inputs"] = {"relabel": _display(args.relabel), "original": _display(args.original)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(markdown(result, top=args.top))
    return result


if __name__ == "__main__":
    main()
