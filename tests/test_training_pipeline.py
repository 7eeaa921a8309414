"""The ``tiny`` preset end to end (load, embed, train, calibrate, export, parity, evaluate,
MLflow) into a temporary directory, served from there, with its own sqlite MLflow store
(the ``champion`` alias follows the served model); then the ``eval`` command on the model
it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_service.cli import main
from router_service.features import FEATURE_NAMES, messages_from_payload
from router_service.intents import INTENTS
from router_service.learned import LearnedScorer
from training.config import load_config
from training.train import TrainResult, run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainResult, Path]:
    tmp = tmp_path_factory.mktemp("tiny")
    cfg = load_config(
        "tiny",
        out_dir=str(tmp / "model"),
        report_dir=str(tmp / "reports"),
        mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        # one blended candidate, so the blend is trained, exported, checked for parity and
        # served here (the unblended heads are built by test_training_parity)
        intent_candidates=("tuned@h=0.5,ne=4",),
    )
    if not cfg.resolved_routellm_dir().is_dir():
        pytest.skip(f"RouteLLM data not found at {cfg.resolved_routellm_dir()}")
    return run_training(cfg, served_dir=tmp / "model"), tmp


def test_model_directory_is_complete_and_loadable(trained) -> None:
    result, tmp = trained
    out = tmp / "model"
    assert result.out_dir == out
    assert {p.name for p in out.iterdir()} == {
        "router.onnx",
        "tokenizer.json",
        "manifest.json",
        "MODEL_CARD.md",
    }
    assert not (tmp / ".model.staging").exists()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model_version"] == result.model_version
    assert manifest["intents"] == list(INTENTS)
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert manifest["embedder"]["type"] == "static"
    assert manifest["training_data"]["snapshot"]
    assert manifest["parity"]["ok"] is True
    blend = manifest["intent_blend"]
    assert (blend["heuristic_weight"], blend["non_english_weight"]) == (0.5, 4.0)
    assert manifest["selection"]["selected"]["intent"] == "tuned@h=0.5,ne=4"
    behaviour = manifest["selection"]["behaviour"]  # every strong-win candidate, on ShareGPT
    tiny = load_config("tiny").strong_candidates
    assert set(behaviour) == {"heuristic", *(f"learned_{c}" for c in tiny)}
    shipped = behaviour[f"learned_{manifest['selection']['selected']['strong']}"]
    assert 0.0 <= shipped["cheap"] <= 1.0 and "coding" in shipped
    assert manifest["metrics"]["intent_accuracy"] >= 0
    scorer = LearnedScorer.load(out)
    assert scorer.version == result.model_version
    s = scorer.score(messages_from_payload("Write a Python function that reverses a list."))
    assert abs(sum(s.intent_scores.values()) - 1) < 1e-5
    card = (out / "MODEL_CARD.md").read_text(encoding="utf-8")
    for words in (
        "APGR",
        "ECE",
        "Latency",
        "Limitations",
        "0.603",
        "heuristic's keyword-only",
        "ShareGPT chitchat → strong",
        "learned − heuristic [95% CI]",
        result.model_version,
    ):
        assert words in card


def test_report_covers_intents_routing_calibration_latency(trained) -> None:
    result, tmp = trained
    r = result.report
    assert r["parity"]["ok"] and r["parity"]["max_abs_diff_intent"] <= 1e-4
    for name in ("learned", "heuristic"):
        assert 0 <= r["intent"]["sharegpt_test"][name]["accuracy"] <= 1
    assert len(r["intent"]["sharegpt_test"]["learned"]["confusion"]) == len(INTENTS)
    for bench in ("mmlu", "gsm8k"):
        scorers = r["routing"][bench]["scorers"]
        assert set(scorers) == {"random", "heuristic", "knn", "learned"}
        for m in scorers.values():
            assert 0 <= m["apgr"] <= 1.2 and len(m["curve"]["strong_share"]) == 21
    assert set(r["routing_lobo"]) == {"mmlu->gsm8k", "gsm8k->mmlu"}
    assert r["reference"]["routellm_mmlu_apgr"] == 0.603
    cal = r["calibration"]
    assert {"intent_ece_before", "intent_ece_after", "strong_win_ece_after"} <= set(cal)
    assert r["latency"]["decision_p50_us"] > 0
    assert (tmp / "reports" / result.model_version / "eval_report.json").is_file()
    # intents are split by hash of the text: train/calib/test never share a prompt
    counts = r["data"]["counts"]["intent_rows"]["sharegpt"]
    assert set(counts) == {"train", "calib", "test"}


def test_run_is_logged_and_registered_in_mlflow(trained) -> None:
    import mlflow

    result, tmp = trained
    assert result.mlflow is not None
    uri = result.mlflow["tracking_uri"]
    assert uri == f"sqlite:///{tmp / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(result.mlflow["run_id"])
    assert run.data.params["name"] == "tiny"
    assert "intent_accuracy" in run.data.metrics and "apgr" in run.data.metrics
    assert run.data.tags["model_version"] == result.model_version
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert {"bundle/manifest.json", "bundle/MODEL_CARD.md", "bundle/tokenizer.json"} <= arts
    mv = client.get_model_version("learned-router", str(result.mlflow["registered_version"]))
    assert mv.tags["model_version"] == result.model_version
    assert (tmp / "mlruns").is_dir()
    # written into the served dir: the alias marks it
    champion = client.get_model_version_by_alias("learned-router", "champion")
    assert str(champion.version) == str(result.mlflow["registered_version"])
    assert result.champion is not None and result.champion.moved


def test_eval_command_on_the_saved_model(trained, capsys: pytest.CaptureFixture[str]) -> None:
    _, tmp = trained
    out = tmp / "eval.json"
    code = main(["eval", "--config", "tiny", "--model", str(tmp / "model"), "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["metrics"]["intent_accuracy"] >= 0
    assert "learned" in report["routing"]["mmlu"]["scorers"]
    assert "APGR" in capsys.readouterr().out


def test_eval_command_reports_a_broken_model(tmp_path: Path, capsys) -> None:
    code = main(["eval", "--config", "tiny", "--model", str(tmp_path / "missing")])
    assert code == 1
    assert str(tmp_path / "missing") in capsys.readouterr().err
