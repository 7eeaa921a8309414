"""Decision-log rows -> SQL: the ``LogRow`` record, the two tables and value conversion.

``decisions`` holds one row per routed request; ``feedback`` holds judge scores and user
ratings keyed by ``request_id`` (unique per ``(request_id, source, judge_model)``, so a
judge job and ``POST /v1/feedback`` are idempotent). SQLAlchemy Core only: no ORM on the
hot path. Datetimes are stored in UTC and always come back timezone-aware."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

FEEDBACK_SOURCES: tuple[str, ...] = ("judge", "user")
PREFERENCES: tuple[str, ...] = ("cheap", "strong", "tie")
FEEDBACK_STATUSES: tuple[str, ...] = ("ok", "failed")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Any datetime -> aware UTC (naive values are taken to be UTC already)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(slots=True)
class LogRow:
    """One routed request, as written to the ``decisions`` table.

    ``messages`` must already be redacted by the caller when redaction is configured.
    Every field except ``request_id`` has a default so error rows (no decision yet) are
    easy to build; ``from_decision`` fills the routing fields from a ``Decision``."""

    request_id: str
    created_at: datetime = field(default_factory=utcnow)
    messages: list[dict[str, Any]] = field(default_factory=list)
    intent: str | None = None
    intent_confidence: float | None = None
    strong_win_rate: float | None = None
    tier: str | None = None
    reason: str | None = None
    scorer: str | None = None
    model_version: str | None = None
    sensitive: bool = False
    backend: str | None = None
    model: str | None = None
    fallbacks: list[str] = field(default_factory=list)
    status: int = 200
    error: str | None = None
    stream: bool = False
    decision_us: float | None = None
    upstream_latency_ms: float | None = None
    ttfb_ms: float | None = None
    total_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    answer: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_decision(cls, request_id: str, decision: Any, **fields_: Any) -> LogRow:
        """A ``router_service.decision.Decision`` (+ any other LogRow fields) -> LogRow."""
        return cls(
            request_id=request_id,
            intent=decision.intent,
            intent_confidence=decision.intent_confidence,
            strong_win_rate=decision.strong_win_rate,
            tier=decision.tier,
            reason=decision.reason,
            scorer=decision.scorer,
            model_version=decision.model_version,
            decision_us=decision.decision_us,
            **fields_,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


LOG_ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LogRow))


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps stored as UTC (``timestamptz`` on PostgreSQL), read back as aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        if dialect.name == "sqlite":  # SQLite has no tz; naive-UTC strings sort correctly
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite rowid needs INTEGER

metadata = sa.MetaData()

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("messages", _JSON, nullable=False),
    sa.Column("intent", sa.String(64)),
    sa.Column("intent_confidence", sa.Float),
    sa.Column("strong_win_rate", sa.Float),
    sa.Column("tier", sa.String(16)),
    sa.Column("reason", sa.Text),
    sa.Column("scorer", sa.String(64)),
    sa.Column("model_version", sa.String(128)),
    sa.Column("sensitive", sa.Boolean, nullable=False),
    sa.Column("backend", sa.String(128)),
    sa.Column("model", sa.String(256)),
    sa.Column("fallbacks", _JSON, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("stream", sa.Boolean, nullable=False),
    sa.Column("decision_us", sa.Float),
    sa.Column("upstream_latency_ms", sa.Float),
    sa.Column("ttfb_ms", sa.Float),
    sa.Column("total_ms", sa.Float),
    sa.Column("prompt_tokens", sa.Integer),
    sa.Column("completion_tokens", sa.Integer),
    sa.Column("answer", sa.Text),
    sa.Column("extra", _JSON, nullable=False),
    sa.Index("ix_decisions_created_at", "created_at"),
    sa.Index("ix_decisions_tier", "tier"),
    sa.Index("ix_decisions_intent", "intent"),
    sa.Index("ix_decisions_request_id", "request_id"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    # "" for user feedback: NULLs are distinct in UNIQUE constraints, "" is not.
    sa.Column("judge_model", sa.String(256), nullable=False, server_default=""),
    sa.Column("score", sa.Integer),
    sa.Column("preference", sa.String(16)),
    sa.Column("thumbs", sa.SmallInteger),
    sa.Column("rationale", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("cost_usd", sa.Float),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("request_id", "source", "judge_model", name="uq_feedback_key"),
    sa.CheckConstraint("source IN ('judge', 'user')", name="ck_feedback_source"),
    sa.CheckConstraint("score IS NULL OR (score >= 1 AND score <= 10)", name="ck_feedback_score"),
    sa.CheckConstraint(
        "preference IS NULL OR preference IN ('cheap', 'strong', 'tie')",
        name="ck_feedback_preference",
    ),
    sa.CheckConstraint("thumbs IS NULL OR thumbs IN (-1, 1)", name="ck_feedback_thumbs"),
    sa.CheckConstraint("status IN ('ok', 'failed')", name="ck_feedback_status"),
    sa.Index("ix_feedback_created_at", "created_at"),
)


def _strip_nul(value: Any) -> Any:
    """PostgreSQL text and jsonb reject U+0000; replace it (recursively) with U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {_strip_nul(k): _strip_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(v) for v in value]
    return value


def _finite(value: float | None) -> float | None:
    """NaN/inf are not portable (JSON, PostgreSQL float semantics differ): store NULL."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


_FLOAT_FIELDS = (
    "intent_confidence",
    "strong_win_rate",
    "decision_us",
    "upstream_latency_ms",
    "ttfb_ms",
    "total_ms",
)


def row_values(row: LogRow, *, postgres: bool = False) -> dict[str, Any]:
    """LogRow -> the parameter dict inserted into ``decisions``. Raises on bad types."""
    if not isinstance(row, LogRow):
        raise TypeError(f"expected LogRow, got {type(row).__name__}")
    if not row.request_id:
        raise ValueError("LogRow.request_id must be a non-empty string")
    values = {name: getattr(row, name) for name in LOG_ROW_FIELDS}
    values["messages"] = [dict(m) for m in row.messages]
    values["fallbacks"] = [str(f) for f in row.fallbacks]
    values["extra"] = dict(row.extra)
    values["sensitive"] = bool(row.sensitive)
    values["stream"] = bool(row.stream)
    values["status"] = int(row.status)
    for name in _FLOAT_FIELDS:
        values[name] = _finite(values[name])
    if postgres:
        values = {k: _strip_nul(v) for k, v in values.items()}
    return values


def row_to_dict(mapping: Any) -> dict[str, Any]:
    """A ``decisions`` result row -> plain dict (all LogRow fields plus ``id``)."""
    out = {str(k): v for k, v in mapping.items()}  # keys are quoted_name (a str subclass)
    out["messages"] = out.get("messages") or []
    out["fallbacks"] = out.get("fallbacks") or []
    out["extra"] = out.get("extra") or {}
    return out
