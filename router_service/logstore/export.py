"""Decision-log rows (+ feedback) -> a dataset file: JSONL, CSV or Parquet.

The training pipeline reads these rows: ``messages``, ``intent``, ``tier``,
``strong_win_rate`` and, for feedback, ``request_id`` with ``score`` or ``preference``
and ``judge``. Written to a temporary file and renamed into place."""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from router_service.features import content_text
from router_service.logstore.schema import LOG_ROW_FIELDS
from router_service.logstore.store import DecisionLog

FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_SUFFIXES |= {".parquet": "parquet", ".pq": "parquet"}

FEEDBACK_COLUMNS: tuple[str, ...] = (
    "score",
    "preference",
    "judge",
    "judge_rationale",
    "user_thumbs",
    "user_score",
    "user_preference",
    "user_comment",
    "feedback",
)
BASE_COLUMNS: tuple[str, ...] = ("id", *LOG_ROW_FIELDS)
_NESTED = frozenset({"messages", "fallbacks", "extra", "feedback"})


def format_for(path: Path) -> str:
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot tell the format of {path.name!r} from its suffix; use .jsonl, .csv or "
            ".parquet, or pass --format"
        )
    return fmt


def _feedback_entry(fb: dict[str, Any]) -> dict[str, Any]:
    keep = ("source", "judge_model", "score", "preference", "thumbs", "rationale", "status")
    out = {k: fb.get(k) for k in keep}
    out["error"] = fb.get("error")
    out["cost_usd"] = fb.get("cost_usd")
    created = fb.get("created_at")
    out["created_at"] = created.isoformat() if isinstance(created, datetime) else created
    return out


def feedback_columns(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """All feedback rows of one request (oldest first) -> the flat feedback columns."""
    cols: dict[str, Any] = dict.fromkeys(FEEDBACK_COLUMNS)
    cols["feedback"] = [_feedback_entry(e) for e in entries]
    judged = [e for e in entries if e["source"] == "judge" and e["status"] == "ok"]
    if judged:
        j = judged[-1]
        cols.update(
            score=j["score"],
            preference=j["preference"],
            judge=j["judge_model"] or None,
            judge_rationale=j["rationale"],
        )
    users = [e for e in entries if e["source"] == "user" and e["status"] == "ok"]
    if users:
        u = users[-1]
        cols.update(
            user_thumbs=u["thumbs"],
            user_score=u["score"],
            user_preference=u["preference"],
            user_comment=u["rationale"],
        )
    return cols


def dataset_rows(
    log: DecisionLog,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    include_feedback: bool = False,
    only_with_feedback: bool = False,
) -> Iterator[dict[str, Any]]:
    """Decision rows (oldest first) as export dicts, feedback columns merged in if asked."""
    by_request: dict[str, list[dict[str, Any]]] = {}
    if include_feedback:
        for fb in log.iter_feedback():
            by_request.setdefault(fb["request_id"], []).append(fb)
    for row in log.iter_rows(since, until):
        created = row.get("created_at")
        if isinstance(created, datetime):
            row["created_at"] = created.isoformat()
        if include_feedback:
            entries = by_request.get(row["request_id"], [])
            if only_with_feedback and not entries:
                continue
            row.update(feedback_columns(entries))
        yield row


@contextmanager
def _atomic(path: Path, binary: bool) -> Iterator[IO[Any]]:
    """A temporary file next to ``path``, renamed onto it only if the body succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if binary:
            with os.fdopen(fd, "wb") as fb:
                yield fb
        else:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as ft:
                yield ft
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _json_cell(value: Any) -> Any:
    return orjson.dumps(value, default=str).decode() if value is not None else None


def _write_jsonl(rows: Iterable[dict[str, Any]], path: Path, _columns: list[str]) -> int:
    n = 0
    with _atomic(path, binary=True) as f:
        for row in rows:
            f.write(orjson.dumps(row, default=str, option=orjson.OPT_APPEND_NEWLINE))
            n += 1
    return n


def _write_csv(rows: Iterable[dict[str, Any]], path: Path, columns: list[str]) -> int:
    n = 0
    with _atomic(path, binary=False) as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (_json_cell(v) if k in _NESTED else v) for k, v in row.items()})
            n += 1
    return n


def _parquet_schema(columns: list[str]) -> Any:
    import pyarrow as pa

    types: dict[str, Any] = {
        "id": pa.int64(),
        "created_at": pa.string(),
        "messages": pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
        "sensitive": pa.bool_(),
        "stream": pa.bool_(),
        "status": pa.int64(),
        "prompt_tokens": pa.int64(),
        "completion_tokens": pa.int64(),
        "score": pa.int64(),
        "user_thumbs": pa.int64(),
        "user_score": pa.int64(),
    }
    floats = ("intent_confidence", "strong_win_rate", "decision_us", "upstream_latency_ms")
    types.update(dict.fromkeys((*floats, "ttfb_ms", "total_ms"), pa.float64()))
    return pa.schema([(c, types.get(c, pa.string())) for c in columns])


def _parquet_cell(key: str, value: Any) -> Any:
    if key == "messages":
        return [
            {"role": str(m.get("role", "")), "content": content_text(m.get("content"))}
            for m in value or []
            if isinstance(m, dict)
        ]
    return _json_cell(value) if key in _NESTED else value


def _write_parquet(rows: Iterable[dict[str, Any]], path: Path, columns: list[str]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("Parquet export needs pyarrow: pip install pyarrow") from None
    schema = _parquet_schema(columns)
    n = 0
    with _atomic(path, binary=True) as f, pq.ParquetWriter(f, schema) as writer:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            if batch:
                table = pa.Table.from_pylist(
                    [{c: _parquet_cell(c, r.get(c)) for c in columns} for r in batch], schema
                )
                writer.write_table(table)
                batch.clear()

        for row in rows:
            batch.append(row)
            n += 1
            if len(batch) >= 5000:
                flush()
        flush()
    return n


_WRITERS: dict[str, Callable[[Iterable[dict[str, Any]], Path, list[str]], int]] = {
    "jsonl": _write_jsonl,
    "csv": _write_csv,
    "parquet": _write_parquet,
}


def export_rows(
    log: DecisionLog,
    out: Path,
    fmt: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    include_feedback: bool = False,
    only_with_feedback: bool = False,
) -> dict[str, int]:
    """Write the selected rows to ``out`` as ``fmt``; -> {"rows", "with_feedback"}."""
    if fmt not in _WRITERS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    columns = list(BASE_COLUMNS) + (list(FEEDBACK_COLUMNS) if include_feedback else [])
    with_feedback = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal with_feedback
        for row in dataset_rows(
            log,
            since=since,
            until=until,
            include_feedback=include_feedback,
            only_with_feedback=only_with_feedback,
        ):
            if row.get("feedback"):
                with_feedback += 1
            yield row

    n = _WRITERS[fmt](counted(), out, columns)
    return {"rows": n, "with_feedback": with_feedback}
