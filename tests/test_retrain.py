"""Retraining from feedback: the export (decision log + feedback -> training files read by
``training.data``), and a real retrain whose candidate is refused by the gate (registered,
not promoted, served files untouched) with the champion taken from the MLflow registry."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from fakes.loop_models import trained_champion
from router_service.learned import LearnedScorer
from router_service.logstore import DecisionLog, LogRow, create_decision_log
from training.feedback_dataset import export
from training.gate import GateConfig
from training.retrain import RetrainOptions, run_retrain
from training.sources import load_feedback


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
    loose = GateConfig(
        intent_accuracy_tol=1, apgr_tol=1, latency_p50_budget_us=1e9, latency_p99_budget_us=1e9
    )
    first = retrain(tmp_path, serve, db, loose)
    assert first.promoted and first.champion_version == champion_version
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    alias = client.get_model_version_by_alias("learned-router", "champion")
    assert str(alias.version) == str(first.registered_version)

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
    report = json.loads((Path(second.candidate_dir).parent / "retrain_report.json").read_text())
    assert report["promoted"] is False
