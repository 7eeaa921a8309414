"""Data files -> raw example rows, one loader per source.

Every loader returns ``list[dict]`` rows with the keys of ``EXAMPLE_KEYS``: the request as
normalised ``messages`` plus whatever labels the source has. Files are read through
``datasets`` (``load_dataset("json"|"csv"|"parquet", data_files=...)``, offline) into pandas;
a JSON-lines file whose lines ``datasets`` cannot unify (mixed types across lines) is read
line by line instead, so one odd file never stops training.

Sources: handwritten prompts, ShareGPT labels (text from ``training.data.sharegpt``), RouteLLM
MMLU/GSM8K outcomes (plus ``download_routellm`` for users without the folder), judge
feedback, exported request logs, and the benchmarks' contaminated-prompt lists."""

from __future__ import annotations

import glob
import json
import logging
import math
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from router_service.features import messages_from_payload
from router_service.intents import INTENTS
from training.data.mmlu import EXCLUDED_SUBJECTS, MMLU_SUBJECTS, subject_group

log = logging.getLogger("training")

EXAMPLE_KEYS = (
    "source",  # handwritten | sharegpt | mmlu | gsm8k | feedback | logs
    "messages",
    "intent",  # one of INTENTS or None
    "strong_win",  # 0/1 or None
    "weak_correct",  # benchmark rows only (for APGR), else None
    "strong_correct",
    "ref",  # file/id for tracing a row back
    "group",  # the source group the OOD protocol holds out (mmlu_stem, gsm8k, alpaca_oasst...)
)
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"
ROUTELLM_RAW = "https://raw.githubusercontent.com/lm-sys/RouteLLM/main/routellm/evals"


def example(source: str, messages: Any, ref: str, **labels: Any) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(EXAMPLE_KEYS)
    row.update(source=source, messages=messages_from_payload(messages), ref=ref, **labels)
    return row


HUB_PREFIX = "hf:"  # "hf:owner/name" or "hf:owner/name:split" = a dataset on the HF hub


def expand(patterns: Iterable[str | Path], base: Path) -> list[Path]:
    """Glob patterns (relative to ``base``) -> sorted existing files; ``hf:`` hub dataset
    names (for users with internet) pass through unchanged."""
    out: set[Path] = set()
    for pattern in patterns:
        if str(pattern).startswith(HUB_PREFIX):
            out.add(Path(str(pattern)))
            continue
        p = Path(pattern)
        full = p if p.is_absolute() else base / p
        out.update(Path(x) for x in glob.glob(str(full)))
    return sorted(f for f in out if f.is_file() or str(f).startswith(HUB_PREFIX))


def _read_hub(spec: str, cache_dir: Path | None) -> pd.DataFrame:
    """``hf:owner/name[:split]`` -> DataFrame (needs internet; default split "train")."""
    import datasets

    name, _, split = spec[len(HUB_PREFIX) :].partition(":")
    ds = datasets.load_dataset(
        name, split=split or "train", cache_dir=str(cache_dir) if cache_dir else None
    )
    frame = ds.to_pandas()
    assert isinstance(frame, pd.DataFrame)
    return frame


def read_table(path: Path | list[Path], cache_dir: Path | None = None) -> pd.DataFrame:
    """json/jsonl/csv/parquet file(s) of one kind, or ``hf:`` hub datasets -> DataFrame,
    through ``datasets``."""
    paths = path if isinstance(path, list) else [path]
    path = paths[0]
    if str(path).startswith(HUB_PREFIX):
        return pd.concat([_read_hub(str(p), cache_dir) for p in paths], ignore_index=True)
    kind = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(
        path.suffix.lower()
    )
    if kind is None:
        raise ValueError(f"{path}: unsupported file type (use .jsonl, .json, .csv or .parquet)")
    try:
        import datasets

        datasets.disable_progress_bars()
        # Local files only: no "download count" HEAD request to the hub per load.
        datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
        ds = datasets.load_dataset(
            kind,
            data_files=[str(p) for p in paths],
            split="train",
            cache_dir=str(cache_dir) if cache_dir else None,
        )
        frame = ds.to_pandas()
        assert isinstance(frame, pd.DataFrame)
        return frame
    except Exception as exc:
        if kind != "json":
            raise
        log.info("datasets could not read %s (%s); reading line by line", paths, exc)
    rows = []
    for p in paths:
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                log.warning("%s:%d: skipped (not JSON: %s)", p, n, exc)
    return pd.DataFrame(rows)


def read_splits(
    files: Mapping[str, Path], cache_dir: Path | None = None
) -> dict[str, pd.DataFrame]:
    """Named CSV files -> one DataFrame per name, in one ``datasets`` load (a split each)."""
    import datasets

    datasets.disable_progress_bars()
    datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = False
    loaded = datasets.load_dataset(
        "csv",
        data_files={name: str(path) for name, path in files.items()},
        cache_dir=str(cache_dir) if cache_dir else None,
    )
    out: dict[str, pd.DataFrame] = {}
    for name in files:
        frame = loaded[name].to_pandas()
        assert isinstance(frame, pd.DataFrame)
        out[name] = frame
    return out


def _clean(value: Any) -> Any:
    """pandas/arrow missing values and numpy scalars/arrays -> plain Python."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):
        return _clean(value.tolist())
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _payload(rec: Mapping[str, Any]) -> Any:
    messages = _clean(rec.get("messages"))
    if isinstance(messages, list) and messages:
        return [m for m in messages if isinstance(m, Mapping)]
    prompt = _clean(rec.get("prompt"))
    return prompt if isinstance(prompt, str) else None


def _intent(value: Any, where: str) -> str | None:
    value = _clean(value)
    if value is None or value == "":
        return None
    if value not in INTENTS:
        log.warning("%s: unknown intent %r skipped", where, value)
        return None
    return str(value)


def load_prompts(files: list[Path], cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Handwritten ``{"prompt"|"messages", "intent", "lang"?}`` lines -> intent rows."""
    rows = []
    for path in files:
        for i, rec in enumerate(read_table(path, cache_dir).to_dict("records")):
            payload = _payload(rec)
            intent = _intent(rec.get("intent"), f"{path.name}:{i + 1}")
            if payload and intent:
                rows.append(example("handwritten", payload, f"{path.name}:{i + 1}", intent=intent))
    return rows


def load_sharegpt(
    files: list[Path], texts: Mapping[str, str], cache_dir: Path | None = None
) -> list[dict[str, Any]]:
    """ShareGPT ``{"id", "intent"|null}`` labels + first human turns -> intent rows.

    ``null`` marks a prompt the labeller could not place in the taxonomy: skipped."""
    rows, missing = [], 0
    for path in files:
        for rec in read_table(path, cache_dir).to_dict("records"):
            cid = _clean(rec.get("id"))
            intent = _intent(rec.get("intent"), f"{path.name}:{cid}")
            if intent is None or not isinstance(cid, str):
                continue
            text = texts.get(cid)
            if text is None:
                missing += 1
                continue
            rows.append(example("sharegpt", text, cid, intent=intent))
    if missing:
        log.warning("%d ShareGPT labels name ids absent from the installed package", missing)
    return rows


def _benchmark_rows(frame: pd.DataFrame, name: str, ref: str, group: str) -> list[dict[str, Any]]:
    for col in ("prompt", WEAK_MODEL, STRONG_MODEL):
        if col not in frame.columns:
            raise ValueError(f"{ref}: column {col!r} missing (have {list(frame.columns)})")
    rows = []
    for i, (prompt, weak, strong) in enumerate(
        zip(frame["prompt"], frame[WEAK_MODEL], frame[STRONG_MODEL], strict=True)
    ):
        if not isinstance(prompt, str) or not prompt.strip():
            continue
        w, s = _as_bool(weak), _as_bool(strong)
        if w is None or s is None:
            continue
        rows.append(
            example(
                name,
                prompt,
                f"{ref}:{i}",
                strong_win=int(s and not w),
                weak_correct=int(w),
                strong_correct=int(s),
                group=group,
            )
        )
    return rows


def _as_bool(value: Any) -> bool | None:
    value = _clean(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def routellm_files(root: Path, benchmark: str) -> list[Path]:
    if benchmark == "mmlu":
        return sorted((root / "mmlu" / "responses").glob("mmlu_*.csv"))
    if benchmark == "gsm8k":
        return sorted((root / "gsm8k").glob("gsm8k_responses.csv"))
    raise ValueError(f"unknown benchmark {benchmark!r} (known: mmlu, gsm8k)")


def _mmlu_subject(path: Path) -> str:
    return path.stem.removeprefix("mmlu_")


def load_routellm(
    root: Path, benchmarks: Iterable[str], cache_dir: Path | None = None
) -> list[dict[str, Any]]:
    """RouteLLM outcome CSVs -> strong-win rows (GPT-4 right and Mixtral wrong => 1).

    MMLU rows carry their subject group (``training.data.mmlu``); subjects listed in
    ``EXCLUDED_SUBJECTS`` (broken outcome labels) are skipped with a log line."""
    rows: list[dict[str, Any]] = []
    for bench in benchmarks:
        files = routellm_files(root, bench)
        if not files:
            raise FileNotFoundError(
                f"no RouteLLM {bench} outcome files under {root}; set ROUTER_ROUTELLM_DIR or "
                "run training.data.sources.download_routellm(<dir>)"
            )
        if bench != "mmlu":
            rows.extend(_benchmark_rows(read_table(files, cache_dir), bench, bench, bench))
            continue
        kept = [f for f in files if _mmlu_subject(f) not in EXCLUDED_SUBJECTS]
        for f in sorted(set(files) - set(kept)):
            log.info("skipping %s: %s", f.name, EXCLUDED_SUBJECTS[_mmlu_subject(f)])
        # One ``datasets`` load for all subjects: a split per subject keeps each row's subject.
        for subject, frame in read_splits({_mmlu_subject(f): f for f in kept}, cache_dir).items():
            group = subject_group(subject) if subject in MMLU_SUBJECTS else "mmlu_other"
            rows.extend(_benchmark_rows(frame, bench, f"mmlu_{subject}", group))
    return rows


def load_contaminated(root: Path, benchmarks: Iterable[str]) -> list[str]:
    """``*/contaminated_prompts.jsonl`` (``train_prompt`` / ``eval_prompt``) -> prompt texts."""
    out: list[str] = []
    for bench in benchmarks:
        path = root / bench / "contaminated_prompts.jsonl"
        if not path.is_file():
            log.warning("%s missing: no contamination filter for %s", path, bench)
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                out.extend(rec[k] for k in ("eval_prompt", "train_prompt") if rec.get(k))
    return out


def download_routellm(dest: Path, benchmarks: Iterable[str] = ("mmlu", "gsm8k")) -> Path:
    """Fetch RouteLLM's outcome CSVs and contamination lists from GitHub into ``dest``.

    For users without ``../shared/datasets/routellm_evals``; needs internet. Point
    ``ROUTER_ROUTELLM_DIR`` (or the ``routellm_dir`` config field) at ``dest`` afterwards."""
    wanted: list[str] = []
    for bench in benchmarks:
        if bench == "mmlu":
            wanted += [f"mmlu/responses/mmlu_{s}.csv" for s in sorted(MMLU_SUBJECTS)]
        elif bench == "gsm8k":
            wanted.append("gsm8k/gsm8k_responses.csv")
        wanted.append(f"{bench}/contaminated_prompts.jsonl")
    for rel in wanted:
        target = dest / rel
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(f"{ROUTELLM_RAW}/{rel}", timeout=60) as resp:
            target.write_bytes(resp.read())
    return dest


def feedback_label(rec: Mapping[str, Any], score_bar: float) -> int | None:
    """One judge verdict -> strong_win (1/0) or None when it says nothing about it.

    ``preference``: "strong" => 1, "cheap"/"tie" => 0. ``score`` (1-10) grades the answer of
    the tier that served the request: a cheap tier (local/primary) below ``score_bar`` => 1,
    at or above => 0; a score of the strong tier's own answer is not a comparison: skipped."""
    pref = _clean(rec.get("preference"))
    if isinstance(pref, str) and pref.strip():
        pref = pref.strip().lower()
        if pref == "strong":
            return 1
        if pref in ("cheap", "tie"):
            return 0
        return None
    score = _clean(rec.get("score"))
    if isinstance(score, int | float) and not isinstance(score, bool):
        if str(_clean(rec.get("tier")) or "").lower() == "strong":
            return None
        return int(float(score) < score_bar)
    return None


def load_feedback(
    files: list[Path], score_bar: float, cache_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Judge files (request_id, messages|prompt, tier, score|preference, judge) -> rows.

    Rows whose ``status`` is a word other than "ok" (failed judge calls) are skipped; a
    numeric ``status`` is the HTTP status of ``export-logs --include-feedback`` rows, whose
    ``score``/``preference`` columns are the newest successful verdict."""
    rows = []
    for path in files:
        for rec in read_table(path, cache_dir).to_dict("records"):
            status = _clean(rec.get("status"))
            if isinstance(status, str) and status.strip().lower() != "ok":
                continue  # a failed judge call carries no verdict (numbers: HTTP status)
            payload = _payload(rec)
            label = feedback_label(rec, score_bar)
            if payload and label is not None:
                judge = _clean(rec.get("judge")) or _clean(rec.get("judge_model"))
                ref = f"{path.name}:{_clean(rec.get('request_id'))}:{judge}"
                rows.append(example("feedback", payload, ref, strong_win=label))
    return rows


def load_request_logs(files: list[Path], cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Exported request logs (``messages``, ``intent``, ``tier``, ``strong_win_rate``...) ->
    unlabelled rows; the logged ``intent`` is kept (as a pseudo-label the config may use)."""
    rows = []
    for path in files:
        for i, rec in enumerate(read_table(path, cache_dir).to_dict("records")):
            payload = _payload(rec)
            if payload:
                intent = _intent(rec.get("intent"), f"{path.name}:{i + 1}")
                rows.append(example("logs", payload, f"{path.name}:{i + 1}", intent=intent))
    return rows
