"""Corpus -> the leave-one-source-out folds of the OOD table (``training.evaluate.ood``).

* Strong-win, one fold per source group with both outcomes: the correctness family (the
  four MMLU subject groups of ``training.data.mmlu`` and GSM8K) and the preference family
  (each AlpacaEval origin). A fold trains on the train split of every *other* group and is
  scored on every uncontaminated row of its own.
* Intent, one fold per labelled source (handwritten, ShareGPT, AlpacaEval) and per ShareGPT
  bucket (non-English script, long, short): trained on the train split of the rest,
  temperature-calibrated on its calibration split, scored on every row held out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from router_service.intent_blend import NON_ASCII_FEATURE, NON_ASCII_THRESHOLD
from training.data.corpus import Corpus
from training.data.mmlu import MMLU_GROUPS

CORRECTNESS = (*(f"mmlu_{g}" for g in MMLU_GROUPS), "gsm8k")
PREFERENCE = tuple(
    f"alpaca_{o}" for o in ("helpful_base", "koala", "oasst", "selfinstruct", "vicuna")
)
INTENT_SOURCES = ("handwritten", "sharegpt", "alpaca_eval")
LONG_CHARS = 400  # ShareGPT "long" bucket: scored text longer than this


@dataclass(frozen=True)
class Fold:
    family: str  # "correctness" | "preference" | "intent"
    name: str
    test: np.ndarray  # row indices scored
    train: np.ndarray  # row indices the fold's models learn from
    calib: np.ndarray | None = None  # intent: calibration rows of the other sources


def strong_folds(corpus: Corpus) -> list[Fold]:
    """One fold per strong-win source group present with both outcomes."""
    f = corpus.frame
    group = f["win_group"].to_numpy(object)
    has = f["strong_win"].notna().to_numpy() & f["weak_correct"].notna().to_numpy()
    clean = ~f["contaminated"].to_numpy(bool)
    train = np.flatnonzero(corpus.win_mask("train"))
    folds = []
    for family, names in (("correctness", CORRECTNESS), ("preference", PREFERENCE)):
        for name in names:
            test = np.flatnonzero(has & clean & (group == name))
            if len(test) >= 20:
                folds.append(Fold(family, name, test, train[group[train] != name]))
    return folds


def intent_buckets(corpus: Corpus) -> np.ndarray:
    """Labelled rows -> their intent source, ShareGPT refined to sharegpt_{non_english,long,
    short} (by the non-ASCII share and length of the scored text)."""
    f = corpus.frame
    src = f["intent_source"].to_numpy(object).copy()
    share = src == "sharegpt"
    non_en = corpus.features[:, NON_ASCII_FEATURE] > NON_ASCII_THRESHOLD
    long = f["text"].str.len().to_numpy() > LONG_CHARS
    src[share & non_en] = "sharegpt_non_english"
    src[share & ~non_en & long] = "sharegpt_long"
    src[share & ~non_en & ~long] = "sharegpt_short"
    return src


def intent_folds(corpus: Corpus) -> list[Fold]:
    """One fold per labelled intent source and ShareGPT bucket with at least 20 rows."""
    f = corpus.frame
    labelled = f["intent"].notna().to_numpy()
    src = f["intent_source"].to_numpy(object)
    bucket = intent_buckets(corpus)
    train_split = (f["split"] == "train").to_numpy()
    calib_split = (f["split"] == "calib").to_numpy()
    folds = []
    for name in (*INTENT_SOURCES, "sharegpt_non_english", "sharegpt_long", "sharegpt_short"):
        held = (src == name) if name in INTENT_SOURCES else (bucket == name)
        test = np.flatnonzero(labelled & held)
        if len(test) >= 20:
            train = np.flatnonzero(labelled & train_split & ~held)
            calib = np.flatnonzero(labelled & calib_split & ~held)
            folds.append(Fold("intent", name, test, train, calib))
    return folds
