"""Decision log + feedback -> candidate model -> gated promotion (``train --from-feedback``).

1. export: the feedback table joined with the logged requests -> labelled JSON lines, and
   the logged requests -> unlabelled JSON lines (``training.feedback_dataset``);
2. train: ``training.train.run_training`` on the base data + those files (preset
   ``default`` or ``tiny``) -> a candidate dir and, with MLflow, a registered version;
   the served model's embedding table is reused when there is one;
3. evaluate the candidate AND the champion (the served model; failing that, the registry's
   ``champion`` alias) with the same code on the same hash-split held-out rows;
4. gate (``training.gate``): promote only if not worse beyond tolerances and within the
   latency budget; otherwise the version stays registered, unpromoted, with the reasons;
5. promote: publish the candidate's files into the served dir atomically (a running
   service reloads them) and point the ``champion`` alias at the version.

``add_arguments`` adds the retrain options to ``learned-router train``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.gate import GateConfig, GateResult, gate
from training.gate_eval import gate_metrics, paired_latency

log = logging.getLogger("training.retrain")
CHAMPION_ALIAS = "champion"
FROM_DECISION_LOG = "@decision-log"  # ``--from-feedback`` given without a path


@dataclass
class RetrainOptions:
    config: str = "default"
    serve_dir: Path | None = None  # None: the config's out_dir (models/default)
    work_dir: Path | None = None  # None: .cache/retrain/<UTC timestamp>
    database_url: str | None = None
    sqlite_path: Path | None = None
    since: datetime | None = None
    until: datetime | None = None
    gate: GateConfig = field(default_factory=GateConfig)
    promote: bool = True
    mlflow: bool = True
    include_logs: bool = True
    # Unlabelled logs only feed the report on live traffic (and pseudo-labels when the config
    # asks): the most recent ones are enough and keep a 100k-request retrain short.
    max_log_rows: int | None = 20_000
    reuse_embedding: bool = True
    extra_feedback: tuple[str, ...] = ()
    seed: int | None = None
    mlflow_tracking_uri: str | None = None  # None: the config's, MLFLOW_TRACKING_URI, sqlite
    overrides: dict[str, Any] = field(default_factory=dict)  # any TrainConfig field


@dataclass
class RetrainResult:
    candidate_dir: str
    candidate_version: str | None
    registered_version: int | None
    champion_version: str | None
    champion_source: str | None
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    gate: dict[str, Any]
    promoted: bool
    serve_dir: str
    export: dict[str, Any]
    data_snapshot: str
    timings: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _loadable(model_dir: Path) -> bool:
    from router_service.learned import LearnedScorer

    try:
        LearnedScorer.load(model_dir)
    except Exception:
        return False
    return True


def champion_from_registry(cfg: Any, dest: Path) -> tuple[Path, str] | None:
    """The registry's ``champion`` version -> a model dir rebuilt from its artifacts."""
    try:
        import mlflow

        from training.registry import tracking_uri

        uri = tracking_uri(cfg)
        client = mlflow.MlflowClient(tracking_uri=uri)
        mv = client.get_model_version_by_alias(cfg.registered_model_name, CHAMPION_ALIAS)
        model = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{cfg.registered_model_name}/{mv.version}",
                tracking_uri=uri,
            )
        )
        bundle = Path(
            mlflow.artifacts.download_artifacts(
                run_id=mv.run_id, artifact_path="bundle", tracking_uri=uri
            )
        )
    except Exception as exc:  # no alias yet, no registry, missing artifacts
        log.info("no champion in the registry (%s)", exc)
        return None
    dest.mkdir(parents=True, exist_ok=True)
    for f in bundle.iterdir():
        shutil.copy2(f, dest / f.name)
    import onnx

    # MLflow stores big initializers as external data beside model.onnx: load them back in
    # and write one self-contained router.onnx, as the router expects.
    graph = onnx.load(str(next(model.rglob("*.onnx"))), load_external_data=True)
    onnx.save_model(graph, str(dest / "router.onnx"), save_as_external_data=False)
    return dest, str(mv.version)


def _annotate(cfg: Any, tracking: dict[str, Any] | None, res: RetrainResult) -> None:
    """Gate outcome -> tags/metrics on the candidate's run and registered version."""
    if not tracking or tracking.get("registered_version") is None:
        return
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking["tracking_uri"])
    name, version = tracking["registered_model"], str(tracking["registered_version"])
    tags = {
        "gate": "promoted" if res.promoted else "not_promoted",
        "gate_reasons": " | ".join(res.gate["reasons"])[:5000],
        "champion_version": str(res.champion_version),
        "data_snapshot": res.data_snapshot,
        "feedback_export_sha256": str(res.export.get("sha256", "")),
        "feedback_labelled": str(res.export.get("labelled", 0)),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
        client.set_tag(tracking["run_id"], f"retrain.{key}", value)
    for prefix, values in (
        ("gate_candidate", res.candidate_metrics),
        ("gate_champion", res.champion_metrics or {}),
    ):
        for metric, number in values.items():
            client.log_metric(tracking["run_id"], f"{prefix}_{metric}", float(number))
    if res.promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)


def run_retrain(opts: RetrainOptions) -> RetrainResult:
    """The whole loop once; see the module docstring."""
    from router_service.learned import LearnedScorer
    from router_service.logstore import create_decision_log
    from router_service.model_store import publish_model_dir
    from router_service.settings import Settings
    from training.config import REPO_ROOT, load_config
    from training.data import load_corpus
    from training.feedback_dataset import export
    from training.train import run_training

    timings: dict[str, float] = {}
    t = time.perf_counter()
    cfg = load_config(opts.config, seed=opts.seed, **opts.overrides)
    if opts.mlflow_tracking_uri:
        cfg.mlflow_tracking_uri = opts.mlflow_tracking_uri
    serve_dir = Path(opts.serve_dir) if opts.serve_dir else cfg.path(cfg.out_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(opts.work_dir) if opts.work_dir else REPO_ROOT / ".cache" / "retrain" / stamp
    work.mkdir(parents=True, exist_ok=True)

    settings = Settings()
    decision_log = create_decision_log(
        opts.database_url or settings.database_url, opts.sqlite_path or settings.sqlite_path
    )
    try:
        decision_log.create_schema()
        fb_path, logs_path, stats = export(
            decision_log,
            work / "data",
            score_bar=cfg.judge_score_bar,
            since=opts.since,
            until=opts.until,
            include_logs=opts.include_logs,
            max_log_rows=opts.max_log_rows,
        )
    finally:
        decision_log.close_sync()
    log.info("exported feedback: %s", stats.as_dict())
    timings["export"] = time.perf_counter() - t

    cfg.out_dir = str(work / "candidate")
    cfg.mlflow = opts.mlflow
    cfg.feedback_globs = (*cfg.feedback_globs, str(fb_path), *opts.extra_feedback)
    if logs_path is not None:
        cfg.request_log_globs = (*cfg.request_log_globs, str(logs_path))
    champion_loadable = _loadable(serve_dir)
    if opts.reuse_embedding and champion_loadable:
        cfg.static_from_model = str(serve_dir)  # keep the deployed embedding table
    t = time.perf_counter()
    trained = run_training(cfg)
    timings["train"] = time.perf_counter() - t
    assert trained.out_dir is not None

    t = time.perf_counter()
    # The same config -> the same labelled rows and hash split (unlabelled logs never reach
    # the test split, so the gate's corpus leaves them out).
    corpus = load_corpus(dataclasses.replace(cfg, request_log_globs=()))
    scorers = {"candidate": LearnedScorer.load(trained.out_dir)}
    champ_metrics, champ_version, champ_source = None, None, None
    champ_dir: Path | None = serve_dir if champion_loadable else None
    if champ_dir is None and opts.mlflow:
        found = champion_from_registry(cfg, work / "champion")
        if found is not None:
            champ_dir, champ_source = found[0], f"registry version {found[1]}"
    if champ_dir is not None:
        scorers["champion"] = LearnedScorer.load(champ_dir)
        champ_version = scorers["champion"].version
        champ_source = champ_source or f"served dir {champ_dir}"
    latency = paired_latency(corpus, scorers, max(cfg.latency_prompts, 200), cfg.seed)
    cand_metrics = {
        **gate_metrics(corpus, scorers["candidate"], cfg),
        **latency.get("candidate", {}),
    }
    if "champion" in scorers:
        champ_metrics = {
            **gate_metrics(corpus, scorers["champion"], cfg),
            **latency.get("champion", {}),
        }
    verdict: GateResult = gate(cand_metrics, champ_metrics, opts.gate)
    timings["evaluate"] = time.perf_counter() - t

    promoted = False
    if verdict.promote and opts.promote:
        publish_model_dir(trained.out_dir, serve_dir)
        promoted = True
    result = RetrainResult(
        candidate_dir=str(trained.out_dir),
        candidate_version=trained.model_version,
        registered_version=(trained.mlflow or {}).get("registered_version"),
        champion_version=champ_version,
        champion_source=champ_source,
        candidate_metrics=cand_metrics,
        champion_metrics=champ_metrics,
        gate={
            "promote": verdict.promote,
            "reasons": list(verdict.reasons),
            "config": asdict(opts.gate),
        },
        promoted=promoted,
        serve_dir=str(serve_dir),
        export=stats.as_dict(),
        data_snapshot=str((trained.report.get("data") or {}).get("snapshot") or corpus.snapshot),
        timings={k: round(v, 2) for k, v in timings.items()},
    )
    _annotate(cfg, trained.mlflow, result)
    (work / "retrain_report.json").write_text(
        json.dumps(result.as_dict(), indent=2, default=str), encoding="utf-8"
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Retrain options on ``learned-router train`` (used with a bare ``--from-feedback``)."""
    g = parser.add_argument_group(
        "retrain (bare --from-feedback: decision log + feedback -> candidate -> gate)"
    )
    g.add_argument("--serve-dir", type=Path, help="served model dir (default: config out_dir)")
    g.add_argument("--work-dir", type=Path, help="exports + candidate (default .cache/retrain)")
    g.add_argument("--database-url", help="decision log URL (default ROUTER_DATABASE_URL)")
    g.add_argument("--sqlite-path", type=Path, help="decision log SQLite file")
    g.add_argument("--no-promote", action="store_true", help="evaluate and gate, never promote")
    g.add_argument(
        "--max-log-rows",
        type=int,
        default=20_000,
        help="most recent unlabelled logged requests passed to training",
    )
    g.add_argument("--mlflow-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI)")
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


def run_cli(args: argparse.Namespace) -> int:
    """``learned-router train --from-feedback [...]`` -> one retrain; prints the gate."""
    opts = RetrainOptions(
        config=args.config,
        serve_dir=args.serve_dir or (Path(args.out) if args.out else None),
        work_dir=args.work_dir,
        database_url=args.database_url,
        sqlite_path=args.sqlite_path,
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
    )
    try:
        res = run_retrain(opts)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"learned-router train --from-feedback: error: {exc}", file=sys.stderr)
        return 1
    head = GateResult(res.gate["promote"], tuple(res.gate["reasons"])).summary()
    ex = res.export
    print(
        f"feedback: {ex['labelled']} labelled requests ({ex['positives']} strong wins) from "
        f"{ex['feedback_rows']} feedback rows; {ex['log_rows_written']} logged requests"
    )
    print(
        f"candidate {res.candidate_version} (registry v{res.registered_version}) vs champion "
        f"{res.champion_version or 'none'} ({res.champion_source or 'no served model'})"
    )
    print(head)
    if res.promoted:
        print(f"promoted: {res.serve_dir} now holds {res.candidate_version}")
    elif res.gate["promote"]:
        print("gate passed but --no-promote: nothing published")
    else:
        print(f"not promoted: {res.candidate_version} stays registered without the alias")
    return 0
