"""(scorer kind, prompts file) -> JSON on stdout: memory of a fresh serving process.

Run as a subprocess by ``bench_decision_latency``: starts from a bare interpreter, loads one
scorer the way the service does (``router_service.scoring.load_scorer`` for ``learned`` and
``heuristic``; the pickled heads + sentence-transformers for ``minilm_sklearn`` and
``learned_transformer``), scores
every prompt through ``routing.decide``, and reports the resident set size (VmRSS) after
import, after load and after scoring, the peak (VmHWM), and which heavy packages ended up
imported (the serving path must not load torch, scikit-learn, mlflow or ``training``)."""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path
from typing import Any

HEAVY = ("torch", "sklearn", "mlflow", "training", "sentence_transformers", "transformers")


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mib() -> float | None:
    kib = _status_kib("VmRSS")
    return None if kib is None else kib / 1024


def peak_mib() -> float | None:
    kib = _status_kib("VmHWM")
    return None if kib is None else kib / 1024


def _load(kind: str, model_dir: str | None, heads: str | None, source: str | None) -> Any:
    if kind in ("learned", "heuristic"):
        from router_service.scoring import load_scorer

        scorer, error = load_scorer(kind, model_dir, log=False)
        if error:
            raise RuntimeError(error)
        return scorer
    if kind in ("minilm_sklearn", "learned_transformer"):
        if not heads:
            raise ValueError(f"--heads is required for {kind}")
        from benchmarks.baselines import MiniLMSklearnScorer, TransformerHeadsScorer

        with open(heads, "rb") as fh:
            fitted = pickle.load(fh)
        if kind == "minilm_sklearn":
            return MiniLMSklearnScorer(fitted)
        if not source:
            raise ValueError("--source (the MiniLM weights) is required for learned_transformer")
        return TransformerHeadsScorer(fitted, source)
    raise ValueError(f"unknown scorer kind {kind!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scorer", required=True)
    parser.add_argument("--prompts", required=True, type=Path, help="JSON list of strings")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--heads", default=None, help="pickled heads of a MiniLM scorer")
    parser.add_argument("--source", default=None, help="MiniLM weights (learned_transformer)")
    args = parser.parse_args(argv)

    prompts = json.loads(args.prompts.read_text(encoding="utf-8"))
    from router_service.routing import RoutingPolicy, decide

    out: dict[str, Any] = {"scorer": args.scorer, "rss_start_mib": rss_mib()}
    t0 = time.perf_counter()
    scorer = _load(args.scorer, args.model_dir, args.heads, args.source)
    out["load_seconds"] = round(time.perf_counter() - t0, 3)
    out["rss_loaded_mib"] = rss_mib()
    policy = RoutingPolicy()
    t0 = time.perf_counter()
    tiers: dict[str, int] = {}
    for text in prompts:
        tier = decide(scorer, policy, [{"role": "user", "content": text}]).tier
        tiers[tier] = tiers.get(tier, 0) + 1
    out["score_seconds"] = round(time.perf_counter() - t0, 3)
    out["n_prompts"] = len(prompts)
    out["tiers"] = tiers
    out["rss_after_mib"] = rss_mib()
    out["peak_rss_mib"] = peak_mib()
    out["heavy_modules_loaded"] = sorted(m for m in HEAVY if m in sys.modules)
    json.dump(out, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
