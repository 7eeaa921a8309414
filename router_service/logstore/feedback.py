"""Judge scores and user ratings -> the ``feedback`` table (idempotent), and back.

Keyed by ``(request_id, source, judge_model)``: re-running a judge job or re-posting the
same user feedback never creates duplicates. ``judge_model`` is ``""`` for user feedback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from router_service.logstore.schema import (
    FEEDBACK_SOURCES,
    FEEDBACK_STATUSES,
    PREFERENCES,
    _strip_nul,
    feedback,
    utcnow,
)


def _validate(
    source: str,
    score: int | None,
    preference: str | None,
    thumbs: int | None,
    status: str,
) -> None:
    if source not in FEEDBACK_SOURCES:
        raise ValueError(f"feedback source must be one of {FEEDBACK_SOURCES}, got {source!r}")
    if score is not None and (isinstance(score, bool) or not 1 <= int(score) <= 10):
        raise ValueError(f"feedback score must be an integer 1-10, got {score!r}")
    if preference is not None and preference not in PREFERENCES:
        raise ValueError(f"feedback preference must be one of {PREFERENCES}, got {preference!r}")
    if thumbs is not None and thumbs not in (-1, 1):
        raise ValueError(f"feedback thumbs must be 1 (up) or -1 (down), got {thumbs!r}")
    if status not in FEEDBACK_STATUSES:
        raise ValueError(f"feedback status must be one of {FEEDBACK_STATUSES}, got {status!r}")


def _key(request_id: str, source: str, judge_model: str | None) -> sa.ColumnElement[bool]:
    return sa.and_(
        feedback.c.request_id == request_id,
        feedback.c.source == source,
        feedback.c.judge_model == (judge_model or ""),
    )


def add_feedback(
    engine: sa.Engine,
    request_id: str,
    source: str,
    *,
    judge_model: str | None = None,
    score: int | None = None,
    preference: str | None = None,
    thumbs: int | None = None,
    rationale: str | None = None,
    status: str = "ok",
    error: str | None = None,
    cost_usd: float | None = None,
    created_at: datetime | None = None,
    replace: bool = False,
) -> bool:
    """Insert one feedback row. Returns True if written, False if the key already existed
    and ``replace`` is False (idempotent no-op). With ``replace=True`` the existing row is
    overwritten (a user changing their rating, a judge retry after ``status="failed"``)."""
    if not request_id:
        raise ValueError("feedback request_id must be a non-empty string")
    _validate(source, score, preference, thumbs, status)
    values: dict[str, Any] = {
        "request_id": request_id,
        "source": source,
        "judge_model": judge_model or "",
        "score": None if score is None else int(score),
        "preference": preference,
        "thumbs": thumbs,
        "rationale": rationale,
        "status": status,
        "error": error,
        "cost_usd": cost_usd,
        "created_at": created_at or utcnow(),
    }
    if engine.dialect.name == "postgresql":
        values = {k: _strip_nul(v) for k, v in values.items()}
    try:
        with engine.begin() as conn:
            conn.execute(feedback.insert(), [values])
        return True
    except sa.exc.IntegrityError:
        if not feedback_exists(engine, request_id, source, judge_model, ok_only=False):
            raise  # a CHECK constraint, not the uniqueness key: a real error
        if not replace:
            return False
    with engine.begin() as conn:
        update = {k: v for k, v in values.items() if k not in ("request_id", "source")}
        conn.execute(feedback.update().where(_key(request_id, source, judge_model)), update)
    return True


def feedback_exists(
    engine: sa.Engine,
    request_id: str,
    source: str = "judge",
    judge_model: str | None = None,
    *,
    ok_only: bool = True,
) -> bool:
    """Is there feedback for this key? By default only ``status="ok"`` rows count, so a
    judge job retries requests whose previous judgement failed."""
    cond = _key(request_id, source, judge_model)
    if ok_only:
        cond = sa.and_(cond, feedback.c.status == "ok")
    with engine.connect() as conn:
        return conn.execute(sa.select(feedback.c.id).where(cond).limit(1)).first() is not None


def iter_feedback(
    engine: sa.Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    source: str | None = None,
    ok_only: bool = False,
) -> Iterator[dict[str, Any]]:
    """Feedback rows (oldest first) as dicts, streamed."""
    query = sa.select(feedback)
    if since is not None:
        query = query.where(feedback.c.created_at >= since)
    if until is not None:
        query = query.where(feedback.c.created_at < until)
    if source is not None:
        query = query.where(feedback.c.source == source)
    if ok_only:
        query = query.where(feedback.c.status == "ok")
    query = query.order_by(feedback.c.created_at, feedback.c.id)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=1000).execute(query)
        for row in result.mappings():
            yield {str(k): v for k, v in row.items()}
