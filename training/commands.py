"""``learned-router train`` / ``eval`` / ``judge``: argv -> training and evaluation runs.

``train`` runs ``training.train`` (or, with a bare ``--from-feedback``, the gated retrain
loop of ``training.loop.retrain``); ``eval`` evaluates a saved model; ``judge`` is
``training.loop.judge_cli``. Heavy imports (scikit-learn, onnx, mlflow, torch) happen inside
``run_*``.

The served dir (``--serve-dir``, else the service's ``ROUTER_MODEL_DIR``, else
``models/default``) is where a promotion publishes, and the only dir whose model carries
the registry's ``champion`` alias: a plain ``train`` moves the alias only when ``--out`` is
that dir (``make train``), never for ``--out`` elsewhere (``make train-tiny``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from router_service.logstore.access import parse_when
from training.config import SCORE_BAR_RANGE, TrainConfig, check_score_bar
from training.loop import judge_cli
from training.loop.gate import GateConfig, GateResult
from training.loop.retrain import (
    DEFAULT_MAX_LOG_ROWS,
    FROM_DECISION_LOG,
    RetrainOptions,
    RetrainResult,
)

PROG = "learned-router train"


def register(subparsers: Any) -> None:
    train = subparsers.add_parser(
        "train",
        help="train, calibrate, export and register the learned scorer",
        description="Load the labelled data, embed it, train and calibrate both heads, export "
        "one ONNX graph (router.onnx + tokenizer.json + manifest.json + MODEL_CARD.md), check "
        "ONNX/sklearn parity, evaluate, and log the run to MLflow.",
    )
    train.add_argument(
        "--config", default="default", help="preset (default, tiny) or a JSON/YAML file"
    )
    train.add_argument(
        "--out", default=None, help="model directory (default: the config's out_dir)"
    )
    train.add_argument(
        "--serve-dir",
        type=Path,
        help="the model dir the router serves (default: ROUTER_MODEL_DIR, else "
        "models/default); the MLflow alias 'champion' follows the model in it, so plain "
        "train moves the alias only when --out is this dir",
    )
    train.add_argument(
        "--from-feedback",
        action="append",
        default=[],
        nargs="?",
        const=FROM_DECISION_LOG,
        metavar="PATH",
        help="judge feedback file or glob (jsonl/csv/parquet); repeatable; adds to the config's. "
        "Without PATH: retrain from the decision log + feedback table, gate, promote "
        "(training.loop.retrain)",
    )
    train.add_argument(
        "--score-bar",
        type=_score_bar,
        metavar="1-10",
        help="a cheap-tier answer scored below this becomes a 'strong tier should have "
        "answered' label (default: the config's judge_score_bar, 6)",
    )
    train.add_argument(
        "--logs",
        action="append",
        default=[],
        metavar="PATH",
        help="exported request-log file or glob (unlabelled); repeatable",
    )
    train.add_argument(
        "--transformer",
        action="store_true",
        help="also train/evaluate heads on full MiniLM embeddings (slow, reported)",
    )
    train.add_argument("--no-mlflow", action="store_true", help="skip MLflow logging")
    train.add_argument("--mlflow-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
    train.add_argument("--seed", type=int, default=None)
    add_retrain_arguments(train)
    train.set_defaults(func=run_train)
    judge_cli.register(subparsers)  # learned-router judge

    ev = subparsers.add_parser(
        "eval",
        help="evaluate a saved model: intents, routing APGR/CPT, calibration, latency",
        description="Score the held-out splits with a saved model and print the report: intent "
        "accuracy/macro-F1 vs the heuristic, APGR and CPT on MMLU/GSM8K (in-distribution and "
        "leave-one-benchmark-out) for random, heuristic, kNN and learned scorers.",
    )
    ev.add_argument("--model", default="models/default", help="model directory")
    ev.add_argument("--config", default="default", help="data config (preset or file)")
    ev.add_argument("--json", default=None, metavar="PATH", help="write the report ('-' = stdout)")
    ev.add_argument(
        "--transformer", action="store_true", help="add full-MiniLM heads to the report"
    )
    ev.set_defaults(func=run_eval)


def _score_bar(text: str) -> float:
    """``--score-bar`` text -> a float from 1 to 10 (argparse reports anything else)."""
    try:
        return check_score_bar(float(text))
    except ValueError:
        low, high = SCORE_BAR_RANGE
        raise argparse.ArgumentTypeError(
            f"must be a number from {low:g} to {high:g}, got {text!r}"
        ) from None


def _log_rows(text: str) -> int:
    """``--max-log-rows`` text -> a count >= 0."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


def add_retrain_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a bare ``--from-feedback`` (the retrain loop) on ``train``."""
    g = parser.add_argument_group(
        "retrain (bare --from-feedback: decision log + feedback -> candidate -> gate)"
    )
    g.add_argument("--work-dir", type=Path, help="exports + candidate (default .cache/retrain)")
    g.add_argument("--database-url", help="decision log URL (default ROUTER_DATABASE_URL)")
    g.add_argument("--sqlite-path", type=Path, help="decision log SQLite file")
    g.add_argument(
        "--since",
        type=parse_when,
        metavar="ISO",
        help="only logged requests at/after this ISO 8601 date/time (naive = UTC)",
    )
    g.add_argument(
        "--until", type=parse_when, metavar="ISO", help="only logged requests before this time"
    )
    g.add_argument("--no-promote", action="store_true", help="evaluate and gate, never promote")
    g.add_argument(
        "--max-log-rows",
        type=_log_rows,
        default=DEFAULT_MAX_LOG_ROWS,
        help="newest unlabelled logged requests exported (report's live-traffic section, "
        "pseudo-labels if the config asks; 0 = none); labelled requests are never capped",
    )
    d = GateConfig()
    g.add_argument(
        "--intent-tolerance",
        type=float,
        default=d.intent_accuracy_tol,
        help="max intent-accuracy drop vs the champion (absolute)",
    )
    g.add_argument(
        "--apgr-tolerance",
        type=float,
        default=d.apgr_tol,
        help="max APGR drop vs the champion (absolute)",
    )
    g.add_argument("--p50-budget-us", type=float, default=d.latency_p50_budget_us)
    g.add_argument("--p99-budget-us", type=float, default=d.latency_p99_budget_us)


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("training").setLevel(logging.INFO)


def usage_error(args: argparse.Namespace) -> str | None:
    """Parsed ``train`` arguments -> what is wrong with their combination, or None."""
    window = args.since is not None or args.until is not None
    if window and FROM_DECISION_LOG not in args.from_feedback:
        return "--since/--until select decision-log rows: use them with a bare --from-feedback"
    if args.since is not None and args.until is not None and args.since >= args.until:
        since, until = args.since.isoformat(), args.until.isoformat()
        return f"--since ({since}) must be before --until ({until})"
    return None


def train_config(args: argparse.Namespace) -> TrainConfig:
    """Parsed plain ``train`` arguments -> the training config."""
    from training.config import load_config

    cfg = load_config(args.config, out_dir=args.out, seed=args.seed, judge_score_bar=args.score_bar)
    if args.from_feedback:
        cfg.feedback_globs = (*cfg.feedback_globs, *args.from_feedback)
    if args.logs:
        cfg.request_log_globs = (*cfg.request_log_globs, *args.logs)
    if args.transformer:
        cfg.report_transformer = True
    if args.no_mlflow:
        cfg.mlflow = False
    if args.mlflow_uri:
        cfg.mlflow_tracking_uri = args.mlflow_uri
    return cfg


def run_train(args: argparse.Namespace) -> int:
    _setup_logging()
    problem = usage_error(args)
    if problem:
        print(f"{PROG}: error: {problem}", file=sys.stderr)
        return 2
    if FROM_DECISION_LOG in args.from_feedback:  # bare --from-feedback: the feedback loop
        return run_retrain_cli(args)
    from training.loop.registry import served_model_dir
    from training.train import run_training

    try:
        cfg = train_config(args)
        run_training(cfg, served_dir=args.serve_dir or served_model_dir())
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def retrain_options(args: argparse.Namespace) -> RetrainOptions:
    """Parsed ``train --from-feedback`` arguments -> ``RetrainOptions``."""
    overrides = {} if args.score_bar is None else {"judge_score_bar": args.score_bar}
    return RetrainOptions(
        config=args.config,
        serve_dir=args.serve_dir or (Path(args.out) if args.out else None),
        work_dir=args.work_dir,
        database_url=args.database_url,
        sqlite_path=args.sqlite_path,
        since=args.since,
        until=args.until,
        gate=GateConfig(
            intent_accuracy_tol=args.intent_tolerance,
            apgr_tol=args.apgr_tolerance,
            latency_p50_budget_us=args.p50_budget_us,
            latency_p99_budget_us=args.p99_budget_us,
        ),
        promote=not args.no_promote,
        mlflow=not args.no_mlflow,
        extra_feedback=tuple(p for p in args.from_feedback if p != FROM_DECISION_LOG),
        seed=args.seed,
        mlflow_tracking_uri=args.mlflow_uri,
        max_log_rows=args.max_log_rows,
        overrides=overrides,
    )


def data_lines(res: RetrainResult) -> list[str]:
    """A ``RetrainResult`` -> what the export read and what each part is used for."""
    ex, unl = res.export, res.unlabelled
    window = f" in [{ex.get('since') or '-inf'}, {ex.get('until') or 'now'})"
    cap = unl.get("max_log_rows")
    use = "the report's live-traffic section only (no labels)"
    if unl.get("pseudo_labels"):
        use = "the report's live-traffic section and train-split intent pseudo-labels"
    return [
        f"decision log{window}: {ex['log_rows']} rows read, {ex['skipped_no_text']} without "
        "text skipped",
        f"labelled from feedback: {ex['labelled']} requests ({ex['positives']} strong wins, "
        f"score bar {ex.get('score_bar')}) from {ex['feedback_rows']} feedback rows "
        f"({ex['feedback_failed']} failed, {ex['orphan_feedback']} on requests not read)",
        f"unlabelled: {ex['log_rows_written']} newest logged requests "
        f"(cap {'none' if cap is None else cap}) -> {use}",
        f"held-out set (base data only): {res.heldout.get('rows')} test rows, fingerprint "
        f"{str(res.heldout.get('fingerprint'))[:16]}; {res.heldout.get('feedback_rows')} "
        "feedback rows in the test split (informational AUC from 10 on)",
    ]


def retrain_summary(res: RetrainResult) -> list[str]:
    """A ``RetrainResult`` -> the lines ``train --from-feedback`` prints."""
    head = GateResult(res.gate["promote"], tuple(res.gate["reasons"])).summary()
    lines = [
        *data_lines(res),
        f"candidate {res.candidate_version} (registry v{res.registered_version}) vs champion "
        f"{res.champion_version or 'none'} ({res.champion_source or 'no served model'})",
        head,
    ]
    if res.promoted:
        lines.append(f"promoted: {res.serve_dir} now holds {res.candidate_version}")
    elif res.gate["promote"]:
        lines.append("gate passed but --no-promote: nothing published")
    else:
        lines.append(f"not promoted: {res.candidate_version} stays registered without the alias")
    lines += [f"registry, {line}" for line in res.alias]
    return lines


def run_retrain_cli(args: argparse.Namespace) -> int:
    """``learned-router train --from-feedback [...]`` -> one retrain; prints the gate."""
    from training.loop.retrain import run_retrain

    try:
        res = run_retrain(retrain_options(args))
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"{PROG} --from-feedback: error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(retrain_summary(res)))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    _setup_logging()
    from router_service.learned import LearnedScorer, ModelLoadError
    from training.config import load_config
    from training.data.corpus import load_corpus
    from training.evaluate import report as ev
    from training.model.embed import embed_cached, static_from_model_dir
    from training.summary import print_summary

    cfg = load_config(args.config)
    model_dir = cfg.path(args.model)
    try:
        scorer = LearnedScorer.load(model_dir)
    except ModelLoadError as exc:
        print(f"learned-router eval: error: {exc}", file=sys.stderr)
        return 1
    try:
        corpus = load_corpus(cfg)
    except (FileNotFoundError, ValueError) as exc:
        print(f"learned-router eval: error: {exc}", file=sys.stderr)
        return 1
    spec = scorer.manifest["embedder"]
    embedder = static_from_model_dir(
        model_dir, bool(spec["normalize"]), int(spec.get("head_tokens", 0))
    )
    emb = embed_cached(embedder, corpus.frame["text"].tolist(), cfg.path(cfg.cache_dir))
    from training.evaluate.selection import model_context

    cfg, base = model_context(cfg, scorer.manifest)
    report = ev.evaluate_model(corpus, scorer, emb, cfg, None, base)
    report["selection"] = scorer.manifest.get("selection")
    if args.transformer:
        from rich.console import Console

        from training.train import _Stages, transformer_report

        report["transformer"] = transformer_report(cfg, corpus, _Stages(Console(stderr=True)))
    report["data"] = {"snapshot": corpus.snapshot, "counts": corpus.stats}
    if args.json == "-":
        json.dump(report, sys.stdout, indent=1, default=float)
        print()
    else:
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(report, fh, indent=1, default=float)
        print_summary(report, {"model": str(model_dir)})
    return 0
