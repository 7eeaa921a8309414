"""Scorer kind + model directory -> a ready ``Scorer`` (learned, or the heuristic fallback).

``load_scorer("learned", path)`` loads the exported model; when it is missing or broken
it logs one error line naming the path and the reason and returns the heuristic scorer
with that message, so requests keep being routed. The caller decides the directory
(``DEFAULT_MODEL_DIR`` or its own settings, e.g. ``ROUTER_MODEL_DIR``); nothing here reads
the environment."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from router_service.decision import Scorer
from router_service.heuristic import HeuristicScorer

logger = logging.getLogger(__name__)

ScorerKind = Literal["learned", "heuristic"]
SCORER_KINDS: tuple[ScorerKind, ...] = ("learned", "heuristic")

# The repository's ``models/default`` (where ``learned-router train`` exports by default).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "default"


def load_scorer(
    kind: ScorerKind | str, model_dir: Path | str | None = None, *, log: bool = True
) -> tuple[Scorer, str | None]:
    """(kind, model_dir) -> (scorer, error). ``error`` is None unless the fallback was used.

    ``log=False`` leaves reporting the error to the caller (the CLI prints it itself)."""
    if kind == "heuristic":
        return HeuristicScorer(), None
    if kind != "learned":
        raise ValueError(f"unknown scorer {kind!r}; expected one of {list(SCORER_KINDS)}")
    path = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
    try:
        from router_service.learned import LearnedScorer

        scorer: Scorer = LearnedScorer.load(path)
    except Exception as exc:  # ModelLoadError, or anything a broken model file raises
        # ModelLoadError already reads "cannot load learned model from <path>: <reason>".
        message = str(exc) or type(exc).__name__
        if str(path) not in message:
            message = f"cannot load learned model from {path}: {message}"
        error = f"{message}; falling back to the heuristic scorer"
        if log:
            logger.error(error)
        return HeuristicScorer(), error
    return scorer, None
