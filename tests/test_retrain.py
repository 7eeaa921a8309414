"""Retraining from feedback: the export (decision log + feedback -> training files read by
``training.data.corpus``); the gate's fixed held-out set (feedback cannot change it); the
``train --from-feedback`` options and summary; and real retrains: one promoted (healing the
``champion`` alias first), one refused by the gate (registered, not promoted, served files
untouched) with the champion taken from the MLflow registry."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from test_training_data import make_routellm, write_jsonl

from fakes.loop_models import trained_champion, write_model
from router_service.cli import build_parser, main
from router_service.learned import LearnedScorer
from router_service.logstore import DecisionLog, LogRow, create_decision_log
from training.commands import retrain_options, retrain_summary, train_config, usage_error
from training.config import TrainConfig, load_config
from training.data.corpus import load_corpus
from training.data.sources import load_feedback
from training.evaluate.gate_eval import gate_metrics, heldout_fingerprint, load_heldout
from training.loop.feedback_dataset import export
from training.loop.gate import GateConfig
from training.loop.registry import log_run
from training.loop.retrain import RetrainOptions, RetrainResult, run_retrain


def make_log(path: Path) -> DecisionLog:
    log = create_decision_log(None, path)
    asyncio.run(log.start())
    return log


def record(log: DecisionLog, rid: str, tier: str, text: str | None = None) -> None:
    content = {"role": "user", "content": text or f"question {rid}"}
    messages = [content] if text != "" else [{"role": "user"}]  # "" = redacted to roles
    log.record_sync(LogRow(rid, messages=messages, tier=tier, intent="math", answer="a"))


@pytest.fixture
def filled_log(tmp_path: Path) -> DecisionLog:
    log = make_log(tmp_path / "log.db")
    for rid, tier in [
        ("r0", "local"),
        ("r1", "primary"),
        ("r2", "strong"),
        ("r3", "local"),
        ("r4", "local"),
        ("r6", "local"),
        ("r7", "primary"),
    ]:
        record(log, rid, tier)
    record(log, "r5", "local", text="")
    log.add_feedback("r0", "judge", judge_model="j", score=3)
    log.add_feedback("r1", "judge", judge_model="j", score=9)
    log.add_feedback("r2", "judge", judge_model="j", score=2)  # strong tier: no label
    log.add_feedback("r3", "judge", judge_model="j#pairwise", preference="strong")
    log.add_feedback("r4", "judge", judge_model="j", status="failed", error="timeout")
    log.add_feedback("r5", "judge", judge_model="j", score=1)  # no text: skipped
    log.add_feedback("r6", "user", thumbs=-1)
    log.add_feedback("r7", "judge", judge_model="j", score=2)
    log.add_feedback("r7", "user", thumbs=1)  # 1:1 -> keeps the cheap tier
    log.add_feedback("ghost", "user", thumbs=1)  # no such request
    return log


def test_export_labels_requests_and_feeds_the_trainer(filled_log, tmp_path) -> None:
    fb_path, logs_path, stats = export(filled_log, tmp_path / "out", score_bar=6.0)
    rows = {r["request_id"]: r for r in map(json.loads, fb_path.read_text().splitlines())}
    assert {k: v["preference"] for k, v in rows.items()} == {
        "r0": "strong",
        "r1": "cheap",
        "r3": "strong",
        "r6": "strong",
        "r7": "cheap",
    }
    assert rows["r0"]["messages"] == [{"role": "user", "content": "question r0"}]
    assert rows["r7"]["judge"] == "j+user" and rows["r7"]["n_feedback"] == 2
    assert logs_path is not None and len(logs_path.read_text().splitlines()) == 7
    assert (stats.labelled, stats.positives, stats.orphan_feedback) == (5, 3, 1)
    assert stats.skipped_no_text == 1
    assert (stats.feedback_rows, stats.feedback_failed) == (10, 1)
    again = export(filled_log, tmp_path / "again", score_bar=6.0)[2]
    assert again.sha256 == stats.sha256  # same data -> same snapshot hash
    loaded = load_feedback([fb_path], 6.0)
    by_text = {r["messages"][0]["content"]: r["strong_win"] for r in loaded}
    assert by_text == {
        "question r0": 1,
        "question r1": 0,
        "question r3": 1,
        "question r6": 1,
        "question r7": 0,
    }
    filled_log.close_sync()


def test_export_keeps_the_most_recent_unlabelled_logs(filled_log, tmp_path) -> None:
    _, logs_path, stats = export(filled_log, tmp_path / "cap", max_log_rows=3)
    assert logs_path is not None
    ids = [json.loads(line)["request_id"] for line in logs_path.read_text().splitlines()]
    assert ids == ["r4", "r6", "r7"] and stats.log_rows_written == 3
    assert stats.labelled == 5  # the cap never drops labelled requests
    filled_log.close_sync()


def test_export_honours_the_time_window(filled_log, tmp_path) -> None:
    _, _, stats = export(filled_log, tmp_path / "none", since=None, until=None)
    assert stats.log_rows == 8
    first = next(filled_log.iter_rows())["created_at"]
    _, _, none = export(filled_log, tmp_path / "empty", until=first)
    assert (none.log_rows, none.labelled) == (0, 0)
    filled_log.close_sync()


@pytest.fixture
def base_cfg(tmp_path: Path) -> TrainConfig:
    """Small base data (handwritten prompts + fake RouteLLM MMLU/GSM8K outcomes) and an
    empty feedback folder."""
    make_routellm(tmp_path / "routellm")
    write_jsonl(
        tmp_path / "prompts" / "p.jsonl",
        [
            {"prompt": f"what is the capital of country {i}?", "intent": "knowledge_qa"}
            for i in range(40)
        ],
    )
    return TrainConfig(
        prompts_glob=str(tmp_path / "prompts" / "*.jsonl"),
        sharegpt_labels_glob=str(tmp_path / "none" / "*.jsonl"),
        routellm_dir=str(tmp_path / "routellm"),
        feedback_globs=(str(tmp_path / "feedback" / "*.jsonl"),),
        cache_dir=str(tmp_path / "cache"),
    )


def test_feedback_on_heldout_prompts_does_not_change_the_heldout_set(base_cfg, tmp_path) -> None:
    before = load_heldout(base_cfg)
    frame = before.base.frame
    bench = frame[(frame["split"] == "test") & frame["win_source"].isin(["mmlu", "gsm8k"])]
    assert len(bench) >= 20
    # Feedback on logged prompts identical to held-out benchmark prompts, contradicting them.
    write_jsonl(
        tmp_path / "feedback" / "judge.jsonl",
        [
            {
                "request_id": f"r{i}",
                "messages": row.messages,
                "tier": "local",
                "preference": "cheap" if row.strong_win else "strong",
                "judge": "j",
            }
            for i, row in enumerate(bench.head(20).itertuples())
        ],
    )
    after = load_heldout(base_cfg)
    assert after.fingerprint == before.fingerprint
    assert after.as_dict()["rows"] == before.as_dict()["rows"]
    # What the gate read before: the training corpus, where feedback wins the merge.
    assert heldout_fingerprint(load_corpus(base_cfg)) != before.fingerprint
    # The feedback rows are still scored, apart, for the informational AUC.
    assert before.feedback is None and after.feedback is not None
    assert after.as_dict()["feedback_rows"] == 20
    scorer = LearnedScorer.load(write_model(tmp_path / "model", "m-1"))
    metrics = gate_metrics(after, scorer)
    assert metrics["feedback_n"] == 20 and 0 <= metrics["feedback_auc"] <= 1
    assert {"apgr", "apgr_mmlu"} <= set(metrics)
    quality = {k: v for k, v in metrics.items() if not k.startswith("feedback")}
    assert quality == gate_metrics(before, scorer)


def parse(*argv: str) -> Any:
    return build_parser(("training.commands",)).parse_args(["train", *argv])


def test_retrain_flags_reach_the_options() -> None:
    args = parse(
        "--from-feedback",
        "--score-bar",
        "7.5",
        "--since",
        "2025-01-31",
        "--until",
        "2025-02-01T12:00:00+02:00",
    )
    assert usage_error(args) is None
    opts = retrain_options(args)
    assert opts.overrides == {"judge_score_bar": 7.5}
    assert opts.since == datetime(2025, 1, 31, tzinfo=UTC)
    assert opts.until == datetime(2025, 2, 1, 10, tzinfo=UTC)
    assert load_config(opts.config, **opts.overrides).judge_score_bar == 7.5
    defaults = retrain_options(parse("--from-feedback"))
    assert (defaults.since, defaults.until, defaults.overrides) == (None, None, {})
    plain = train_config(parse("--score-bar", "4", "--from-feedback", "fb.jsonl"))
    assert plain.judge_score_bar == 4.0 and plain.feedback_globs[-1] == "fb.jsonl"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--score-bar", "11"], "must be a number from 1 to 10, got '11'"),
        (["--score-bar", "0.5"], "must be a number from 1 to 10"),
        (["--score-bar", "nan"], "must be a number from 1 to 10"),
        (["--score-bar", "six"], "must be a number from 1 to 10"),
        (["--since", "last tuesday"], "not an ISO 8601 date/time: 'last tuesday'"),
        (["--until", "2025-13-01"], "not an ISO 8601 date/time"),
        (["--max-log-rows", "-1"], "must be a whole number >= 0"),
    ],
)
def test_bad_values_are_usage_errors(argv: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["train", "--from-feedback", *argv])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_time_window_must_be_ordered_and_read_the_decision_log(capsys) -> None:
    assert main(["train", "--from-feedback", "--since", "2025-02-01", "--until", "2025-01-01"]) == 2
    assert "--since (2025-02-01T00:00:00+00:00) must be before --until" in capsys.readouterr().err
    assert main(["train", "--since", "2025-01-01"]) == 2  # a plain train reads no log
    assert "use them with a bare --from-feedback" in capsys.readouterr().err


def test_score_bar_in_a_config_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"preset": "tiny", "judge_score_bar": 12}), encoding="utf-8")
    with pytest.raises(ValueError, match="score bar must be a number from 1 to 10, got 12"):
        load_config(str(path))


def summary_of(**changes: Any) -> str:
    export_stats = {
        "log_rows": 25_000,
        "log_rows_written": 20_000,
        "skipped_no_text": 40,
        "requests_with_feedback": 320,
        "labelled": 300,
        "positives": 120,
        "feedback_rows": 410,
        "feedback_failed": 5,
        "orphan_feedback": 2,
        "score_bar": 6.0,
        "since": "2025-01-01T00:00:00+00:00",
        "until": None,
    }
    result = RetrainResult(
        candidate_dir="/w/candidate",
        candidate_version="learned-2",
        registered_version=8,
        champion_version="learned-1",
        champion_source="served dir /srv",
        candidate_metrics={},
        champion_metrics={},
        gate={"promote": True, "reasons": ["ok"], "config": {}},
        promoted=True,
        serve_dir="/srv",
        export=export_stats,
        data_snapshot="s",
        timings={},
        heldout={"fingerprint": "ab" * 32, "rows": 900, "feedback_rows": 45},
        unlabelled={"max_log_rows": 20_000, "pseudo_labels": False},
        alias=[
            "at start: champion = v7 (learned-1)",
            "after publishing: champion = v8 (learned-2, moved from v7)",
        ],
    )
    for key, value in changes.items():
        setattr(result, key, value)
    return "\n".join(retrain_summary(result))


def test_summary_says_what_the_logged_requests_were_used_for() -> None:
    text = summary_of()
    assert "decision log in [2025-01-01T00:00:00+00:00, now): 25000 rows read" in text
    assert "labelled from feedback: 300 requests (120 strong wins, score bar 6.0)" in text
    live = "the report's live-traffic section"
    assert f"unlabelled: 20000 newest logged requests (cap 20000) -> {live} only" in text
    assert "held-out set (base data only): 900 test rows, fingerprint abababababababab" in text
    assert "promoted: /srv now holds learned-2" in text
    assert "registry, after publishing: champion = v8 (learned-2, moved from v7)" in text
    pseudo = summary_of(unlabelled={"max_log_rows": None, "pseudo_labels": True})
    assert f"(cap none) -> {live} and train-split intent pseudo-labels" in pseudo


def retrain(tmp: Path, serve: Path, db: Path, gate: GateConfig, **kw: Any) -> Any:
    return run_retrain(
        RetrainOptions(
            config="tiny",
            serve_dir=serve,
            work_dir=tmp / f"work-{len(list(tmp.iterdir()))}",
            sqlite_path=db,
            gate=gate,
            mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
            overrides={
                "report_dir": str(tmp / "reports"),
                "static_from_model": str(trained_champion()),
            },
            **kw,
        )
    )


@pytest.mark.routellm
def test_refused_candidate_is_registered_but_not_promoted(tmp_path) -> None:
    import mlflow

    db = tmp_path / "log.db"
    log = make_log(db)
    for i in range(30):
        record(log, f"q{i}", "local", text=f"Explain in detail how topic {i} works")
        log.add_feedback(f"q{i}", "judge", judge_model="j", score=2 if i % 3 else 9)
    log.close_sync()
    serve = tmp_path / "serve"
    shutil.copytree(trained_champion(), serve)
    champion_version = LearnedScorer.load(serve).version
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # The served model is registered but the alias was never set (a plain ``train`` before
    # the alias followed the served dir, or a run that died after publishing).
    cfg = load_config("tiny", mlflow_tracking_uri=uri, report_dir=str(tmp_path / "reports"))
    served_registered = log_run(cfg, serve, {}, {}, str(champion_version))["registered_version"]
    loose = GateConfig(
        intent_accuracy_tol=1, apgr_tol=1, latency_p50_budget_us=1e9, latency_p99_budget_us=1e9
    )
    first = retrain(tmp_path, serve, db, loose)
    assert first.promoted and first.champion_version == champion_version
    assert first.alias == [  # healed at the start, then moved by the promotion
        f"at start: champion = v{served_registered} ({champion_version}, moved from none)",
        f"after publishing: champion = v{first.registered_version} "
        f"({first.candidate_version}, moved from v{served_registered})",
    ]
    assert first.export["log_rows_written"] == 30 and first.export["labelled"] == 30
    client = mlflow.MlflowClient(tracking_uri=uri)
    alias = client.get_model_version_by_alias("learned-router", "champion")
    assert str(alias.version) == str(first.registered_version)
    assert alias.tags["heldout_sha256"] == first.heldout["fingerprint"]

    # No served model this time: the champion comes from the registry's alias. A latency
    # budget nothing can meet refuses the candidate.
    strict = GateConfig(latency_p50_budget_us=0.001)
    empty = tmp_path / "nothing-served"
    second = retrain(tmp_path, empty, db, strict)
    assert not second.promoted and not second.gate["promote"]
    assert second.champion_version == first.candidate_version
    assert second.champion_source == f"registry version {first.registered_version}"
    assert any("OVER BUDGET" in r for r in second.gate["reasons"])
    assert second.candidate_metrics["apgr"] > 0 and second.champion_metrics["apgr"] > 0
    assert not empty.exists()  # nothing published
    mv = client.get_model_version("learned-router", str(second.registered_version))
    assert mv.tags["gate"] == "not_promoted" and "OVER BUDGET" in mv.tags["gate_reasons"]
    alias = client.get_model_version_by_alias("learned-router", "champion")
    assert str(alias.version) == str(first.registered_version)  # the alias did not move
    assert second.alias == [f"at start: champion = v{first.registered_version} (nothing served)"]
    assert second.heldout == first.heldout  # the same held-out rows for every retrain
    report = json.loads((Path(second.candidate_dir).parent / "retrain_report.json").read_text())
    assert report["promoted"] is False
