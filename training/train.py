"""``TrainConfig`` -> a trained, calibrated, exported, verified and registered model.

Stages: load data -> embed -> fit heads + calibrators -> export ONNX (into a staging dir)
-> parity (fails the run when ONNX and sklearn disagree) -> evaluate -> manifest + model
card -> move into ``out_dir`` -> MLflow (log + register; when ``out_dir`` is the served dir,
the registry's ``champion`` alias follows it: ``training.loop.registry.champion_after_train``).
``out_dir`` is replaced only after parity passed, so a failed run never leaves a broken
model where the router loads it."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from router_service.learned import LearnedScorer
from training.config import TrainConfig
from training.data.corpus import Corpus, load_corpus
from training.evaluate import report as ev
from training.evaluate.model_card import render
from training.evaluate.selection import (
    apply_selection,
    merge_selection,
    select_intent_head,
    select_strong_head,
)
from training.loop.registry import ChampionSync
from training.model.embed import (
    StaticEmbedding,
    TransformerEmbedding,
    embed_cached,
    load_static,
    minilm_source,
)
from training.model.export_onnx import build_graph, build_manifest, save_model
from training.model.finetune import tune_settings, tune_table
from training.model.heads import Heads, design_matrix, fit_heads
from training.model.parity import assert_parity, check_parity
from training.summary import print_summary

log = logging.getLogger("training")


@dataclass
class TrainResult:
    out_dir: Path | None
    model_version: str | None
    report: dict[str, Any]
    mlflow: dict[str, Any] | None
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    champion: ChampionSync | None = None  # the alias sync, when out_dir is the served dir


class _Stages:
    """Named, timed pipeline stages with a live status line."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        with self.console.status(f"[bold]{name}[/]..."):
            yield
        self.timings[name] = round(time.perf_counter() - start, 2)
        self.console.log(f"{name}: {self.timings[name]:.1f} s")


def _parity_sample(corpus: Corpus, n: int, seed: int) -> list[list[dict[str, str]]]:
    idx = np.flatnonzero(corpus.mask("test"))
    rng = np.random.default_rng(seed)
    pick = rng.choice(idx, size=min(n, len(idx)), replace=False) if len(idx) else idx
    return [corpus.frame["messages"].iloc[i] for i in sorted(pick)]


def _export(
    embedder: StaticEmbedding, heads: Heads, staging: Path, created_at: datetime
) -> tuple[str, dict[str, Any]]:
    if staging.exists():
        shutil.rmtree(staging)
    model = build_graph(embedder, heads)
    saved = save_model(model, embedder, staging)
    version = f"learned-{created_at:%Y%m%d}-{saved['onnx_sha256'][:8]}"
    return version, saved


def _write_manifest(staging: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=False, default=float)
    (staging / "manifest.json").write_text(text + "\n", encoding="utf-8")


def _replace_dir(staging: Path, out_dir: Path) -> None:
    backup = out_dir.with_name(f".{out_dir.name}.old")
    if backup.exists():
        shutil.rmtree(backup)
    if out_dir.exists():
        out_dir.rename(backup)
    staging.rename(out_dir)
    if backup.exists():
        shutil.rmtree(backup)


def transformer_report(cfg: TrainConfig, corpus: Corpus, st: _Stages) -> dict[str, Any]:
    with st.stage("embed (full MiniLM, cached)"):
        tr = TransformerEmbedding(minilm_source(cfg.minilm_source), cfg.transformer_batch_size)
        temb = embed_cached(tr, corpus.frame["text"].tolist(), cfg.path(cfg.cache_dir))
    with st.stage("train + evaluate MiniLM heads"):
        return ev.embedding_heads_section(corpus, temb, cfg, "transformer")


def run_training(
    cfg: TrainConfig, console: Console | None = None, *, served_dir: Path | None = None
) -> TrainResult:
    """The whole pipeline; returns where the model went and everything measured.

    ``served_dir``: the directory the router serves; when ``cfg.out_dir`` is it (and MLflow
    is on), the ``champion`` alias moves to the version just registered."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(cfg.train_threads, user_api="openmp"):
        return _run(cfg, console, served_dir)


def _alias_note(
    cfg: TrainConfig, champion: ChampionSync | None, out_dir: Path, served: Path | None
) -> str:
    """-> the summary's "champion alias" line."""
    if champion is not None:
        return champion.describe()
    if not cfg.mlflow:
        return "not updated (MLflow disabled)"
    if served is None:
        return "untouched (not written into a served dir)"
    return f"untouched ({out_dir} is not the served dir {served})"


def _run(cfg: TrainConfig, console: Console | None, served_dir: Path | None) -> TrainResult:
    console = console or Console(stderr=True)
    st = _Stages(console)
    t0 = time.perf_counter()
    created_at = datetime.now(UTC).replace(microsecond=0)

    with st.stage("load data"):
        corpus = load_corpus(cfg)
    console.log(
        f"{len(corpus.frame)} labelled rows, snapshot {corpus.snapshot}; "
        f"intent {corpus.stats['intent_rows']}; strong-win {corpus.stats['strong_win_rows']}"
    )

    if cfg.embedder == "transformer":  # evaluation-only: the graph carries a static table
        report: dict[str, Any] = {
            "model_version": None,
            "transformer": transformer_report(cfg, corpus, st),
        }
        report["data"] = corpus.stats
        print_summary(report, {"note": "transformer embedder: evaluated only, nothing exported"})
        return TrainResult(None, None, report, None, time.perf_counter() - t0, st.timings)
    if cfg.embedder != "static":
        raise ValueError(f"unknown embedder {cfg.embedder!r} (static or transformer)")

    texts = corpus.frame["text"].tolist()
    with st.stage("embed (static)"):
        base = load_static(cfg)
        emb = embed_cached(base, texts, cfg.path(cfg.cache_dir))
        X = design_matrix(emb, corpus.features)

    selection: dict[str, Any] | None = None
    intent_pass: dict[str, Any] | None = None
    given = cfg
    if cfg.select_heads:
        with st.stage("select the intent head on held-out sources (untuned table)"):
            intent_pass = select_intent_head(corpus, X, cfg, base)
        cfg = apply_selection(cfg, intent_pass)
        console.log(f"selected intent: {intent_pass['selected']['intent']}")

    embedder, tuned_head = base, None
    if cfg.tune_embedding:
        with st.stage("tune the table on intent labels"):
            rows = np.flatnonzero(corpus.intent_mask("train"))
            intents = corpus.frame["intent"].to_numpy(object)[rows]
            embedder, tuned_head = tune_table(
                base, [texts[i] for i in rows], list(intents), tune_settings(cfg)
            )
            emb = embedder.embed(texts)
            X = design_matrix(emb, corpus.features)

    if intent_pass is not None:  # strong-win kinds chosen on the table the model ships
        with st.stage("select the strong-win head on held-out sources (shipped table)"):
            selection = merge_selection(intent_pass, select_strong_head(corpus, X, cfg))
        cfg = apply_selection(given, selection)
        console.log(f"selected: {selection['selected']}")

    with st.stage("train + calibrate heads"):
        heads, calib = fit_heads(corpus, X, cfg, tuned_head)

    out_dir = cfg.path(cfg.out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    data_info = {"snapshot": corpus.snapshot, "counts": corpus.stats}
    with st.stage("export ONNX"):
        version, saved = _export(embedder, heads, staging, created_at)
        common = dict(
            model_version=version,
            embedder=embedder,
            heads=heads,
            saved=saved,
            data=data_info,
            config_name=cfg.name,
            created_at=created_at.isoformat(),
        )
        _write_manifest(staging, build_manifest(metrics={}, parity={}, **common))  # type: ignore[arg-type]

    with st.stage("parity ONNX vs sklearn"):
        scorer = LearnedScorer.load(staging)
        parity = check_parity(
            scorer,
            embedder,
            heads,
            _parity_sample(corpus, cfg.parity_prompts, cfg.seed),
            cfg.parity_tol,
        )
        assert_parity(parity)

    with st.stage("evaluate"):
        report = ev.evaluate_model(corpus, scorer, emb, cfg, selection)
    if cfg.report_transformer:
        report["transformer"] = transformer_report(cfg, corpus, st)
    report.update(calibration=calib, parity=parity, data=data_info)

    with st.stage("write model"):
        manifest = build_manifest(
            metrics=report["metrics"],
            parity=parity,
            selection=report.get("selection"),
            **common,  # type: ignore[arg-type]
        )
        _write_manifest(staging, manifest)
        (staging / "MODEL_CARD.md").write_text(render(manifest, report, calib), encoding="utf-8")
        _replace_dir(staging, out_dir)
        report_dir = cfg.path(cfg.report_dir) / version
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "eval_report.json").write_text(
            json.dumps(report, indent=1, default=float), encoding="utf-8"
        )

    tracking, champion = None, None
    if cfg.mlflow:
        with st.stage("MLflow log + register"):
            from training.loop.registry import champion_after_train, log_run

            report["timings"] = st.timings
            tracking = log_run(cfg, out_dir, report["metrics"], report, version)
            champion = champion_after_train(
                cfg, out_dir, served_dir, tracking["registered_version"]
            )

    seconds = time.perf_counter() - t0
    report["timings"] = st.timings
    parity_diffs = (parity["max_abs_diff_intent"], parity["max_abs_diff_strong_win"])
    print_summary(
        report,
        {
            "model size": f"{saved['onnx_bytes'] / 1e6:.1f} MB ({saved['n_trees']} trees)",
            "parity max |dp|": f"{max(parity_diffs):.1e}",
            "written to": str(out_dir),
            "eval report": str(report_dir / "eval_report.json"),
            "MLflow run": (
                f"{tracking['run_id']} ({tracking['registered_model']} "
                f"v{tracking['registered_version']})"
                if tracking
                else "disabled"
            ),
            "champion alias": _alias_note(cfg, champion, out_dir, served_dir),
            "train time": f"{seconds:.0f} s",
        },
    )
    return TrainResult(out_dir, version, report, tracking, seconds, st.timings, champion)
