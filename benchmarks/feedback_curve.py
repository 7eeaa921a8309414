"""Logged traffic + a scripted judge -> learning curve: routing quality vs judge feedback.

Simulates a deployment that starts with NO outcome labels for the strong-win head and
learns it only from judge feedback, through the project's own pipeline at every step:

1. traffic: held-in benchmark prompts (MMLU/GSM8K rows of the train and calib hash splits,
   never the test split) are written to a decision log (SQLite) as answered by the local
   tier, ``step`` requests at a time;
2. judge: ``training.loop.judge.run_judge`` grades every not-yet-judged answer against a scripted
   judge on 127.0.0.1 (``tests/fakes``' server). The judge's signal is the outcome label:
   it rates the cheap answer 2/10 when the strong model won on that prompt and 8/10
   otherwise, flipped with probability ``judge_noise`` (real judges are noisy);
3. export + retrain: ``training.loop.feedback_dataset.export`` -> ``feedback.jsonl`` ->
   ``learned-router train --config <preset + overrides>`` (a subprocess, as ``make train``)
   with ``benchmarks: []`` (no outcome labels) and that file in ``feedback_globs``;
4. evaluate: APGR / CPT(50%) of each model's ``strong_win_rate`` on the MMLU and GSM8K
   test splits (``training.evaluate.report.routing_metrics``), beside the heuristic and the
   committed model (trained on every outcome label) measured on the same rows, with a 90%
   bootstrap interval over the test rows (GSM8K's split is small: its curve is noisy).

Everything lives under ``.cache/feedback-curve/`` and is rebuilt on each call."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import REPO_ROOT

BENCHES = ("mmlu", "gsm8k")
_REQ = re.compile(r"request (fc-\d+)")


@dataclass(frozen=True)
class CurveConfig:
    steps: tuple[int, ...] = (100, 250, 500, 1000, 2000, 4000, 8000)  # cumulative, judged
    preset: str = "tiny"
    overrides: dict[str, Any] = field(
        default_factory=lambda: {"strong_max_iter": 60, "strong_max_leaf_nodes": 15}
    )
    judge_noise: float = 0.1
    judge_concurrency: int = 16
    bootstrap: int = 300  # resamples of the test rows for the APGR interval
    seed: int = 7
    work_dir: Path = REPO_ROOT / ".cache" / "feedback-curve"


@dataclass
class Step:
    judged: int
    positives: int  # feedback rows labelled strong_win = 1
    model_version: str | None
    routing: dict[str, dict[str, float]]  # bench -> {"apgr", "cpt50"}
    judge_seconds: float
    train_seconds: float


@dataclass
class Curve:
    steps: list[Step]
    baselines: dict[str, dict[str, dict[str, float]]]  # scorer -> bench -> metrics
    eval_rows: dict[str, int]
    traffic_pool: int
    config: CurveConfig

    def frame(self) -> Any:
        import pandas as pd

        rows = []
        for s in self.steps:
            row: dict[str, Any] = {"judged requests": s.judged, "strong wins": s.positives}
            for bench, m in s.routing.items():
                row[f"APGR {bench}"] = m["apgr"]
                if "apgr_lo" in m:
                    row[f"APGR {bench} 90% interval"] = f"{m['apgr_lo']:.3f}–{m['apgr_hi']:.3f}"
                row[f"CPT50 {bench}"] = m["cpt50"]
            rows.append(row)
        return pd.DataFrame(rows).set_index("judged requests")


def _fakes() -> Any:
    tests = str(REPO_ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from fakes import llm, server

    return llm, server


def scripted_judge(labels: dict[str, int], noise: float, seed: int) -> Callable[[Any], Any]:
    """request id -> rating from its outcome label (2: strong model won, 8: it did not)."""
    llm, server = _fakes()

    def respond(rec: Any) -> Any:
        if rec.method == "GET":
            return server.Reply.json({"object": "list", "data": []})
        prompt = rec.json()["messages"][-1]["content"]
        answer = prompt.split("<answer>")[-1]
        found = _REQ.search(answer)
        rid = found.group(1) if found else ""
        label = labels.get(rid)
        if label is None:
            return server.Reply.json({"error": {"message": "unknown request"}}, status=400)
        flip = int(hashlib.sha1(f"{seed}:{rid}".encode()).hexdigest()[:8], 16)
        if flip / 0xFFFFFFFF < noise:
            label = 1 - label
        rating = 2 if label else 8
        return server.Reply.json(llm.openai_completion(f"Checked.\nRating: [[{rating}]]", "judge"))

    return respond


def _run(make: Callable[[], Any]) -> Any:
    """``asyncio.run(make())``, in a worker thread when this thread already runs a loop
    (a Jupyter kernel does)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _judge_target(url: str) -> Any:
    from router_service.policy import BackendConfig, ResolvedBackend, Timeouts
    from training.loop.judge import Priced

    config = BackendConfig(
        name="scripted-judge",
        type="openai",
        base_url=f"{url}/v1",
        model="scripted-judge",
        timeouts=Timeouts(connect=5, first_byte=30, idle=30, total=60),
        max_connections=64,
    )
    return Priced.of(ResolvedBackend("strong", config, None, True, None))


def apgr_interval(
    scores: np.ndarray, weak: np.ndarray, strong: np.ndarray, resamples: int, seed: int
) -> tuple[float, float]:
    """Bootstrap over the rows -> (5th, 95th) percentile of APGR; NaN when undefined."""
    from training.evaluate.metrics import apgr

    rng = np.random.default_rng(seed)
    n = len(scores)
    values = []
    for _ in range(resamples):
        i = rng.integers(0, n, n)
        if weak[i].mean() != strong[i].mean():
            values.append(apgr(scores[i], weak[i], strong[i]))
    if not values:
        return float("nan"), float("nan")
    lo, hi = np.percentile(values, [5, 95])
    return float(lo), float(hi)


def _routing(
    scorer: Any, corpus: Any, idx_by_bench: dict[str, np.ndarray], resamples: int = 0
) -> dict[str, Any]:
    from training.evaluate.report import routing_metrics

    frame = corpus.frame
    out = {}
    for bench, idx in idx_by_bench.items():
        if scorer is None:
            continue
        convs = [frame["messages"].iloc[i] for i in idx]
        if hasattr(scorer, "predict_batch"):
            _, win, _ = scorer.predict_batch(convs)
        else:
            win = np.array([scorer.score(m).strong_win_rate for m in convs])
        scores = np.asarray(win, np.float64)
        weak = frame["weak_correct"].to_numpy(np.float64)[idx]
        strong = frame["strong_correct"].to_numpy(np.float64)[idx]
        m = routing_metrics(scores, weak, strong)
        out[bench] = {"apgr": m["apgr"], "cpt50": m["cpt50"], "cpt80": m["cpt80"]}
        if resamples:
            lo, hi = apgr_interval(scores, weak, strong, resamples, seed=len(idx))
            out[bench].update(apgr_lo=lo, apgr_hi=hi)
    return out


def train_cli(overrides: dict[str, Any], work: Path) -> float:
    """``learned-router train --config <file> --no-mlflow`` in a subprocess -> seconds.

    The config file is a preset plus overrides; the command's own output goes to
    ``<work>.log`` (it is the same run ``make train`` does, only on other data)."""
    import json
    import subprocess
    import time

    work.parent.mkdir(parents=True, exist_ok=True)
    config = work.with_suffix(".json")
    config.write_text(json.dumps(overrides, indent=1), encoding="utf-8")
    cmd = [sys.executable, "-m", "router_service.cli", "train", "--config", str(config)]
    t0 = time.perf_counter()
    with work.with_suffix(".log").open("w") as out:
        proc = subprocess.run(
            [*cmd, "--no-mlflow"], stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT, timeout=1800
        )
    if proc.returncode != 0:
        tail = work.with_suffix(".log").read_text(encoding="utf-8")[-3000:]
        raise RuntimeError(f"training failed ({proc.returncode}):\n{tail}")
    return time.perf_counter() - t0


def learning_curve(cfg: CurveConfig = CurveConfig(), progress: bool = True) -> Curve:
    """Run the simulated feedback loop; see the module docstring."""
    import logging

    from router_service.heuristic import HeuristicScorer
    from router_service.learned import LearnedScorer
    from router_service.logstore import LogRow, create_decision_log
    from router_service.scoring import DEFAULT_MODEL_DIR
    from training.config import load_config
    from training.data.corpus import load_corpus
    from training.loop.feedback_dataset import export
    from training.loop.judge import JudgeOptions, run_judge

    logging.getLogger("training").setLevel(logging.WARNING)
    say = print if progress else (lambda *_: None)
    eval_cfg = load_config("default")
    corpus = load_corpus(eval_cfg)
    frame = corpus.frame
    bench_rows = frame["win_source"].isin(list(BENCHES)).to_numpy()
    test_idx = {b: np.flatnonzero(corpus.win_mask("test", [b])) for b in BENCHES}
    pool = np.flatnonzero(bench_rows & (frame["split"] != "test").to_numpy())
    rng = np.random.default_rng(cfg.seed)
    pool = rng.permutation(pool)[: max(cfg.steps)]

    baselines = {"heuristic": _routing(HeuristicScorer(), corpus, test_idx)}
    try:
        baselines["committed model (all outcome labels)"] = _routing(
            LearnedScorer.load(DEFAULT_MODEL_DIR), corpus, test_idx
        )
    except Exception as exc:
        say(f"committed model not loaded: {exc}")

    work = cfg.work_dir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "decisions.db"
    ids = [f"fc-{i:06d}" for i in range(len(pool))]
    labels = {rid: int(frame["strong_win"].iloc[i]) for rid, i in zip(ids, pool, strict=True)}
    _, server = _fakes()
    judge_server = server.FakeUpstream("judge", scripted_judge(labels, cfg.judge_noise, cfg.seed))
    steps: list[Step] = []
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    logged = 0
    try:
        for n in cfg.steps:
            n = min(n, len(pool))
            log = create_decision_log(None, db)
            _run(log.start)
            try:
                for k in range(logged, n):
                    log.record_sync(
                        LogRow(
                            request_id=ids[k],
                            created_at=t0 + timedelta(seconds=k),
                            messages=list(frame["messages"].iloc[pool[k]]),
                            tier="local",
                            answer=f"(answer of the local model to request {ids[k]})",
                        )
                    )
            finally:
                log.close_sync()
            logged = n
            judge = _judge_target(judge_server.url)
            log = create_decision_log(None, db)

            async def go(log: Any = log, judge: Any = judge) -> Any:
                try:
                    opts = JudgeOptions(concurrency=cfg.judge_concurrency, progress=False)
                    return await run_judge(log, judge, opts)
                finally:
                    await judge.backend.aclose()

            try:
                summary = _run(go)
                fb_path, _, stats = export(log, work / f"data-{n}", include_logs=False)
            finally:
                log.close_sync()
            out_dir = work / f"model-{n}"
            train_seconds = train_cli(
                {
                    "preset": cfg.preset,
                    "benchmarks": [],
                    "feedback_globs": [str(fb_path)],
                    "out_dir": str(out_dir),
                    "report_dir": str(work / "reports"),
                    "static_from_model": str(DEFAULT_MODEL_DIR),
                    "seed": cfg.seed,
                    **cfg.overrides,
                },
                work / f"train-{n}",
            )
            model = LearnedScorer.load(out_dir)
            step = Step(
                judged=stats.labelled,
                positives=stats.positives,
                model_version=model.version,
                routing=_routing(model, corpus, test_idx, cfg.bootstrap),
                judge_seconds=round(summary.elapsed_s, 2),
                train_seconds=round(train_seconds, 2),
            )
            steps.append(step)
            say(
                f"{step.judged:>5} judged ({step.positives} strong wins): "
                + ", ".join(f"APGR {b} {m['apgr']:.3f}" for b, m in step.routing.items())
            )
    finally:
        judge_server.stop()
    return Curve(
        steps,
        baselines,
        {b: len(i) for b, i in test_idx.items()},
        len(pool),
        cfg,
    )


def plot(curve: Curve, path: Path | None = None) -> Any:
    """APGR vs number of judged requests, per benchmark, with the baselines as lines."""
    from benchmarks.plots import _save, color, plt

    benches = [b for b in BENCHES if curve.steps and b in curve.steps[0].routing]
    fig, axes = plt.subplots(1, len(benches), figsize=(6 * len(benches), 4), squeeze=False)
    x = [s.judged for s in curve.steps]
    for ax, bench in zip(axes.ravel(), benches, strict=True):
        ax.plot(
            x,
            [s.routing[bench]["apgr"] for s in curve.steps],
            marker="o",
            color=color("learned"),
            linewidth=2,
            label="learned, feedback only",
        )
        if all("apgr_lo" in s.routing[bench] for s in curve.steps):
            ax.fill_between(
                x,
                [s.routing[bench]["apgr_lo"] for s in curve.steps],
                [s.routing[bench]["apgr_hi"] for s in curve.steps],
                color=color("learned"),
                alpha=0.15,
                linewidth=0,
                label="90% bootstrap interval (test rows)",
            )
        for name, routing in curve.baselines.items():
            if bench in routing:
                ax.axhline(
                    routing[bench]["apgr"],
                    linestyle="--",
                    linewidth=1,
                    color=color("heuristic") if name == "heuristic" else "black",
                    label=f"{name} ({routing[bench]['apgr']:.3f})",
                )
        ax.axhline(0.5, color=color("random"), linestyle=":", linewidth=1, label="random (0.5)")
        ax.set_xscale("log")
        ax.set_xlabel("judged requests (log)")
        ax.set_ylabel("APGR on the held-out test split")
        ax.set_title(f"{bench} (n={curve.eval_rows[bench]})")
        ax.legend(fontsize=8)
    fig.suptitle("Routing quality as judge feedback accumulates")
    fig.tight_layout()
    return _save(fig, path)
