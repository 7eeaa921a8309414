"""Training data -> the transformer-embedding scorers the learned router is compared with.

Both embed the scored text with the full all-MiniLM-L6-v2 transformer (sentence-
transformers on torch) and append the hand-crafted features the learned model uses; they
implement the ``Scorer`` protocol, so they go through the same ``routing.decide``:

* ``MiniLMSklearnScorer`` (``minilm_sklearn``): the slow "obvious" baseline, two
  scikit-learn pipelines (``StandardScaler`` + ``LogisticRegression``), one for the 14
  intents and one for ``strong_win``.
* ``TransformerHeadsScorer`` (``learned_transformer``): the training code's own
  ``embedder: transformer`` variant, i.e. ``training.model.heads.fit_heads`` (boosted heads +
  temperature/Platt calibration) on MiniLM embeddings, applied with scikit-learn (the ONNX
  graph can only carry a static table, so this variant is never exported).

``baseline_data`` loads a capped corpus (``training.data.corpus.load_corpus`` with at most
``n_rows`` rows per source) and MiniLM embeddings of all its rows (``embed_cached``,
shared on-disk cache). Fitted heads are pickled under ``.cache/learned-router/bench/`` and
reused when the data snapshot, size and seed are unchanged."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from router_service.decision import Scores
from router_service.features import MAX_TOKENS, handcrafted_features, scored_text
from router_service.intents import INTENTS

BASELINE_NAME = "minilm_sklearn"
TRANSFORMER_NAME = "learned_transformer"
T = TypeVar("T")


@dataclass
class BaselineData:
    corpus: Any  # training.data.corpus.Corpus
    embeddings: np.ndarray  # MiniLM, one row per corpus row
    source: str  # MiniLM weights directory (or hub name)
    cache_dir: Path
    n_rows: int
    seed: int

    def key(self, kind: str) -> str:
        spec = f"{kind}|{self.source}|{self.corpus.snapshot}|{self.n_rows}|{self.seed}|{MAX_TOKENS}"
        return hashlib.sha1(spec.encode()).hexdigest()[:12]

    def design(self, rows: np.ndarray) -> np.ndarray:
        return np.concatenate([self.embeddings[rows], self.corpus.features[rows]], axis=1)


def baseline_data(n_rows: int = 1000, seed: int = 1337) -> BaselineData:
    """A capped corpus + MiniLM embeddings of every row (cached)."""
    from training.config import load_config
    from training.data.corpus import load_corpus
    from training.model.embed import TransformerEmbedding, embed_cached, minilm_source

    cfg = load_config("default", max_intent_rows=n_rows, max_benchmark_rows=n_rows, seed=seed)
    cache_dir = cfg.path(cfg.cache_dir)
    corpus = load_corpus(cfg)
    source = minilm_source(cfg.minilm_source)
    emb = embed_cached(TransformerEmbedding(source), corpus.frame["text"].tolist(), cache_dir)
    return BaselineData(corpus, np.asarray(emb, np.float32), source, cache_dir, n_rows, seed)


def _cached(data: BaselineData, kind: str, fit: Callable[[], T]) -> T:
    path = data.cache_dir / "bench" / f"{kind}-{data.key(kind)}.pkl"
    if path.is_file():
        with path.open("rb") as fh:
            cached: T = pickle.load(fh)
        return cached
    value = fit()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(value, fh)
    os.replace(tmp, path)
    return value


def cached_path(data: BaselineData, kind: str) -> Path:
    return data.cache_dir / "bench" / f"{kind}-{data.key(kind)}.pkl"


# --- MiniLM + logistic regression -----------------------------------------------------------


@dataclass
class BaselineHeads:
    """The two fitted sklearn pipelines and what they were trained on."""

    intent: Any  # Pipeline(StandardScaler, LogisticRegression); classes are intent names
    strong: Any  # Pipeline(StandardScaler, LogisticRegression); classes 0/1
    source: str
    n_intent_rows: int
    n_strong_rows: int


def _pipeline(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, random_state=seed)
    )


def fit_minilm_baseline(data: BaselineData) -> BaselineHeads:
    """Train split of the capped corpus -> fitted logistic-regression heads (cached)."""

    def fit() -> BaselineHeads:
        corpus, frame = data.corpus, data.corpus.frame
        ii = np.flatnonzero(corpus.intent_mask("train"))
        ww = np.flatnonzero(corpus.win_mask("train"))
        intent = _pipeline(data.seed).fit(
            data.design(ii), frame["intent"].iloc[ii].astype(str).to_numpy()
        )
        strong = _pipeline(data.seed).fit(
            data.design(ww), frame["strong_win"].iloc[ww].astype(int).to_numpy()
        )
        return BaselineHeads(intent, strong, data.source, len(ii), len(ww))

    return _cached(data, BASELINE_NAME, fit)


def load_sentence_transformer(source: str) -> Any:
    if Path(source).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging

    import transformers
    from sentence_transformers import SentenceTransformer

    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    transformers.logging.set_verbosity_error()  # no load report / progress bars on stderr
    transformers.logging.disable_progress_bar()
    model = SentenceTransformer(source, device="cpu")
    model.max_seq_length = MAX_TOKENS
    return model


class _MiniLMScorer:
    """Shared front half: scored text -> [MiniLM embedding || hand-crafted features]."""

    name = "minilm"
    version: str | None = None

    def __init__(self, source: str, model: Any | None = None) -> None:
        self.model = model if model is not None else load_sentence_transformer(source)

    def design_row(self, messages: Sequence[Mapping[str, str]]) -> np.ndarray:
        text = scored_text(messages)
        feats = np.asarray(handcrafted_features(messages, text), np.float32)
        emb = self.model.encode(
            [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.concatenate([np.asarray(emb, np.float32)[0], feats]).reshape(1, -1)

    @staticmethod
    def scores(probs: np.ndarray, win: float) -> Scores:
        return Scores(
            intent_scores=dict(zip(INTENTS, (float(p) for p in probs), strict=True)),
            strong_win_rate=min(max(float(win), 0.0), 1.0),
        )


class MiniLMSklearnScorer(_MiniLMScorer):
    """Messages -> ``Scores`` with MiniLM (torch) + two sklearn logistic regressions."""

    name = BASELINE_NAME
    version: str | None = "minilm+logreg"

    def __init__(self, heads: BaselineHeads, model: Any | None = None) -> None:
        super().__init__(heads.source, model)
        self.heads = heads
        self._intent_cols = [INTENTS.index(str(c)) for c in heads.intent.classes_]
        self._strong_col = list(heads.strong.classes_).index(1)

    def score(self, messages: Sequence[Mapping[str, str]]) -> Scores:
        x = self.design_row(messages)
        probs = np.zeros(len(INTENTS))
        probs[self._intent_cols] = self.heads.intent.predict_proba(x)[0]
        return self.scores(probs, self.heads.strong.predict_proba(x)[0, self._strong_col])


# --- the training code's transformer variant ------------------------------------------------


def fit_transformer_heads(data: BaselineData) -> Any:
    """``training.model.heads.fit_heads`` on MiniLM embeddings of the capped corpus (cached)."""
    from training.config import load_config
    from training.model.heads import fit_heads

    cfg = load_config("default", seed=data.seed)

    def fit() -> Any:
        rows = np.arange(len(data.corpus.frame))
        heads, _ = fit_heads(data.corpus, data.design(rows), cfg)
        return heads

    return _cached(data, TRANSFORMER_NAME, fit)


class TransformerHeadsScorer(_MiniLMScorer):
    """Messages -> ``Scores`` with MiniLM + the project's calibrated boosted heads (sklearn)."""

    name = TRANSFORMER_NAME
    version: str | None = "minilm+hgb"

    def __init__(self, heads: Any, source: str, model: Any | None = None) -> None:
        super().__init__(source, model)
        self.heads = heads

    def score(self, messages: Sequence[Mapping[str, str]]) -> Scores:
        probs, win = self.heads.predict(self.design_row(messages))
        return self.scores(np.asarray(probs)[0], float(np.asarray(win)[0]))
