"""Decision log + feedback table -> training files: labelled feedback rows and unlabelled logs.

``request_label`` turns every feedback row of one request (judge scores, pairwise
preferences, user thumbs/scores) into one ``strong_win`` label by weighted vote:

* a pairwise preference: "strong" -> 1, "cheap" / "tie" -> 0 (weight 2: it is the direct
  comparison the label is about);
* a 1-10 score (judge or user) of an answer served by a cheap tier (local/primary):
  below ``score_bar`` -> 1, otherwise 0 (weight 1);
* user thumbs on a cheap-tier answer: down -> 1, up -> 0 (weight 1; a user row with a
  score votes with its score only);
* failed judgements, and scores/thumbs of strong-tier answers (no comparison), do not vote.

The label is 1 when the weighted mean of the votes is above 1/2 (a tie keeps the cheap
tier), None when nothing voted. ``export`` writes the JSON-lines files that
``training.data.corpus`` reads (``feedback_globs`` / ``request_log_globs``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from router_service.logstore import DecisionLog

CHEAP_TIERS = ("local", "primary")
PAIRWISE_WEIGHT = 2.0


def votes(
    rows: Iterable[Mapping[str, Any]], tier: str | None, score_bar: float
) -> list[tuple[int, float]]:
    """Feedback rows of one request -> ``[(vote 0/1, weight)]``."""
    out: list[tuple[int, float]] = []
    cheap = tier in CHEAP_TIERS
    for fb in rows:
        if fb.get("status", "ok") != "ok":
            continue
        pref = fb.get("preference")
        score = fb.get("score")
        thumbs = fb.get("thumbs")
        if pref in ("strong", "cheap", "tie"):
            out.append((int(pref == "strong"), PAIRWISE_WEIGHT))
        elif isinstance(score, int | float) and not isinstance(score, bool):
            if cheap:
                out.append((int(float(score) < score_bar), 1.0))
        elif thumbs in (1, -1) and fb.get("source") == "user" and cheap:
            out.append((int(thumbs == -1), 1.0))
    return out


def request_label(
    rows: Iterable[Mapping[str, Any]], tier: str | None, score_bar: float = 6.0
) -> int | None:
    """Every feedback row of one request -> strong_win 1/0, or None (no evidence)."""
    vs = votes(rows, tier, score_bar)
    total = sum(w for _, w in vs)
    if total <= 0:
        return None
    return int(sum(v * w for v, w in vs) / total > 0.5)


@dataclass(slots=True)
class ExportStats:
    log_rows: int = 0
    log_rows_written: int = 0
    requests_with_feedback: int = 0
    labelled: int = 0
    positives: int = 0
    feedback_rows: int = 0
    feedback_failed: int = 0
    orphan_feedback: int = 0  # feedback for requests not in the log (or the window)
    skipped_no_text: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _has_text(messages: Any) -> bool:
    return isinstance(messages, list) and any(
        isinstance(m, dict) and isinstance(m.get("content"), str) and m["content"].strip()
        for m in messages
    )


def _dump(fh: Any, obj: Mapping[str, Any], digest: Any) -> None:
    line = json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str) + "\n"
    fh.write(line)
    digest.update(line.encode("utf-8"))


def export(
    decision_log: DecisionLog,
    out_dir: Path,
    *,
    score_bar: float = 6.0,
    since: datetime | None = None,
    until: datetime | None = None,
    include_logs: bool = True,
    max_log_rows: int | None = None,
) -> tuple[Path, Path | None, ExportStats]:
    """Write ``feedback.jsonl`` (one labelled row per request with feedback) and, with
    ``include_logs``, ``logs.jsonl`` (logged requests with text, unlabelled; the most
    recent ``max_log_rows`` when set). Returns (feedback path, logs path or None, stats
    incl. a content hash)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = ExportStats()
    by_request: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fb in decision_log.iter_feedback():
        stats.feedback_rows += 1
        if fb.get("status") != "ok":
            stats.feedback_failed += 1
        key = str(fb.get("source"))
        stats.by_source[key] = stats.by_source.get(key, 0) + 1
        by_request[str(fb["request_id"])].append(fb)
    digest = hashlib.sha256()
    fb_path = out_dir / "feedback.jsonl"
    logs_path = out_dir / "logs.jsonl" if include_logs else None
    seen: set[str] = set()
    recent: deque[dict[str, Any]] = deque(maxlen=max_log_rows)
    with contextlib.ExitStack() as stack:
        fb_out = stack.enter_context(open(fb_path, "w", encoding="utf-8"))
        for row in decision_log.iter_rows(since, until):
            stats.log_rows += 1
            rid = str(row["request_id"])
            messages = row.get("messages")
            if rid in seen:
                continue
            seen.add(rid)
            if not _has_text(messages):  # redacted to roles only: nothing to learn from
                stats.skipped_no_text += 1
                continue
            if logs_path is not None:
                recent.append(
                    {
                        "request_id": rid,
                        "messages": messages,
                        "intent": row.get("intent"),
                        "tier": row.get("tier"),
                        "strong_win_rate": row.get("strong_win_rate"),
                    }
                )
            fbs = by_request.get(rid)
            if not fbs:
                continue
            stats.requests_with_feedback += 1
            label = request_label(fbs, row.get("tier"), score_bar)
            if label is None:
                continue
            stats.labelled += 1
            stats.positives += label
            judges = sorted({str(f.get("judge_model") or f.get("source")) for f in fbs})
            _dump(
                fb_out,
                {
                    "request_id": rid,
                    "messages": messages,
                    "tier": row.get("tier"),
                    "preference": "strong" if label else "cheap",
                    "judge": "+".join(judges),
                    "n_feedback": len(fbs),
                },
                digest,
            )
        if logs_path is not None:
            log_out = stack.enter_context(open(logs_path, "w", encoding="utf-8"))
            for rec in recent:
                _dump(log_out, rec, digest)
            stats.log_rows_written = len(recent)
    stats.orphan_feedback = len(set(by_request) - seen)
    stats.sha256 = digest.hexdigest()
    return fb_path, logs_path, stats
