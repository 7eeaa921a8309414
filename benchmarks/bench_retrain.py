"""Retraining time on 100k logged requests (``train --from-feedback``), target <= 3 min.

A SQLite decision log is filled with ``--requests`` synthetic requests made from real
prompts (ShareGPT first turns + the handwritten prompts) by sampling and perturbing them
(a polite prefix or suffix, a dropped word, a changed number), so every text is distinct
but reads like traffic. A tenth of the local/primary requests get a judge score; the
scores are SYNTHETIC (a fixed rule on the prompt: long, code or maths prompts score low,
with noise): they exercise the pipeline and its cost, they are not a quality signal. Then
``training.loop.retrain.run_retrain`` runs once (export -> train -> evaluate candidate and
champion -> gate; promotion into a temp dir) and its stages are timed. Baseline, same run:
plain ``learned-router train`` with the same config on the base data only (what ``make
train`` does, no logs, no feedback), so the table shows what the feedback loop adds.

    python -m benchmarks.bench_retrain [--quick] [--requests 100000] [--config default]"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import add_common_args, bench_args, envelope, fmt, md_table, publish
from benchmarks.prompts import real_prompts
from router_service.logstore import LogRow, create_decision_log
from router_service.logstore.schema import decisions, feedback, row_values, utcnow

NAME = "retrain"
PREFIXES = ("", "", "Please ", "Hey, ", "Quick question: ", "Can you help? ", "I need this: ")
SUFFIXES = ("", "", " Thanks!", " Be concise.", " Explain briefly.", " Please answer fast.")
HARD = re.compile(r"```|def |class |\bprove\b|integral|equation|\d+\s*[-+*/^]\s*\d+", re.I)


def perturb(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    if len(words) > 6 and rng.random() < 0.3:
        del words[rng.randrange(len(words))]
    out = " ".join(words)
    if rng.random() < 0.3:
        out = re.sub(r"\d+", lambda m: str(int(m.group()) + rng.randint(1, 9)), out, count=1)
    return rng.choice(PREFIXES) + out + rng.choice(SUFFIXES)


def synthesize(n: int, seed: int) -> list[str]:
    """``n`` distinct prompt texts made from real prompts."""
    pool = [p for p in real_prompts() if len(p) < 4000]
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        base = pool[rng.randrange(len(pool))]
        text = base if tries <= len(pool) and base not in seen else perturb(base, rng)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def synthetic_score(text: str, rng: random.Random) -> int:
    base = 3 if (len(text) > 1500 or HARD.search(text)) else 8
    return max(1, min(10, base + rng.choice((-1, 0, 0, 1))))


def fill_log(db: Path, texts: list[str], seed: int, feedback_share: float = 0.1) -> int:
    rng = random.Random(seed)
    log = create_decision_log(None, db)
    asyncio.run(log.start())
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    rows, fbs = [], []
    for i, text in enumerate(texts):
        tier = rng.choice(("local", "local", "primary", "strong"))
        row = LogRow(
            request_id=f"syn-{i}",
            created_at=t0 + timedelta(seconds=i),
            messages=[{"role": "user", "content": text}],
            tier=tier,
            answer="(synthetic answer)",
            prompt_tokens=len(text) // 4,
            completion_tokens=120,
        )
        rows.append(row_values(row))
        if tier != "strong" and rng.random() < feedback_share:
            fbs.append(
                {
                    "request_id": row.request_id,
                    "source": "judge",
                    "judge_model": "synthetic",
                    "score": synthetic_score(text, rng),
                    "status": "ok",
                    "cost_usd": 0.0,
                    "created_at": utcnow(),
                }
            )
    with log.engine.begin() as conn:
        for k in range(0, len(rows), 5000):
            conn.execute(decisions.insert(), rows[k : k + 5000])
        if fbs:
            conn.execute(feedback.insert(), fbs)
    log.close_sync()
    return len(fbs)


def _champion(tmp: Path) -> Path:
    from router_service.learned import LearnedScorer
    from training.config import REPO_ROOT, load_config
    from training.train import run_training

    committed = REPO_ROOT / "models" / "default"
    try:
        LearnedScorer.load(committed)
        return committed
    except Exception:
        cfg = load_config(
            "tiny", out_dir=str(tmp / "champion"), mlflow=False, report_dir=str(tmp / "rep")
        )
        out = run_training(cfg).out_dir
        assert out is not None
        return out


def baseline_training_seconds(config: str, tmp: Path, seed: int) -> float:
    """Plain ``train`` with ``config`` on the base data (no logs, no feedback) -> seconds."""
    from training.config import load_config
    from training.train import run_training

    cfg = load_config(
        config,
        out_dir=str(tmp / "baseline-model"),
        report_dir=str(tmp / "baseline-reports"),
        mlflow=False,
        seed=seed,
    )
    t = time.perf_counter()
    run_training(cfg)
    return time.perf_counter() - t


def run(quick: bool, n: int, config: str, seed: int) -> dict[str, Any]:
    from training.loop.gate import GateConfig
    from training.loop.retrain import RetrainOptions, run_retrain

    n = 2000 if quick else n
    config = "tiny" if quick else config
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        t = time.perf_counter()
        texts = synthesize(n, seed)
        db = tmp / "log.db"
        n_feedback = fill_log(db, texts, seed)
        synth_s = time.perf_counter() - t
        serve = tmp / "serve"
        shutil.copytree(_champion(tmp), serve)
        t = time.perf_counter()
        res = run_retrain(
            RetrainOptions(
                config=config,
                serve_dir=serve,
                work_dir=tmp / "work",
                sqlite_path=db,
                mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                gate=GateConfig(),
                overrides={"report_dir": str(tmp / "reports")},
                seed=seed,
            )
        )
        total = time.perf_counter() - t
        baseline = baseline_training_seconds(config, tmp, seed)
    return {
        "logged_requests": n,
        "judged_requests": n_feedback,
        "config": config,
        "synthesize_and_log_seconds": synth_s,
        "retrain_seconds": total,
        "baseline_train_seconds": baseline,
        "target_seconds": 180,
        "within_target": total <= 180,
        "stages_seconds": res.timings,
        "export": res.export,
        "candidate_metrics": res.candidate_metrics,
        "champion_metrics": res.champion_metrics,
        "gate": res.gate,
        "promoted": res.promoted,
        "champion_version": res.champion_version,
        "champion_source": res.champion_source,
    }


def markdown(doc: dict[str, Any]) -> str:
    r = doc["results"]
    st = r["stages_seconds"]
    rows: list[list[str | None]] = [
        ["export (log + feedback -> files)", fmt(st.get("export"), 1)],
        ["train (load, embed, heads, ONNX, parity, eval, MLflow)", fmt(st.get("train"), 1)],
        ["evaluate candidate + champion, gate", fmt(st.get("evaluate"), 1)],
        ["**total**", f"**{fmt(r['retrain_seconds'], 1)}**"],
    ]
    base = r.get("baseline_train_seconds")
    if base is not None:
        rows.append(
            [f"baseline: plain `train --config {r['config']}` (base data only)", fmt(base, 1)]
        )
    ex = r.get("export", {})
    used = ""
    if "log_rows" in ex:
        used = (
            f" The export read {ex['log_rows']:,} log rows: {ex.get('labelled', 0):,} labelled "
            f"from feedback become strong-win training rows, and {ex.get('log_rows_written', 0):,} "
            "rows (the newest) are written for the evaluation's unlabelled-traffic section."
        )
    verdict = "within" if r["within_target"] else "OVER"
    return (
        f"`train --from-feedback --config {r['config']}` on {r['logged_requests']:,} logged "
        f"requests (synthesized from real prompts) with {r['judged_requests']:,} judged ones "
        f"(synthetic scores). Total {fmt(r['retrain_seconds'], 0)} s: {verdict} the 3-minute "
        f"target on 2 cores.{used}\n\n" + md_table(["stage", "seconds"], rows)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--config", default="default")
    parser.add_argument("--seed", type=int, default=0)
    ns = parser.parse_args(argv)
    args = bench_args(ns)
    results = run(args.quick, ns.requests, ns.config, ns.seed)
    params = {"requests": ns.requests, "config": ns.config, "seed": ns.seed}
    doc = envelope(NAME, results, params=params, quick=args.quick)
    publish(NAME, doc, markdown(doc), args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
