"""Decision log + feedback -> candidate model -> gated promotion (``train --from-feedback``).

0. heal: point the registry's ``champion`` alias at the served model's registered version
   (``training.loop.registry.sync_champion``), so an earlier run that stopped between publishing
   and moving the alias leaves no drift behind;
1. export (``training.loop.feedback_dataset``), for decision-log rows in ``[since, until)``:
   every request with feedback -> one labelled row (``--score-bar``: a cheap-tier answer
   scored below it votes "the strong tier should have answered"); every request with text
   -> the newest ``max_log_rows`` (default 20,000; 0 = none) as *unlabelled* rows. The
   unlabelled rows teach the model nothing by default: they feed the evaluation report's
   live-traffic section (predicted intent mix, agreement with the logged intent, strong-win
   rate quantiles) and, only when the config sets ``log_intents_as_labels``, train-split
   intent pseudo-labels. The cap bounds that report's cost on a large log; it never drops a
   labelled request. The printed summary gives every count;
2. train: ``training.train.run_training`` on the base data + those files (preset
   ``default`` or ``tiny``) -> a candidate dir and, with MLflow, a registered version;
   the served model's embedding table is reused when there is one;
3. evaluate the candidate AND the champion (the served model; failing that, the registry's
   ``champion`` alias) with the same code on the same fixed held-out set: the test split
   of the base data alone (``training.evaluate.gate_eval.load_heldout``), so feedback can neither
   relabel nor drop a held-out row;
4. gate (``training.loop.gate``): promote only if not worse beyond tolerances and within the
   latency budget; otherwise the version stays registered, unpromoted, with the reasons;
5. promote: publish the candidate's files into the served dir atomically (a running
   service reloads them), then sync the ``champion`` alias to it.

The served dir is ``--serve-dir``, else the service's (``ROUTER_MODEL_DIR``, else
``models/default``). The command line (``learned-router train --from-feedback``) is in
``training.commands``."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training.evaluate.gate_eval import HeldOut, gate_metrics, load_heldout, paired_latency
from training.loop.gate import GateConfig, GateResult, gate
from training.loop.registry import ChampionSync

log = logging.getLogger("training.retrain")
FROM_DECISION_LOG = "@decision-log"  # ``--from-feedback`` given without a path
DEFAULT_MAX_LOG_ROWS = 20_000


@dataclass
class RetrainOptions:
    config: str = "default"
    serve_dir: Path | None = None  # None: the service's (ROUTER_MODEL_DIR, models/default)
    work_dir: Path | None = None  # None: .cache/retrain/<UTC timestamp>
    database_url: str | None = None
    sqlite_path: Path | None = None
    since: datetime | None = None  # decision-log rows at/after (aware UTC)
    until: datetime | None = None  # ... and before
    gate: GateConfig = field(default_factory=GateConfig)
    promote: bool = True
    mlflow: bool = True
    include_logs: bool = True
    # The newest unlabelled logged requests to export (None = all): see the module docstring.
    max_log_rows: int | None = DEFAULT_MAX_LOG_ROWS
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
    heldout: dict[str, Any] = field(default_factory=dict)  # fingerprint + row counts
    unlabelled: dict[str, Any] = field(default_factory=dict)  # cap + what the rows feed
    alias: list[str] = field(default_factory=list)  # the champion syncs, described

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _loadable(model_dir: Path) -> bool:
    from router_service.learned import LearnedScorer

    try:
        LearnedScorer.load(model_dir)
    except Exception:
        return False
    return True


def _export(opts: RetrainOptions, cfg: Any, out_dir: Path) -> tuple[Path, Path | None, Any]:
    """Decision log (options or ``ROUTER_*``) -> (feedback file, logs file, ``ExportStats``)."""
    from router_service.logstore import create_decision_log
    from router_service.settings import Settings
    from training.loop.feedback_dataset import export

    settings = Settings()
    decision_log = create_decision_log(
        opts.database_url or settings.database_url, opts.sqlite_path or settings.sqlite_path
    )
    try:
        decision_log.create_schema()
        return export(
            decision_log,
            out_dir,
            score_bar=cfg.judge_score_bar,
            since=opts.since,
            until=opts.until,
            include_logs=opts.include_logs,
            max_log_rows=opts.max_log_rows,
        )
    finally:
        decision_log.close_sync()


def _champion_dir(
    opts: RetrainOptions, cfg: Any, serve_dir: Path, served: bool, dest: Path
) -> tuple[Path | None, str | None]:
    """-> (the champion's model dir, where it came from): the served dir when it loads,
    else the registry's alias rebuilt into ``dest``; (None, None) without either."""
    if served:
        return serve_dir, f"served dir {serve_dir}"
    if opts.mlflow:
        from training.loop.registry import champion_from_registry

        found = champion_from_registry(cfg, dest)
        if found is not None:
            return found[0], f"registry version {found[1]}"
    return None, None


def _evaluate(cfg: Any, heldout: HeldOut, scorers: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Held-out set + {"candidate", maybe "champion": scorer} -> metrics per scorer."""
    latency = paired_latency(heldout.base, scorers, max(cfg.latency_prompts, 200), cfg.seed)
    return {
        name: {**gate_metrics(heldout, scorer), **latency.get(name, {})}
        for name, scorer in scorers.items()
    }


def _annotate(tracking: dict[str, Any] | None, res: RetrainResult) -> None:
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
        "heldout_sha256": str(res.heldout.get("fingerprint", "")),
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


def _sync(
    opts: RetrainOptions, cfg: Any, serve_dir: Path, when: str, prefer: int | None = None
) -> list[str]:
    """-> ["<when>: <the alias synced to the served dir>"] (nothing when MLflow is off)."""
    if not opts.mlflow:
        return []
    from training.loop.registry import sync_champion

    found: ChampionSync = sync_champion(cfg, serve_dir, prefer=prefer)
    return [f"{when}: {found.describe()}"]


def _setup(opts: RetrainOptions) -> tuple[Any, Path, Path]:
    """Options -> (training config, served dir, work dir created)."""
    from training.config import REPO_ROOT, load_config
    from training.loop.registry import served_model_dir

    cfg = load_config(opts.config, seed=opts.seed, **opts.overrides)
    if opts.mlflow_tracking_uri:
        cfg.mlflow_tracking_uri = opts.mlflow_tracking_uri
    serve_dir = Path(opts.serve_dir) if opts.serve_dir else served_model_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    work = Path(opts.work_dir) if opts.work_dir else REPO_ROOT / ".cache" / "retrain" / stamp
    work.mkdir(parents=True, exist_ok=True)
    return cfg, serve_dir, work


def _candidate_config(
    cfg: Any, opts: RetrainOptions, work: Path, exported: tuple[Path, Path | None]
) -> None:
    """Point ``cfg`` (in place) at the candidate dir and the exported files."""
    fb_path, logs_path = exported
    cfg.out_dir = str(work / "candidate")
    cfg.mlflow = opts.mlflow
    cfg.feedback_globs = (*cfg.feedback_globs, str(fb_path), *opts.extra_feedback)
    if logs_path is not None:
        cfg.request_log_globs = (*cfg.request_log_globs, str(logs_path))


def run_retrain(opts: RetrainOptions) -> RetrainResult:
    """The whole loop once; see the module docstring."""
    from router_service.learned import LearnedScorer
    from router_service.model_store import publish_model_dir
    from training.train import run_training

    timings: dict[str, float] = {}
    t = time.perf_counter()
    cfg, serve_dir, work = _setup(opts)
    alias = _sync(opts, cfg, serve_dir, "at start")  # heals an interrupted promotion
    fb_path, logs_path, stats = _export(opts, cfg, work / "data")
    log.info("exported feedback: %s", stats.as_dict())
    timings["export"] = time.perf_counter() - t

    _candidate_config(cfg, opts, work, (fb_path, logs_path))
    champion_loadable = _loadable(serve_dir)
    if opts.reuse_embedding and champion_loadable:
        cfg.static_from_model = str(serve_dir)  # keep the deployed embedding table
    t = time.perf_counter()
    trained = run_training(cfg)
    timings["train"] = time.perf_counter() - t
    assert trained.out_dir is not None

    t = time.perf_counter()
    heldout = load_heldout(cfg)  # base data only: the same rows whatever the feedback
    scorers = {"candidate": LearnedScorer.load(trained.out_dir)}
    champ_dir, champ_source = _champion_dir(
        opts, cfg, serve_dir, champion_loadable, work / "champion"
    )
    if champ_dir is not None:
        scorers["champion"] = LearnedScorer.load(champ_dir)
    measured = _evaluate(cfg, heldout, scorers)
    verdict: GateResult = gate(measured["candidate"], measured.get("champion"), opts.gate)
    timings["evaluate"] = time.perf_counter() - t

    registered = (trained.mlflow or {}).get("registered_version")
    promoted = verdict.promote and opts.promote
    if promoted:
        publish_model_dir(trained.out_dir, serve_dir)
        alias += _sync(opts, cfg, serve_dir, "after publishing", prefer=registered)
    result = RetrainResult(
        candidate_dir=str(trained.out_dir),
        candidate_version=trained.model_version,
        registered_version=registered,
        champion_version=scorers["champion"].version if "champion" in scorers else None,
        champion_source=champ_source,
        candidate_metrics=measured["candidate"],
        champion_metrics=measured.get("champion"),
        gate={
            "promote": verdict.promote,
            "reasons": list(verdict.reasons),
            "config": asdict(opts.gate),
        },
        promoted=promoted,
        serve_dir=str(serve_dir),
        export={
            **stats.as_dict(),
            "score_bar": cfg.judge_score_bar,
            "since": opts.since.isoformat() if opts.since else None,
            "until": opts.until.isoformat() if opts.until else None,
        },
        data_snapshot=str((trained.report.get("data") or {}).get("snapshot") or ""),
        timings={k: round(v, 2) for k, v in timings.items()},
        heldout=heldout.as_dict(),
        unlabelled={
            "max_log_rows": opts.max_log_rows,
            "pseudo_labels": bool(cfg.log_intents_as_labels),
        },
        alias=alias,
    )
    _annotate(trained.mlflow, result)
    (work / "retrain_report.json").write_text(
        json.dumps(result.as_dict(), indent=2, default=str), encoding="utf-8"
    )
    return result
