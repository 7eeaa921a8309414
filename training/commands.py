"""``learned-router train`` / ``eval`` / ``judge``: argv -> training and evaluation runs.

``train`` runs ``training.train`` (or, with ``--from-feedback``, the gated retrain loop of
``training.retrain``); ``eval`` evaluates a saved model; ``judge`` is ``training.judge_cli``.
Heavy imports (scikit-learn, onnx, mlflow, torch) happen inside ``run_*``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from training import judge_cli, retrain
from training.retrain import FROM_DECISION_LOG


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
        "--from-feedback",
        action="append",
        default=[],
        nargs="?",
        const=FROM_DECISION_LOG,
        metavar="PATH",
        help="judge feedback file or glob (jsonl/csv/parquet); repeatable; adds to the config's. "
        "Without PATH: retrain from the decision log + feedback table, gate, promote "
        "(training.retrain)",
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
    train.add_argument("--seed", type=int, default=None)
    retrain.add_arguments(train)  # --serve-dir, --no-promote, gate tolerances ...
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


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("training").setLevel(logging.INFO)


def run_train(args: argparse.Namespace) -> int:
    _setup_logging()
    from training.config import load_config
    from training.train import run_training

    if FROM_DECISION_LOG in args.from_feedback:  # bare --from-feedback: the feedback loop
        return retrain.run_cli(args)
    cfg = load_config(args.config, out_dir=args.out, seed=args.seed)
    if args.from_feedback:
        cfg.feedback_globs = (*cfg.feedback_globs, *args.from_feedback)
    if args.logs:
        cfg.request_log_globs = (*cfg.request_log_globs, *args.logs)
    if args.transformer:
        cfg.report_transformer = True
    if args.no_mlflow:
        cfg.mlflow = False
    try:
        run_training(cfg)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"learned-router train: error: {exc}", file=sys.stderr)
        return 1
    return 0


def run_eval(args: argparse.Namespace) -> int:
    _setup_logging()
    from router_service.learned import LearnedScorer, ModelLoadError
    from training import evaluate as ev
    from training.config import load_config
    from training.data import load_corpus
    from training.embed import embed_cached, static_from_model_dir
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
    report = ev.evaluate_model(corpus, scorer, emb, cfg)
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
