"""AlpacaEval judge verdicts -> strong-win rows for open-ended instructions.

Input: a directory with ``prompts.jsonl`` (``prompt_id``, ``instruction``, ``dataset`` =
its origin) and ``preferences.csv`` (``prompt_id``, ``weak_model``, ``annotator``,
``preference``, ``strong_chars``, ``weak_chars``): a GPT-4-Turbo judge comparing
GPT-4-Turbo's answer (the strong side) with each of ~69 weaker models' answers, read through
``datasets`` like every other source. ``../shared/datasets/alpaca_eval`` by default,
``ROUTER_ALPACA_EVAL_DIR`` overrides; ``download_alpaca_eval`` builds the same layout from the
public AlpacaEval repository for users without it. The data is CC BY-NC 4.0: a model trained
on it inherits that, so it is one config flag (``alpaca_eval_label = None``) away.

``preference`` is 1 (strong preferred) .. 2 (weak preferred), so P(strong wins) = 2 - it.
A row's ``strong_win`` label is one of ``LABELS``:

* ``multi``: the mean P(strong wins) over every weaker model (the soft
  ``weighted_alpaca_eval_gpt4_turbo`` annotator): how often *any* cheaper model loses on this
  prompt, a difficulty signal far less noisy than one pair;
* ``soft``: P(strong wins) against ``REFERENCE_WEAK`` (Mixtral-8x7B, the same pair as the
  RouteLLM outcomes), averaged over the two hard annotators;
* ``hard``: 1 when the plain annotator preferred the strong answer over ``REFERENCE_WEAK``.

For routing metrics every row also carries ``strong_correct`` = the ``soft`` value and
``weak_correct`` = 1 - it: the mixed "quality" of a routing is the judge's win rate of the
routed answers against the others. It is a preference (the judge favours longer answers),
not a correctness verdict; the OOD report keeps it as its own family of columns."""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from router_service.intents import INTENTS
from training.data.sources import example, read_table

log = logging.getLogger("training")

LABELS = ("multi", "soft", "hard")
REFERENCE_WEAK = "Mixtral-8x7B-Instruct-v0.1"
SOFT_ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
HARD_ANNOTATORS = ("alpaca_eval_gpt4_turbo_fn", "alpaca_eval_cot_gpt4_turbo_fn")
# Not weaker models: the strong model judged against itself, and AlpacaEval's demo entry.
NOT_WEAK = frozenset({"gpt4_1106_preview", "example"})
ORIGINS = ("helpful_base", "koala", "oasst", "selfinstruct", "vicuna")


def _p_strong(frame: pd.DataFrame) -> pd.Series:
    """Verdict rows -> mean P(strong wins) per prompt_id."""
    return (2.0 - frame["preference"].astype(float)).groupby(frame["prompt_id"]).mean()


def labels_by_prompt(prefs: pd.DataFrame) -> pd.DataFrame:
    """``preferences.csv`` -> one row per prompt_id with columns ``multi``, ``soft``, ``hard``."""
    for col in ("prompt_id", "weak_model", "annotator", "preference"):
        if col not in prefs.columns:
            raise ValueError(f"preferences: column {col!r} missing (have {list(prefs.columns)})")
    prefs = prefs[prefs["preference"].notna()]
    soft_all = prefs[(prefs["annotator"] == SOFT_ANNOTATOR) & ~prefs["weak_model"].isin(NOT_WEAK)]
    ref = prefs[prefs["weak_model"] == REFERENCE_WEAK]
    hard_ref = ref[ref["annotator"].isin(HARD_ANNOTATORS)]
    plain = ref[ref["annotator"] == HARD_ANNOTATORS[0]]
    out = pd.DataFrame(
        {
            "multi": _p_strong(soft_all),
            "soft": _p_strong(hard_ref),
            "hard": (plain.groupby("prompt_id")["preference"].mean() == 1.0).astype(float),
        }
    )
    return out


def load_intent_labels(files: list[Path]) -> dict[str, str | None]:
    """``{"prompt_id", "intent"}`` JSONL files (``data/alpaca_eval_intents/``) -> id -> intent."""
    out: dict[str, str | None] = {}
    for path in files:
        for rec in read_table(path).to_dict("records"):
            if isinstance(rec.get("prompt_id"), str):
                intent = rec.get("intent")
                out[rec["prompt_id"]] = intent if intent in INTENTS else None
    return out


def load_alpaca_eval(
    root: Path,
    label: str = "multi",
    cache_dir: Path | None = None,
    intents: Mapping[str, str | None] | None = None,
) -> list[dict[str, Any]]:
    """The AlpacaEval directory -> strong-win rows (``source`` "alpaca_eval", ``group``
    ``alpaca_<origin>``, and the intent label of ``intents`` when it has one); prompts
    without a verdict against ``REFERENCE_WEAK`` are skipped."""
    if label not in LABELS:
        raise ValueError(f"unknown AlpacaEval label {label!r} (known: {', '.join(LABELS)})")
    prompts_file, prefs_file = root / "prompts.jsonl", root / "preferences.csv"
    if not prompts_file.is_file() or not prefs_file.is_file():
        raise FileNotFoundError(
            f"no AlpacaEval verdicts under {root} (prompts.jsonl + preferences.csv); set "
            "ROUTER_ALPACA_EVAL_DIR or run training.data.alpaca_eval.download_alpaca_eval(<dir>)"
        )
    labels = labels_by_prompt(read_table(prefs_file, cache_dir))
    rows, skipped = [], 0
    for rec in read_table(prompts_file, cache_dir).to_dict("records"):
        pid, text, origin = rec.get("prompt_id"), rec.get("instruction"), rec.get("dataset")
        if not isinstance(text, str) or not text.strip() or pid not in labels.index:
            skipped += 1
            continue
        lab = labels.loc[pid]
        if pd.isna(lab["soft"]) or pd.isna(lab[label]):
            skipped += 1
            continue
        p_ref = float(lab["soft"])
        rows.append(
            example(
                "alpaca_eval",
                text,
                f"alpaca_eval:{pid}",
                strong_win=float(lab[label]),
                weak_correct=1.0 - p_ref,
                strong_correct=p_ref,
                group=f"alpaca_{origin}",
                intent=(intents or {}).get(str(pid)),
            )
        )
    if skipped:
        log.info("AlpacaEval: %d prompts without a usable verdict skipped", skipped)
    return rows


ALPACA_RAW = "https://raw.githubusercontent.com/tatsu-lab/alpaca_eval/main/results"
STRONG = "gpt4_1106_preview"


def download_alpaca_eval(
    dest: Path, weak_models: tuple[str, ...] = (REFERENCE_WEAK,), timeout: float = 120.0
) -> Path:
    """Fetch AlpacaEval's published annotations (needs internet) -> ``dest`` in the layout
    ``load_alpaca_eval`` reads. For each weak model, ``results/<model>/<annotator>/
    annotations.json`` of the soft and the plain annotator (whichever exist) are converted to
    ``preferences.csv`` rows, with the strong model as ``generator_1`` (verdicts where it is
    ``generator_2`` are flipped). ``prompt_id`` = sha256 of the instruction, first 12 hex."""
    prompts: dict[str, dict[str, str]] = {}
    rows: list[dict[str, Any]] = []
    for model in weak_models:
        for annotator in (SOFT_ANNOTATOR, *HARD_ANNOTATORS):
            url = f"{ALPACA_RAW}/{model}/{annotator}/annotations.json"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    items = json.loads(resp.read())
            except OSError as exc:
                log.info("%s: not available (%s)", url, exc)
                continue
            for item in items:
                pref, text = item.get("preference"), item.get("instruction")
                if pref is None or not isinstance(text, str):
                    continue
                strong_first = item.get("generator_1") == STRONG
                if not strong_first and item.get("generator_2") != STRONG:
                    continue
                pid = hashlib.sha256(text.encode()).hexdigest()[:12]
                prompts[pid] = {"prompt_id": pid, "instruction": text, "dataset": item["dataset"]}
                strong_out, weak_out = (
                    (item["output_1"], item["output_2"])
                    if strong_first
                    else (item["output_2"], item["output_1"])
                )
                rows.append(
                    {
                        "prompt_id": pid,
                        "weak_model": model,
                        "annotator": annotator,
                        "preference": float(pref) if strong_first else 3.0 - float(pref),
                        "strong_chars": len(strong_out or ""),
                        "weak_chars": len(weak_out or ""),
                    }
                )
    if not rows:
        raise RuntimeError(f"no AlpacaEval annotations could be fetched from {ALPACA_RAW}")
    dest.mkdir(parents=True, exist_ok=True)
    with (dest / "prompts.jsonl").open("w", encoding="utf-8") as fh:
        for rec in prompts.values():
            fh.write(json.dumps(rec) + "\n")
    pd.DataFrame(rows).to_csv(dest / "preferences.csv", index=False)
    return dest
