"""router_service.scoring.load_scorer: the learned model, or the heuristic with a reason."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from router_service import learned
from router_service.heuristic import HeuristicScorer
from router_service.scoring import DEFAULT_MODEL_DIR, load_scorer


def test_default_model_dir_is_the_repository_models_default() -> None:
    assert Path(__file__).resolve().parent.parent / "models" / "default" == DEFAULT_MODEL_DIR


def test_heuristic_needs_no_model(tmp_path: Path) -> None:
    scorer, error = load_scorer("heuristic", tmp_path / "ignored")
    assert isinstance(scorer, HeuristicScorer) and error is None


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown scorer 'magic'"):
        load_scorer("magic", None)


def test_missing_model_falls_back_and_logs(tmp_path: Path, caplog) -> None:
    missing = tmp_path / "absent"
    with caplog.at_level(logging.ERROR, logger="router_service.scoring"):
        scorer, error = load_scorer("learned", missing)
    assert isinstance(scorer, HeuristicScorer)
    assert error is not None and str(missing) in error and "heuristic" in error
    assert [r.getMessage() for r in caplog.records] == [error]


def test_corrupt_model_falls_back(tmp_path: Path, caplog) -> None:
    model = tmp_path / "broken"
    model.mkdir()
    for name in ("router.onnx", "tokenizer.json", "manifest.json"):
        (model / name).write_bytes(b"\x00garbage")
    with caplog.at_level(logging.ERROR, logger="router_service.scoring"):
        scorer, error = load_scorer("learned", model)
    assert isinstance(scorer, HeuristicScorer)
    assert error is not None and str(model) in error
    assert caplog.records


def test_log_false_leaves_reporting_to_the_caller(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.ERROR, logger="router_service.scoring"):
        _, error = load_scorer("learned", tmp_path / "absent", log=False)
    assert error is not None and not caplog.records


def test_unexpected_exceptions_also_fall_back_with_the_path(tmp_path: Path, monkeypatch) -> None:
    def explode(model_dir):
        raise RuntimeError("onnxruntime said no")

    monkeypatch.setattr(learned.LearnedScorer, "load", staticmethod(explode))
    scorer, error = load_scorer("learned", tmp_path)
    assert isinstance(scorer, HeuristicScorer)
    assert error == (
        f"cannot load learned model from {tmp_path}: onnxruntime said no; "
        "falling back to the heuristic scorer"
    )


def test_a_loadable_model_is_returned(tmp_path: Path, monkeypatch) -> None:
    sentinel = object()
    seen: list[Path] = []

    def load(model_dir):
        seen.append(model_dir)
        return sentinel

    monkeypatch.setattr(learned.LearnedScorer, "load", staticmethod(load))
    scorer, error = load_scorer("learned", str(tmp_path))
    assert scorer is sentinel and error is None
    assert seen == [tmp_path]
