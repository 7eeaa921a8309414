"""router_service.dashboard without HTTP: the bounded log reads (``query``, on SQLite and,
when ROUTER_TEST_POSTGRES_URL is set, on a real PostgreSQL) and the aggregation of rows
into tier shares, cost against always-strong, latency percentiles, fallbacks and the time
series (``summary``), with numbers worked out by hand."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from router_service.dashboard import ASSETS, static_asset
from router_service.dashboard.query import feedback_counts, recent_decisions
from router_service.dashboard.summary import (
    bucket_seconds,
    fallback_backend,
    latency,
    percentile,
    summarise,
)
from router_service.logstore import DecisionLog, LogRow, create_decision_log, metadata
from router_service.logstore.schema import decisions, row_values

PG_URL = os.environ.get("ROUTER_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="ROUTER_TEST_POSTGRES_URL is not set"),
        ],
    ),
]
NOW = datetime(2025, 6, 1, 12, 0, 4, tzinfo=UTC)  # c, d and e share its 5 s bucket


def _reset(url: str) -> None:
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionLog]:
    """An empty decision log (tables created) of each kind."""
    url = PG_URL if request.param == "postgres" else None
    if url:
        _reset(url)
    decision_log = create_decision_log(url, tmp_path / "log.db")
    decision_log.create_schema()
    yield decision_log
    decision_log.close_sync()
    if url:
        _reset(url)


def insert(log: DecisionLog, *rows: LogRow) -> None:
    """Rows -> the table, converted exactly as the group-commit writer converts them."""
    values = [row_values(r, postgres=log.dialect == "postgresql") for r in rows]
    with log.engine.begin() as conn:
        conn.execute(decisions.insert(), values)


def row(rid: str, seconds_ago: float, **kw: Any) -> LogRow:
    fields: dict[str, Any] = {"tier": "local", "intent": "chitchat", "backend": "local-a"}
    fields.update(kw)
    return LogRow(rid, created_at=NOW - timedelta(seconds=seconds_ago), **fields)


def test_recent_decisions_are_the_newest_of_the_window_and_bounded(log: DecisionLog) -> None:
    insert(log, *(row(f"r{i}", seconds_ago=10 * i, messages=[{"role": "user"}]) for i in range(30)))
    insert(log, row("old", seconds_ago=4000))
    since = NOW - timedelta(seconds=900)
    rows, truncated = recent_decisions(log.engine, since, limit=50)
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(30)]  # newest first
    assert not truncated
    assert "messages" not in rows[0] and "answer" not in rows[0]
    assert rows[0]["created_at"] == NOW and rows[0]["created_at"].tzinfo is not None
    assert rows[0]["fallbacks"] == [] and rows[0]["extra"] == {}
    rows, truncated = recent_decisions(log.engine, since, limit=10)
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(10)] and truncated
    rows, truncated = recent_decisions(log.engine, NOW - timedelta(seconds=95), limit=10)
    assert len(rows) == 10 and not truncated  # r0..r9: exactly the window, not cut
    with pytest.raises(ValueError):
        recent_decisions(log.engine, since, limit=0)


def test_feedback_counts_per_source_in_the_window(log: DecisionLog) -> None:
    insert(log, row("a", 1), row("b", 2), row("c", 3))
    recent = NOW - timedelta(seconds=5)
    log.add_feedback("a", "judge", judge_model="j", score=8, preference="cheap", created_at=recent)
    log.add_feedback("b", "judge", judge_model="j", score=4, preference="strong", created_at=recent)
    log.add_feedback("c", "judge", judge_model="j", status="failed", created_at=recent)
    log.add_feedback("a", "user", thumbs=1, created_at=recent)
    log.add_feedback("b", "user", thumbs=-1, score=3, created_at=recent)
    log.add_feedback("c", "user", score=9, created_at=recent)
    log.add_feedback("c", "judge", judge_model="old", score=1, created_at=NOW - timedelta(days=2))
    counts = feedback_counts(log.engine, NOW - timedelta(seconds=60))
    assert counts["judge"] == {
        "total": 3,
        "ok": 2,
        "failed": 1,
        "mean_score": 6.0,
        "preference": {"cheap": 1, "strong": 1, "tie": 0},
    }
    assert counts["user"] == {"total": 3, "up": 1, "down": 1, "scored": 2, "mean_score": 6.0}
    empty = feedback_counts(log.engine, NOW + timedelta(seconds=1))
    assert empty["judge"]["total"] == 0 and empty["user"]["mean_score"] is None


def test_bucket_sizes_keep_the_series_short() -> None:
    assert [bucket_seconds(w) for w in (60, 300, 900, 3600, 21600, 86400)] == [
        5, 5, 15, 60, 600, 1800,
    ]  # fmt: skip
    assert bucket_seconds(7 * 86400) == 14400  # past the steps: multiples of 2 h
    for window in (60, 900, 86400, 7 * 86400):
        assert window / bucket_seconds(window) <= 60


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99
    assert percentile([], 0.5) is None
    assert latency([3.0, None, 1.0, 2.0, float("nan")]) == {"p50": 2.0, "p99": 3.0, "n": 3}
    assert fallback_backend("primary/primary-openai: http_500") == "primary-openai"


PRICES = {"local-a": (0.0, 0.0), "primary-a": (1.0, 2.0), "strong-a": (10.0, 20.0)}


def window_rows() -> list[dict[str, Any]]:
    """Five decisions of the last 40 s, newest first, as ``recent_decisions`` returns them."""

    def r(rid: str, ago: float, **kw: Any) -> dict[str, Any]:
        base = {"request_id": rid, "created_at": NOW - timedelta(seconds=ago), "status": 200}
        base.update({"fallbacks": [], "extra": {}, "decision_us": None})
        base.update(kw)
        return base

    return [
        r("e", 1, tier="strong", backend=None, status=502, error="x" * 500,
          fallbacks=["strong/strong-a: timeout"], decision_us=100.0),
        r("d", 2, tier="primary", backend="strong-a", prompt_tokens=1000, completion_tokens=500,
          fallbacks=["primary/primary-a: http_500"], upstream_latency_ms=30.0, decision_us=200.0,
          extra={"endpoint": "chat", "decided_tier": "primary", "forced": "primary"}),
        r("c", 3, tier="primary", backend="primary-a", prompt_tokens=1000, completion_tokens=500,
          upstream_latency_ms=20.0, decision_us=300.0, strong_win_rate=0.31234),
        r("b", 20, tier="local", backend="local-a", prompt_tokens=100, completion_tokens=None,
          upstream_latency_ms=10.0, decision_us=400.0),
        r("a", 40, tier="local", backend=None, extra={"endpoint": "classify"}, decision_us=500.0),
    ]  # fmt: skip


def test_summarise_counts_costs_and_latencies() -> None:
    out = summarise(
        window_rows(),
        prices=PRICES,
        strong_price=(10.0, 20.0),
        now=NOW,
        window_s=300,
        recent=3,
        backend_tiers={"local-a": "local", "primary-a": "primary", "strong-a": "strong"},
    )
    assert out["tiers"]["counts"] == {"local": 2, "primary": 2, "strong": 1}
    assert out["tiers"]["shares"] == {"local": 0.4, "primary": 0.4, "strong": 0.2}
    # d: served by strong-a after a fallback -> strong prices: 1000*10 + 500*20 = 0.02 USD;
    # c: primary-a: 1000*1 + 500*2 = 0.002; b: local, free; baselines at the strong price.
    cost = out["cost"]
    assert cost["estimated_usd"] == pytest.approx(0.022)
    assert cost["strong_baseline_usd"] == pytest.approx(0.02 + 0.02 + 0.001)
    assert cost["saved_usd"] == pytest.approx(0.019)
    assert cost["saved_pct"] == pytest.approx(100 * 0.019 / 0.041)
    assert cost["rows_with_usage"] == 3  # e failed, a is a classify row: no usage
    assert out["latency"]["decision_us"] == {"p50": 300.0, "p99": 500.0, "n": 5}
    assert out["latency"]["upstream_ms"] == {"p50": 20.0, "p99": 30.0, "n": 3}
    assert out["fallbacks"] == {"requests": 2}
    assert out["errors"] == 1
    assert out["backends"] == {
        "strong-a": {"served": 1, "errors": 0, "fallbacks": {"timeout": 1}},
        "primary-a": {"served": 1, "errors": 0, "fallbacks": {"http_500": 1}},
        "local-a": {"served": 1, "errors": 0, "fallbacks": {}},
    }
    recent = out["recent"]
    assert [r["request_id"] for r in recent] == ["e", "d", "c"]
    assert len(recent[0]["error"]) == 300 and recent[0]["served_tier"] is None
    assert recent[1]["served_tier"] == "strong" and recent[1]["forced"] is True
    assert recent[2]["strong_win_rate"] == 0.3123 and recent[2]["endpoint"] == "chat"


def test_the_series_buckets_from_the_oldest_row_to_now() -> None:
    out = summarise(window_rows(), prices=PRICES, strong_price=(10.0, 20.0), now=NOW, window_s=300)
    series = out["series"]
    assert series["bucket_seconds"] == 5
    points = series["points"]
    start = int((NOW - timedelta(seconds=40)).timestamp()) // 5 * 5
    assert [p["t"] for p in points] == list(range(start, int(NOW.timestamp()) + 1, 5))
    assert sum(p["local"] + p["primary"] + p["strong"] for p in points) == 5
    last = points[-1]  # c, d (primary) and e (strong) fall in the newest bucket
    assert (last["local"], last["primary"], last["strong"]) == (0, 2, 1)
    assert last["cost_usd"] == pytest.approx(0.022)
    assert last["strong_baseline_usd"] == pytest.approx(0.04)
    assert (last["upstream_ms_p50"], last["upstream_ms_p99"]) == (20.0, 30.0)
    empty = [p for p in points if not (p["local"] or p["primary"] or p["strong"])]
    assert all(p["upstream_ms_p50"] is None and p["cost_usd"] == 0 for p in empty)
    nothing = summarise([], prices=PRICES, strong_price=(1, 1), now=NOW, window_s=900)
    assert nothing["series"]["points"] == [] and nothing["tiers"]["shares"]["local"] is None
    assert nothing["cost"]["saved_pct"] is None and nothing["latency"]["total_ms"]["n"] == 0


def test_the_page_files_are_package_data() -> None:
    for name, media_type in ASSETS.items():
        found = static_asset(name)
        assert found is not None and found[1] == media_type and len(found[0]) > 500
    assert static_asset("../__init__.py") is None
    page = static_asset("index.html")
    assert page is not None
    html = page[0].decode()
    assert 'src="dashboard/dashboard.js"' in html and 'href="dashboard/dashboard.css"' in html
    assert "<script>" not in html and "style=" not in html  # nothing inline (the CSP)
    assert "http" not in html  # nothing fetched from elsewhere: works offline
    script = static_asset("dashboard.js")
    assert script is not None
    assert script[0].decode().replace("http://www.w3.org/2000/svg", "").count("http") == 0
