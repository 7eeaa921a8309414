"""Decision log (a SQLAlchemy engine) -> the two bounded reads behind the dashboard.

* ``recent_decisions(engine, since, limit)``: the newest decisions at/after ``since``, at
  most ``limit`` of them, newest first, without the conversation or the answer.
* ``feedback_counts(engine, since)``: judge and user feedback received at/after ``since``,
  counted per source, status, thumbs and preference (one ``GROUP BY``).

Both filter on an indexed ``created_at`` (and the first one stops after ``limit`` rows), so
they stay cheap on a large log; SQLAlchemy Core only, the same SQL on SQLite and
PostgreSQL. Blocking: the route runs them in a worker thread."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from router_service.logstore.schema import decisions, feedback

# Everything the dashboard shows; ``messages`` and ``answer`` (the bulk of a row) stay out.
DECISION_COLUMNS: tuple[str, ...] = (
    "id",
    "request_id",
    "created_at",
    "intent",
    "strong_win_rate",
    "tier",
    "reason",
    "scorer",
    "model_version",
    "sensitive",
    "backend",
    "model",
    "fallbacks",
    "status",
    "error",
    "stream",
    "decision_us",
    "upstream_latency_ms",
    "total_ms",
    "prompt_tokens",
    "completion_tokens",
    "extra",
)


def recent_decisions(
    engine: sa.Engine, since: datetime, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """-> (up to ``limit`` rows with ``created_at >= since``, newest first; whether the
    window held more rows than that). ``created_at`` comes back as aware UTC."""
    if limit < 1:
        raise ValueError("limit must be >= 1")
    query = (
        sa.select(*(decisions.c[name] for name in DECISION_COLUMNS))
        .where(decisions.c.created_at >= since)
        .order_by(decisions.c.created_at.desc(), decisions.c.id.desc())
        .limit(limit + 1)  # one more than asked: tells whether the window was cut
    )
    with engine.connect() as conn:
        rows = [{str(k): v for k, v in r.items()} for r in conn.execute(query).mappings()]
    for row in rows:
        row["fallbacks"] = row.get("fallbacks") or []
        row["extra"] = row.get("extra") if isinstance(row.get("extra"), dict) else {}
    return rows[:limit], len(rows) > limit


def _empty_counts() -> dict[str, dict[str, Any]]:
    return {
        "judge": {
            "total": 0,
            "ok": 0,
            "failed": 0,
            "mean_score": None,
            "preference": {"cheap": 0, "strong": 0, "tie": 0},
        },
        "user": {"total": 0, "up": 0, "down": 0, "scored": 0, "mean_score": None},
    }


def feedback_counts(engine: sa.Engine, since: datetime) -> dict[str, dict[str, Any]]:
    """Feedback with ``created_at >= since`` -> ``{"judge": {total, ok, failed, mean_score,
    preference: {cheap, strong, tie}}, "user": {total, up, down, scored, mean_score}}``
    (``mean_score``: over the rows with a 1-10 score, None when there are none)."""
    c = feedback.c
    query = (
        sa.select(
            c.source,
            c.status,
            c.thumbs,
            c.preference,
            sa.func.count().label("n"),
            sa.func.count(c.score).label("scored"),
            sa.func.sum(c.score).label("score_sum"),
        )
        .where(c.created_at >= since)
        .group_by(c.source, c.status, c.thumbs, c.preference)
    )
    out = _empty_counts()
    sums: dict[str, list[float]] = {"judge": [0.0, 0.0], "user": [0.0, 0.0]}
    with engine.connect() as conn:
        groups = list(conn.execute(query).mappings())
    for g in groups:
        source = g["source"]
        if source not in out:
            continue
        n, scored = int(g["n"]), int(g["scored"] or 0)
        entry = out[source]
        entry["total"] += n
        sums[source][0] += float(g["score_sum"] or 0)
        sums[source][1] += scored
        if source == "judge":
            entry["ok" if g["status"] == "ok" else "failed"] += n
            if g["preference"] in entry["preference"]:
                entry["preference"][g["preference"]] += n
        else:
            if g["thumbs"] == 1:
                entry["up"] += n
            elif g["thumbs"] == -1:
                entry["down"] += n
            entry["scored"] += scored
    for source, (total, count) in sums.items():
        out[source]["mean_score"] = round(total / count, 2) if count else None
    return out
