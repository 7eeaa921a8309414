"""[embedding || hand-crafted features] -> two calibrated heads (the sklearn reference).

* intent (``cfg.intent_head``): "linear", a logistic regression on the pooled embedding
  whose log-probabilities are the logits, or "hgb", a ``HistGradientBoostingClassifier``
  over [design matrix || that regression's out-of-fold log-probabilities] (columns always
  in ``INTENTS`` order; a class absent from training gets the constant logit
  ``MISSING_LOGIT``). Calibrated by temperature scaling: ``softmax(z / T)``.
* strong_win (``cfg.strong_head``, see ``StrongHead``): "hgb" (boosted trees on the design
  matrix), "linear" (one logistic regression on the pooled embedding), "gain" (two: the
  probability that the strong model is right minus the probability that the weak one is)
  or "stack" (small boosted trees over the gain head's source-cross-fitted logits and the
  hand-crafted features, ``training.model.stacked_gain``).
  Calibrated by Platt scaling of the raw score: ``sigmoid(a * raw + b)``.

Which kinds ship is decided on held-out sources (``training.evaluate.ood``). The ONNX graph
reproduces every raw score (trees with the same leaves, the same Gemms), so
``Heads.predict`` here and the graph agree to float32 precision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, log_softmax, softmax
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from router_service.features import FEATURE_NAMES
from router_service.intent_blend import NON_ASCII_FEATURE, IntentBlend
from router_service.intents import INTENT_INDEX, INTENTS
from training.config import TrainConfig
from training.data.corpus import Corpus
from training.model.calibrators import PlattScaler, TemperatureScaler, fit_blend
from training.model.linear import LinearLogits, fit_linear
from training.model.stacked_gain import StackedGain, fit_stacked_gain

MISSING_LOGIT = -30.0  # raw logit of an intent with no training example


def design_matrix(embeddings: np.ndarray, features: np.ndarray) -> np.ndarray:
    """[N, D] embeddings and [N, F] features -> [N, D+F] float32 (the graph's concat)."""
    return np.concatenate(
        [np.asarray(embeddings, np.float32), np.asarray(features, np.float32)], axis=1
    )


class _UnweightedBinsHGB(HistGradientBoostingClassifier):
    """HGB whose feature bins come from unweighted quantiles even when fitted with weights.

    scikit-learn 1.9 computes weighted bin edges with one Python-level weighted percentile
    per (feature, bin): ~30 s for our 526 columns whatever the row count. The weights still
    drive the gradients, hessians and leaf values; only the split candidates are unweighted
    (the behaviour of scikit-learn before 1.8)."""

    def _bin_data(self, X: Any, sample_weight: Any, is_training_data: bool) -> Any:
        return super()._bin_data(X, None, is_training_data)


def _hgb(cfg: TrainConfig, head: str, n_rows: int) -> HistGradientBoostingClassifier:
    p = "intent" if head == "intent" else "strong"
    return _UnweightedBinsHGB(
        max_iter=getattr(cfg, f"{p}_max_iter"),
        learning_rate=getattr(cfg, f"{p}_learning_rate"),
        max_leaf_nodes=getattr(cfg, f"{p}_max_leaf_nodes"),
        min_samples_leaf=min(getattr(cfg, f"{p}_min_samples_leaf"), max(1, n_rows // 20)),
        l2_regularization=getattr(cfg, f"{p}_l2"),
        max_features=cfg.max_features,
        early_stopping=cfg.early_stopping and n_rows >= 200,
        validation_fraction=0.1,
        n_iter_no_change=15,
        random_state=cfg.seed,
        class_weight=cfg.intent_class_weight if head == "intent" else None,
    )


@dataclass
class LinearStack:
    """Logistic regression on the pooled embedding -> class log-probabilities.

    ``float32(log_softmax(E @ coef.T + intercept))`` over the classes seen in training, with
    ``E`` the first ``n_emb`` (float32) columns of the design matrix. The arithmetic is
    float64 here and in the graph (Cast + MatMul + Add + LogSoftmax + Cast): both then round
    the same value to float32, so the trees that read it take the same branches."""

    coef: np.ndarray  # [K, n_emb] float64
    intercept: np.ndarray  # [K] float64
    n_emb: int
    classes: np.ndarray  # [K] the INTENTS indices of the K rows

    @classmethod
    def of(cls, model: LogisticRegression, n_emb: int) -> LinearStack:
        """A fitted multinomial ``LogisticRegression`` on the first ``n_emb`` columns."""
        return cls(
            np.asarray(model.coef_, np.float64),
            model.intercept_.astype(float),
            n_emb,
            model.classes_.astype(np.int64),
        )

    def log_probs64(self, X: np.ndarray) -> np.ndarray:
        emb = np.asarray(X[:, : self.n_emb], np.float32).astype(np.float64)
        return np.asarray(log_softmax(emb @ self.coef.T + self.intercept, axis=1), np.float64)

    def log_probs(self, X: np.ndarray) -> np.ndarray:
        return self.log_probs64(X).astype(np.float32)

    def intent_logits(self, X: np.ndarray) -> np.ndarray:
        """-> [N, 14] log-probabilities in ``INTENTS`` order (``MISSING_LOGIT`` for classes
        absent from training): the logits of the "linear" intent head."""
        out = np.full((len(X), len(INTENTS)), MISSING_LOGIT, np.float64)
        out[:, self.classes.astype(int)] = self.log_probs64(X)
        return out


def _logreg(cfg: TrainConfig) -> LogisticRegression:
    return LogisticRegression(C=cfg.intent_stack_c, max_iter=2000)


def fit_intent_linear(X: np.ndarray, intents: np.ndarray, cfg: TrainConfig) -> LinearStack:
    """Rows and intent names -> the "linear" intent head: a logistic regression on the pooled
    embedding (``cfg.intent_linear_c``, ``cfg.intent_class_weight``)."""
    y = intent_labels(intents)
    if len(np.unique(y)) < 2:
        raise ValueError("the intent head needs at least two intents in the training data")
    n_emb = X.shape[1] - len(FEATURE_NAMES)
    model = LogisticRegression(
        C=cfg.intent_linear_c, max_iter=3000, class_weight=cfg.intent_class_weight
    ).fit(np.asarray(X[:, :n_emb], np.float32), y)
    return LinearStack.of(model, n_emb)


def fit_stack(X: np.ndarray, y: np.ndarray, cfg: TrainConfig) -> tuple[LinearStack, np.ndarray]:
    """Train rows + labels -> (linear model on all rows, its out-of-fold log-probabilities)."""
    n_emb = X.shape[1] - len(FEATURE_NAMES)
    emb = np.asarray(X[:, :n_emb], np.float32)
    folds = StratifiedKFold(5, shuffle=True, random_state=cfg.seed)
    oof = cross_val_predict(_logreg(cfg), emb, y, cv=folds, method="decision_function")
    oof = np.asarray(log_softmax(np.asarray(oof, np.float64), axis=1), np.float32)
    stack = LinearStack.of(_logreg(cfg).fit(emb, y), n_emb)
    return stack, oof


def fit_intent(
    X: np.ndarray, intents: np.ndarray, cfg: TrainConfig
) -> HistGradientBoostingClassifier:
    """Rows and intent names -> fitted intent classifier (classes are INTENTS indices)."""
    y = np.array([INTENT_INDEX[i] for i in intents], np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError("the intent head needs at least two intents in the training data")
    with threadpool_limits(cfg.train_threads, user_api="openmp"):
        return _hgb(cfg, "intent", len(y)).fit(X, y)


def fit_intent_stacked(
    X: np.ndarray, intents: np.ndarray, cfg: TrainConfig
) -> tuple[HistGradientBoostingClassifier, LinearStack | None]:
    """Rows and intent names -> (intent HGB, the linear model stacked under it or ``None``).

    Stacking needs ``cfg.intent_stack_c > 0``, three or more intents and five rows of each
    (one per fold); otherwise this is ``fit_intent``."""
    y = intent_labels(intents)
    counts = np.bincount(y)
    if cfg.intent_stack_c <= 0 or (counts > 0).sum() < 3 or counts[counts > 0].min() < 5:
        return fit_intent(X, intents, cfg), None
    stack, oof = fit_stack(X, y, cfg)
    return fit_intent(np.concatenate([np.asarray(X, np.float32), oof], axis=1), intents, cfg), stack


def source_weights(sources: np.ndarray, power: float, cap: float) -> np.ndarray:
    """Row sources -> sample weights (n_largest / n_source) ** power, at most ``cap``.

    power 1 gives every source about the same total weight (GSM8K's ~1k rows would
    otherwise count for a tenth of MMLU's ~10k); the cap keeps a handful of judge rows from
    being blown up into a source as heavy as a benchmark."""
    _, inverse, counts = np.unique(
        np.asarray(sources, str), return_inverse=True, return_counts=True
    )
    per_source = np.minimum((counts.max() / counts) ** power, cap)
    return per_source[inverse].astype(np.float64)


STRONG_KINDS = ("hgb", "linear", "gain", "stack")
INTENT_KINDS = ("hgb", "linear")


@dataclass
class StrongHead:
    """One strong-win scorer: ``raw(X)`` is the uncalibrated score Platt scaling maps.

    * "hgb": boosted trees, raw = their logit;
    * "linear": raw = the logit of one logistic regression on the pooled embedding;
    * "gain": raw = sigmoid(l_strong) - sigmoid(l_weak), two regressions predicting that the
      strong and the weak model answer correctly: the expected gain of routing up. Unlike
      one "strong right and weak wrong" logit, it can say "hard, but both fail";
    * "stack": raw = small boosted trees over [those two logits || hand-crafted features]
      (``StackedGain``), trained on logits cross-fitted by source."""

    kind: str
    trees: HistGradientBoostingClassifier | None = None
    linear: LinearLogits | None = None
    stacked: StackedGain | None = None

    def raw(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "hgb":
            assert self.trees is not None
            return np.asarray(self.trees.decision_function(X), np.float64).reshape(-1)
        if self.kind == "stack":
            assert self.stacked is not None
            return self.stacked.raw(X)
        assert self.linear is not None
        z = self.linear(X)
        if self.kind == "linear":
            return z[:, 0]
        return np.asarray(expit(z[:, 0]) - expit(z[:, 1]), np.float64)

    @property
    def rounds(self) -> int | None:
        if self.stacked is not None:
            return int(self.stacked.trees.n_iter_)
        return int(self.trees.n_iter_) if self.trees is not None else None


def outcome_targets(frame_rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """Strong-win rows -> (P(strong right), P(weak right)) targets of the "gain" head.

    Benchmark and AlpacaEval rows carry both; a judge verdict only says whether the cheap
    answer was good enough: strong_win 1 -> (1, 0), 0 -> (1, 1)."""
    win = frame_rows["strong_win"].to_numpy(np.float64)
    strong = frame_rows["strong_correct"].to_numpy(np.float64)
    weak = frame_rows["weak_correct"].to_numpy(np.float64)
    missing = np.isnan(strong) | np.isnan(weak)
    strong = np.where(missing, 1.0, strong)
    weak = np.where(missing, 1.0 - win, weak)
    return strong, weak


def fit_strong(
    X: np.ndarray,
    wins: np.ndarray,
    cfg: TrainConfig,
    sources: np.ndarray | None = None,
    outcomes: tuple[np.ndarray, np.ndarray] | None = None,
    kind: str | None = None,
    groups: np.ndarray | None = None,
) -> StrongHead:
    """Rows + strong-win labels (0/1 or soft) -> a fitted ``StrongHead`` of ``kind``
    (default ``cfg.strong_head``). ``sources``: per-row group for ``source_weights``;
    ``outcomes``: (strong right, weak right) targets, used by "gain" and "stack";
    ``groups``: per-row source group (``win_group``) "stack" cross-fits by (default
    ``sources``; with ``cfg.strong_alpaca_trees_only`` its "alpaca_eval" rows reach the
    stacker's trees only)."""
    kind = kind or cfg.strong_head
    if kind not in STRONG_KINDS:
        raise ValueError(f"unknown strong head {kind!r} (known: {', '.join(STRONG_KINDS)})")
    y = np.asarray(wins, np.float64)
    if y.min() == y.max():
        raise ValueError("the strong-win head needs both outcomes in the training data")
    weight = None
    if sources is not None and cfg.strong_source_balance > 0:
        weight = source_weights(sources, cfg.strong_source_balance, cfg.strong_max_source_weight)
    n_emb = X.shape[1] - len(FEATURE_NAMES)
    if kind == "linear":
        return StrongHead(kind, linear=fit_linear(X, [y], cfg.strong_linear_c, n_emb, weight))
    if kind in ("gain", "stack"):
        if outcomes is None:  # only the verdict: strong_win 1 -> (1, 0), 0 -> (1, 1)
            outcomes = (np.ones(len(y)), 1.0 - y)
        if kind == "stack":
            by = groups if groups is not None else sources
            by = np.zeros(len(y), np.int64) if by is None else by
            trees_only = None
            if cfg.strong_train_alpaca and cfg.strong_alpaca_trees_only:
                if sources is None:
                    raise ValueError("strong_alpaca_trees_only needs each row's source")
                trees_only = np.asarray(sources, object) == "alpaca_eval"
            stacked = fit_stacked_gain(
                X, outcomes, by, cfg, weight, trees_only, cfg.strong_alpaca_weight
            )
            return StrongHead(kind, stacked=stacked)
        lin = fit_linear(X, list(outcomes), cfg.strong_linear_c, n_emb, weight)
        return StrongHead(kind, linear=lin)
    hard = y >= 0.5  # the trees take hard labels; soft ones weigh their row by the margin
    w = np.ones(len(y)) if weight is None else weight
    w = w * np.where((y > 0) & (y < 1), np.abs(2 * y - 1), 1.0)
    with threadpool_limits(cfg.train_threads, user_api="openmp"):
        trees = _hgb(cfg, "strong", len(y)).fit(X, hard.astype(np.int64), sample_weight=w)
    return StrongHead(kind, trees=trees)


def intent_logits(model: HistGradientBoostingClassifier, X: np.ndarray) -> np.ndarray:
    """Raw scores -> [N, 14] logits in ``INTENTS`` order (float64)."""
    raw = np.asarray(model.decision_function(X), np.float64)
    out = np.full((len(X), len(INTENTS)), MISSING_LOGIT, np.float64)
    classes = model.classes_.astype(int)
    if raw.ndim == 1:  # two classes: sklearn keeps one logit for classes_[1]
        out[:, classes[0]] = 0.0
        out[:, classes[1]] = raw
    else:
        out[:, classes] = raw
    return out


def strong_logit(head: StrongHead, X: np.ndarray) -> np.ndarray:
    """-> the head's raw (uncalibrated) strong-win score, float64 [N]."""
    return head.raw(X)


@dataclass
class Heads:
    """Both fitted heads and their calibrators: the numpy/sklearn reference pipeline."""

    intent: HistGradientBoostingClassifier | None  # None: the "linear" intent head (stack)
    strong: StrongHead
    temperature: TemperatureScaler
    platt: PlattScaler
    stack: LinearStack | None = None
    blend: IntentBlend | None = None  # applied after the graph (router_service.intent_blend)

    def served_intents(
        self, probs: np.ndarray, texts: Sequence[str], non_ascii: np.ndarray
    ) -> np.ndarray:
        """The graph's calibrated intent probabilities -> the served ones (blended with the
        heuristic's when these heads carry a blend, as ``LearnedScorer`` does)."""
        if self.blend is None:
            return probs
        return self.blend.blend_texts(probs, texts, non_ascii)

    def intent_logits(self, X: np.ndarray) -> np.ndarray:
        """[N, D+F] -> raw intent logits (trees over [X || stacked log-probabilities], or
        the linear head's log-probabilities)."""
        if self.intent is None:
            assert self.stack is not None
            return self.stack.intent_logits(X)
        return intent_logits(self.intent, intent_input(X, self.stack))

    @property
    def intent_kind(self) -> str:
        return "linear" if self.intent is None else "hgb"

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, D+F] -> (intent_probs [N, 14], strong_win_rate [N]), calibrated."""
        return self.temperature(self.intent_logits(X)), self.platt(strong_logit(self.strong, X))

    def predict_uncalibrated(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return softmax(self.intent_logits(X), axis=1), expit(strong_logit(self.strong, X))


def intent_input(X: np.ndarray, stack: LinearStack | None) -> np.ndarray:
    """Design matrix -> the intent HGB's input: ``[X || stack log-probabilities]``."""
    if stack is None:
        return X
    return np.concatenate([np.asarray(X, np.float32), stack.log_probs(X)], axis=1)


def intent_labels(intents: np.ndarray) -> np.ndarray:
    return np.array([INTENT_INDEX[i] for i in intents], np.int64)


def fit_heads(
    corpus: Corpus, X: np.ndarray, cfg: TrainConfig, tuned_intent: LinearStack | None = None
) -> tuple[Heads, dict[str, Any]]:
    """Corpus + design matrix -> calibrated ``Heads`` and a calibration report.

    Heads train on the train split (intent: every labelled source; strong-win: benchmarks
    and judge feedback); the calibrators fit on the calibration split; ECE before/after is
    measured on the test split (intent: the real ShareGPT prompts)."""
    frame = corpus.frame
    tr_i, ca_i = corpus.intent_mask("train"), corpus.intent_mask("calib")
    te_i = corpus.intent_mask("test", "sharegpt")
    tr_w, ca_w, te_w = (corpus.win_mask(s) for s in ("train", "calib", "test"))
    if not cfg.strong_train_alpaca:  # AlpacaEval rows stay evaluation-only for this head
        tr_w &= (frame["win_source"] != "alpaca_eval").to_numpy()
    intents = frame["intent"].to_numpy(object)
    wins = frame["strong_win"].to_numpy(np.float64)
    intent: HistGradientBoostingClassifier | None
    stack: LinearStack | None
    if tuned_intent is not None:  # trained with the table (training.model.finetune)
        intent, stack = None, tuned_intent
    elif cfg.intent_head == "linear":
        intent, stack = None, fit_intent_linear(X[tr_i], intents[tr_i], cfg)
    elif cfg.intent_head == "hgb":
        intent, stack = fit_intent_stacked(X[tr_i], intents[tr_i], cfg)
    else:
        raise ValueError(f"unknown intent head {cfg.intent_head!r} (known: {INTENT_KINDS})")
    strong = fit_strong(
        X[tr_w],
        wins[tr_w],
        cfg,
        frame["win_source"].to_numpy(object)[tr_w],
        outcome_targets(frame[tr_w]),
        groups=frame["win_group"].to_numpy(object)[tr_w],
    )
    heads = Heads(intent, strong, TemperatureScaler(), PlattScaler(), stack)
    temperature = TemperatureScaler().fit(
        heads.intent_logits(X[ca_i]), intent_labels(intents[ca_i])
    )
    platt = PlattScaler().fit(strong_logit(strong, X[ca_w]), wins[ca_w])
    heads = Heads(intent, strong, temperature, platt, stack)
    texts = frame["text"].to_numpy(object)
    non_ascii = corpus.features[:, NON_ASCII_FEATURE].astype(np.float64)
    weight, ne = cfg.intent_blend_weights
    if weight > 0 or ne > 0:
        blend = fit_blend(
            heads.predict(X[ca_i])[0],
            list(texts[ca_i]),
            non_ascii[ca_i],
            intent_labels(intents[ca_i]),
            weight,
            ne,
        )
        heads = Heads(intent, strong, temperature, platt, stack, blend)

    from training.evaluate import metrics

    report: dict[str, Any] = {
        "temperature": temperature.temperature,
        "platt_a": platt.a,
        "platt_b": platt.b,
        "intent_blend": heads.blend.to_manifest() if heads.blend is not None else None,
        "intent_head": heads.intent_kind,
        "strong_head": strong.kind,
        "intent_rounds": int(intent.n_iter_) if intent is not None else None,
        "strong_rounds": strong.rounds,
        "train_rows": {"intent": int(tr_i.sum()), "strong_win": int(tr_w.sum())},
        "calib_rows": {"intent": int(ca_i.sum()), "strong_win": int(ca_w.sum())},
    }
    for name, mask, labels, pick in (
        ("intent", te_i, lambda m: intent_labels(intents[m]), 0),
        ("strong_win", te_w, lambda m: wins[m], 1),
    ):
        if not mask.any():
            continue
        raw = heads.predict_uncalibrated(X[mask])[pick]
        cal = heads.predict(X[mask])[pick]
        y = labels(mask)
        report[f"{name}_ece_before"] = metrics.ece(raw, y)
        if name == "intent" and heads.blend is not None:
            report["intent_ece_graph"] = metrics.ece(cal, y)  # before the blend
            cal = heads.served_intents(cal, list(texts[mask]), non_ascii[mask])
        report[f"{name}_ece_after"] = metrics.ece(cal, y)
        report[f"{name}_reliability_after"] = [
            [None if np.isnan(v) else round(float(v), 4) for v in arr]
            for arr in metrics.reliability_curve(cal, y, 10)
        ]
    return heads, report
