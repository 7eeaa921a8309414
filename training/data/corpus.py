"""Config -> ``Corpus``: every source loaded, featurised, de-duplicated and hash-split.

* Each row's text goes through the serving code: ``messages_from_payload`` -> ``scored_text``
  -> ``handcrafted_features``, so training sees exactly what the router sees.
* De-duplication and splitting use one key: the normalised scored text (NFKC, case-folded,
  whitespace collapsed). Rows sharing a key merge into one (labels filled in source
  priority order); the split is a hash of the key, so no prompt text is in two splits.
* Benchmark prompts listed in ``contaminated_prompts.jsonl`` never enter calibration or
  test (they may stay in train).
* Exported request logs stay apart as unlabelled rows; with ``log_intents_as_labels`` their
  logged intents become training-only pseudo-labels."""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from router_service.features import FEATURE_NAMES, handcrafted_features, scored_text
from training.config import TrainConfig
from training.data import sources

log = logging.getLogger("training")

SPLITS = ("train", "calib", "test")
# Which source's label wins when the same prompt appears more than once.
SOURCE_PRIORITY = ("sharegpt", "handwritten", "alpaca_eval", "feedback", "gsm8k", "mmlu", "logs")
BENCHMARKS = ("mmlu", "gsm8k")
_WS = re.compile(r"\s+")


def normalize_key(text: str) -> str:
    """Prompt text -> the de-duplication / split key."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def split_of(key: str, calib_fraction: float, test_fraction: float) -> str:
    """A key -> "train" | "calib" | "test", stable across runs and machines."""
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:13], 16) / 16**13
    if bucket >= 1.0 - test_fraction:
        return "test"
    if bucket >= 1.0 - test_fraction - calib_fraction:
        return "calib"
    return "train"


@dataclass
class Corpus:
    """Labelled rows (``frame``) with aligned hand-crafted features, plus unlabelled logs."""

    # key split text messages intent intent_source strong_win win_source win_group
    # weak_correct strong_correct contaminated sources ref
    frame: pd.DataFrame
    features: np.ndarray  # [len(frame), len(FEATURE_NAMES)] float32
    unlabelled: pd.DataFrame = field(default_factory=pd.DataFrame)
    unlabelled_features: np.ndarray = field(
        default_factory=lambda: np.zeros((0, len(FEATURE_NAMES)), np.float32)
    )
    stats: dict[str, Any] = field(default_factory=dict)
    snapshot: str = ""

    def mask(self, split: str | None = "all", **equals: Any) -> np.ndarray:
        """Rows of ``split`` ("all" or None = every split) whose columns equal ``equals``."""
        m = np.ones(len(self.frame), bool)
        if split not in ("all", None):
            m &= (self.frame["split"] == split).to_numpy()
        for col, value in equals.items():
            m &= (self.frame[col] == value).to_numpy()
        return m

    def intent_mask(self, split: str | None, source: str | None = None) -> np.ndarray:
        m = self.mask(split) & self.frame["intent"].notna().to_numpy()
        if source is not None:
            m &= (self.frame["intent_source"] == source).to_numpy()
        return m

    def win_mask(self, split: str | None, benchmarks: Iterable[str] | None = None) -> np.ndarray:
        m = self.mask(split) & self.frame["strong_win"].notna().to_numpy()
        if benchmarks is not None:
            m &= self.frame["win_source"].isin(list(benchmarks)).to_numpy()
        return m


def _featurise(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        text = scored_text(row["messages"])
        key = normalize_key(text)
        if not key:
            continue
        row = dict(row, text=text, key=key)
        row["features"] = handcrafted_features(row["messages"], text)
        out.append(row)
    return out


def merge_duplicates(rows: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows (any order) -> one row per key; labels filled in ``SOURCE_PRIORITY`` order."""
    order = {s: i for i, s in enumerate(SOURCE_PRIORITY)}
    merged: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: order.get(r["source"], len(order))):
        cur = merged.get(row["key"])
        if cur is None:
            cur = merged[row["key"]] = {
                "key": row["key"],
                "text": row["text"],
                "messages": row["messages"],
                "features": row["features"],
                "sources": [],
                "ref": row["ref"],
                "intent": None,
                "intent_source": None,
                "strong_win": None,
                "win_source": None,
                "win_group": None,
                "weak_correct": None,
                "strong_correct": None,
            }
        cur["sources"].append(row["source"])
        if cur["intent"] is None and row.get("intent") is not None:
            cur["intent"], cur["intent_source"] = row["intent"], row["source"]
        if cur["strong_win"] is None and row.get("strong_win") is not None:
            cur["strong_win"], cur["win_source"] = row["strong_win"], row["source"]
            cur["win_group"] = row.get("group") or row["source"]
            cur["weak_correct"] = row.get("weak_correct")
            cur["strong_correct"] = row.get("strong_correct")
    return list(merged.values()), len(rows) - len(merged)


def _sample(rows: list[dict[str, Any]], cap: int | None, seed: int) -> list[dict[str, Any]]:
    if cap is None or len(rows) <= cap:
        return rows
    return random.Random(seed).sample(rows, cap)


def load_raw(cfg: TrainConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """All configured sources -> (labelled rows, log rows, contaminated prompt texts)."""
    from training.config import REPO_ROOT

    cache = cfg.path(cfg.cache_dir) / "hf_datasets"
    seed = cfg.seed
    labelled: list[dict[str, Any]] = []

    prompt_files = sources.expand([cfg.prompts_glob], REPO_ROOT)
    labelled += _sample(sources.load_prompts(prompt_files, cache), cfg.max_intent_rows, seed)

    label_files = sources.expand([cfg.sharegpt_labels_glob], REPO_ROOT)
    if label_files:
        from training.data.sharegpt import first_human_turns

        rows = sources.load_sharegpt(label_files, first_human_turns(), cache)
        labelled += _sample(rows, cfg.max_intent_rows, seed + 1)

    contaminated: list[str] = []
    if cfg.benchmarks:
        root = cfg.resolved_routellm_dir()
        for i, bench in enumerate(cfg.benchmarks):
            rows = sources.load_routellm(root, [bench], cache)
            labelled += _sample(rows, cfg.max_benchmark_rows, seed + 2 + i)
        contaminated = sources.load_contaminated(root, cfg.benchmarks)

    if cfg.alpaca_eval_label:
        from training.data.alpaca_eval import load_alpaca_eval, load_intent_labels

        intents = load_intent_labels(sources.expand([cfg.alpaca_eval_intents_glob], REPO_ROOT))
        try:
            labelled += load_alpaca_eval(
                cfg.resolved_alpaca_eval_dir(), cfg.alpaca_eval_label, cache, intents
            )
        except FileNotFoundError as exc:
            if cfg.alpaca_eval_dir or os.environ.get("ROUTER_ALPACA_EVAL_DIR"):
                raise  # asked for explicitly: missing is an error
            log.warning("%s; training without AlpacaEval", exc)

    fb_files = sources.expand(cfg.feedback_globs, REPO_ROOT)
    labelled += sources.load_feedback(fb_files, cfg.judge_score_bar, cache)
    logs = sources.load_request_logs(sources.expand(cfg.request_log_globs, REPO_ROOT), cache)
    return labelled, logs, contaminated


def build_corpus(
    cfg: TrainConfig,
    labelled: Sequence[dict[str, Any]],
    logs: Sequence[dict[str, Any]] = (),
    contaminated: Iterable[str] = (),
) -> Corpus:
    """Raw rows -> featurised, merged, split ``Corpus`` with counts in ``stats``."""
    raw_counts = Counter(r["source"] for r in labelled)
    rows, n_dupes = merge_duplicates(_featurise(labelled))
    bad = {
        normalize_key(scored_text(sources.example("x", p, "")["messages"])) for p in contaminated
    }
    kept, n_contaminated = [], 0
    for row in rows:
        row["split"] = split_of(row["key"], cfg.calib_fraction, cfg.test_fraction)
        row["contaminated"] = row["key"] in bad
        if row["split"] != "train" and row["contaminated"]:
            n_contaminated += 1
            continue
        kept.append(row)

    log_rows = _featurise(logs)
    known = {r["key"] for r in kept}
    n_pseudo = 0
    for row in log_rows:
        row["split"] = split_of(row["key"], cfg.calib_fraction, cfg.test_fraction)
        if (
            cfg.log_intents_as_labels
            and row.get("intent")
            and row["split"] == "train"
            and row["key"] not in known
        ):
            known.add(row["key"])
            n_pseudo += 1
            kept.append(
                {
                    **{k: None for k in ("strong_win", "win_source", "win_group")},
                    **{k: None for k in ("weak_correct", "strong_correct")},
                    "key": row["key"],
                    "text": row["text"],
                    "messages": row["messages"],
                    "features": row["features"],
                    "sources": ["logs"],
                    "contaminated": row["key"] in bad,
                    "ref": row["ref"],
                    "intent": row["intent"],
                    "intent_source": "logs",
                    "split": "train",
                }
            )

    frame = pd.DataFrame(kept)
    if frame.empty:
        raise ValueError("no labelled rows: check the data paths in the training config")
    features = np.asarray(frame.pop("features").tolist(), dtype=np.float32)
    frame["sources"] = frame["sources"].map("+".join)
    unl = pd.DataFrame(
        [{k: r[k] for k in ("key", "text", "messages", "split", "intent")} for r in log_rows]
    )
    unl_feats = np.asarray([r["features"] for r in log_rows], dtype=np.float32).reshape(
        -1, len(FEATURE_NAMES)
    )

    stats: dict[str, Any] = {
        "raw_rows": dict(raw_counts),
        "duplicates_merged": n_dupes,
        "contaminated_excluded": n_contaminated,
        "log_rows": len(log_rows),
        "log_pseudo_labels": n_pseudo,
        "rows": len(frame),
        "intent_rows": _crosstab(frame[frame["intent"].notna()], "intent_source"),
        "strong_win_rows": _crosstab(frame[frame["strong_win"].notna()], "win_source"),
        "intent_counts": {
            k: int(v) for k, v in frame["intent"].value_counts().sort_index().items()
        },
    }
    return Corpus(frame, features, unl, unl_feats, stats, snapshot_hash(frame))


def _crosstab(frame: pd.DataFrame, col: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for (src, split), n in frame.groupby([col, "split"]).size().items():
        out.setdefault(str(src), {})[str(split)] = int(n)
    return out


def snapshot_hash(frame: pd.DataFrame) -> str:
    """Labelled rows -> a short hash identifying the training data snapshot."""
    h = hashlib.sha256()
    cols = ["key", "split", "intent", "strong_win", "weak_correct", "strong_correct"]
    for rec in frame.sort_values("key")[cols].itertuples(index=False):
        h.update(repr(tuple(rec)).encode("utf-8"))
    return h.hexdigest()[:16]


def load_corpus(cfg: TrainConfig) -> Corpus:
    """Config -> ``Corpus`` (the whole data stage)."""
    labelled, logs, contaminated = load_raw(cfg)
    corpus = build_corpus(cfg, labelled, logs, contaminated)
    log.info("corpus: %s", corpus.stats)
    return corpus
