"""router_service.logstore: group-committed decision log + feedback, on SQLite and (when
ROUTER_TEST_POSTGRES_URL is set, e.g. by .ci/postgres.sh) on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

from router_service.decision import Decision
from router_service.logstore import (
    DecisionLog,
    DecisionLogClosedError,
    DecisionLogFullError,
    DecisionLogWriteError,
    LogRow,
    create_decision_log,
    metadata,
)

PG_URL = os.environ.get("ROUTER_TEST_POSTGRES_URL")
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not PG_URL,
                reason="ROUTER_TEST_POSTGRES_URL is not set (start a server with "
                "`source .ci/postgres.sh`)",
            ),
        ],
    ),
]


def reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str | None, Path]]:
    """(database_url, sqlite_path) of an empty database of each kind."""
    if request.param == "postgres":
        assert PG_URL
        reset_postgres(PG_URL)
        yield PG_URL, tmp_path / "unused.db"
        reset_postgres(PG_URL)
    else:
        yield None, tmp_path / "router_logs.db"


def make_log(db: tuple[str | None, Path], **kwargs: object) -> DecisionLog:
    return create_decision_log(db[0], db[1], **kwargs)  # type: ignore[arg-type]


def full_row(rid: str, **overrides: object) -> LogRow:
    fields: dict[str, object] = {
        "request_id": rid,
        "created_at": datetime(2025, 3, 1, 12, 0, tzinfo=UTC),
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "2+2?"},
        ],
        "intent": "math",
        "intent_confidence": 0.91,
        "strong_win_rate": 0.42,
        "tier": "primary",
        "reason": "math: 0.1 <= strong_win_rate 0.420 < 0.3",
        "scorer": "learned",
        "model_version": "v3",
        "sensitive": False,
        "backend": "openai-mini",
        "model": "gpt-4o-mini",
        "fallbacks": ["local:llamacpp: timeout"],
        "status": 200,
        "error": None,
        "stream": True,
        "decision_us": 180.5,
        "upstream_latency_ms": 812.0,
        "ttfb_ms": 95.5,
        "total_ms": 830.25,
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "answer": "4",
        "extra": {"n": 1, "nested": {"ok": True}},
    }
    fields.update(overrides)
    return LogRow(**fields)  # type: ignore[arg-type]


async def started(db: tuple[str | None, Path], **kwargs: object) -> DecisionLog:
    log = make_log(db, **kwargs)
    await log.start()
    return log


def test_round_trip_every_field(db: tuple[str | None, Path]) -> None:
    async def main() -> None:
        log = await started(db)
        await log.record(full_row("r1"))
        await log.close()

    asyncio.run(main())
    log = make_log(db)
    (row,) = list(log.iter_rows())
    expected = full_row("r1").to_dict()
    assert row.pop("id") >= 1
    assert row == expected
    assert row["created_at"].tzinfo is not None
    assert log.count() == 1
    log.close_sync()


def test_non_utc_timestamps_are_stored_as_utc(db: tuple[str | None, Path]) -> None:
    cet = timezone(timedelta(hours=1))

    async def main() -> None:
        log = await started(db)
        await log.record(LogRow("a", created_at=datetime(2025, 1, 1, 13, 0, tzinfo=cet)))
        await log.record(LogRow("b", created_at=datetime(2025, 1, 1, 12, 30)))  # naive = UTC
        await log.close()

    asyncio.run(main())
    log = make_log(db)
    got = {r["request_id"]: r["created_at"] for r in log.iter_rows()}
    assert got == {
        "a": datetime(2025, 1, 1, 12, 0, tzinfo=UTC),
        "b": datetime(2025, 1, 1, 12, 30, tzinfo=UTC),
    }
    log.close_sync()


def test_from_decision_fills_routing_fields() -> None:
    decision = Decision(
        intent="coding",
        intent_confidence=0.8,
        intent_scores={"coding": 0.8},
        strong_win_rate=0.55,
        tier="strong",
        reason="coding: strong_win_rate 0.550 >= 0.3",
        scorer="learned",
        decision_us=120.0,
        model_version="v9",
    )
    row = LogRow.from_decision("rid", decision, status=502, error="upstream down")
    assert (row.intent, row.tier, row.scorer, row.model_version) == (
        "coding",
        "strong",
        "learned",
        "v9",
    )
    assert (row.strong_win_rate, row.decision_us, row.status) == (0.55, 120.0, 502)


def test_concurrent_records_share_commits(db: tuple[str | None, Path]) -> None:
    async def main() -> dict[str, object]:
        log = await started(db)
        await asyncio.gather(*(log.record(LogRow(f"r{i}")) for i in range(400)))
        stats = log.stats()
        await log.close()
        return stats

    stats = asyncio.run(main())
    assert stats["rows_written"] == 400 and stats["rows_failed"] == 0
    assert isinstance(stats["batches"], int) and stats["batches"] < 400  # group commit
    log = make_log(db)
    assert log.count() == 400
    assert {r["request_id"] for r in log.iter_rows()} == {f"r{i}" for i in range(400)}
    log.close_sync()


def test_since_until_and_columns(db: tuple[str | None, Path]) -> None:
    base = datetime(2025, 5, 1, tzinfo=UTC)

    async def main() -> None:
        log = await started(db)
        for day in range(5):
            await log.record(
                LogRow(f"d{day}", created_at=base + timedelta(days=day), intent="math")
            )
        await log.close()

    asyncio.run(main())
    log = make_log(db)
    ids = [
        r["request_id"] for r in log.iter_rows(base + timedelta(days=1), base + timedelta(days=3))
    ]
    assert ids == ["d1", "d2"]
    assert [r["request_id"] for r in log.iter_rows(since=base + timedelta(days=4))] == ["d4"]
    slim = list(log.iter_rows(columns=("request_id", "intent")))
    assert slim[0] == {"request_id": "d0", "intent": "math"}
    with pytest.raises(ValueError, match="unknown decision-log columns"):
        list(log.iter_rows(columns=("nope",)))
    log.close_sync()


def test_close_drains_everything_queued(db: tuple[str | None, Path]) -> None:
    async def main() -> list[BaseException | None]:
        log = await started(db)
        tasks = [asyncio.create_task(log.record(LogRow(f"q{i}"))) for i in range(300)]
        await asyncio.sleep(0)  # every task has enqueued its row
        await log.close()
        return list(await asyncio.gather(*tasks, return_exceptions=True))

    results = asyncio.run(main())
    assert results == [None] * 300
    log = make_log(db)
    assert log.count() == 300
    log.close_sync()


def test_close_while_records_wait_for_queue_space(db: tuple[str | None, Path]) -> None:
    """Rows waiting for queue space when close() starts are either committed or refused
    with DecisionLogClosedError; none is left hanging or silently dropped."""

    async def main() -> list[BaseException | None]:
        log = await started(db, max_queue=2, max_batch=1)
        tasks = [asyncio.create_task(log.record(LogRow(f"c{i}"))) for i in range(60)]
        await asyncio.sleep(0)
        await log.close()
        return list(await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60))

    results = asyncio.run(main())
    assert all(r is None or isinstance(r, DecisionLogClosedError) for r in results)
    ok = sum(r is None for r in results)
    assert 0 < ok < 60
    log = make_log(db)
    assert log.count() == ok
    log.close_sync()


def test_record_before_start_and_after_close(db: tuple[str | None, Path]) -> None:
    async def main() -> None:
        log = make_log(db)
        with pytest.raises(DecisionLogClosedError, match="start"):
            await log.record(LogRow("x"))
        await log.start()
        await log.close()
        with pytest.raises(DecisionLogClosedError, match="closed"):
            await log.record(LogRow("x"))

    asyncio.run(main())


def test_malformed_rows_are_rejected_before_queueing(db: tuple[str | None, Path]) -> None:
    async def main() -> None:
        log = await started(db)
        with pytest.raises(ValueError, match="request_id"):
            await log.record(LogRow(""))
        with pytest.raises(TypeError, match="LogRow"):
            await log.record({"request_id": "x"})  # type: ignore[arg-type]
        await log.record(LogRow("nan", strong_win_rate=float("nan"), total_ms=float("inf")))
        await log.close()

    asyncio.run(main())
    log = make_log(db)
    (row,) = list(log.iter_rows())
    assert row["strong_win_rate"] is None and row["total_ms"] is None
    log.close_sync()


def test_one_bad_row_fails_alone_and_loudly(
    db: tuple[str | None, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """A row the database cannot take fails with an exception from record(); the rows
    committed in the same batch are unaffected, and the writer keeps working."""

    async def main() -> list[BaseException | None]:
        log = await started(db)
        rows = [LogRow(f"ok{i}") for i in range(20)]
        rows.insert(7, LogRow("bad", extra={"huge": 2**70}))  # not representable as JSON int64
        out = await asyncio.gather(*(log.record(r) for r in rows), return_exceptions=True)
        await log.record(LogRow("after"))
        await log.close()
        return list(out)

    results = asyncio.run(main())
    errors = [r for r in results if r is not None]
    assert len(errors) == 1 and isinstance(errors[0], DecisionLogWriteError)
    assert "'bad'" in str(errors[0])
    assert any("could not write row" in rec.getMessage() for rec in caplog.records)
    log = make_log(db)
    ids = {r["request_id"] for r in log.iter_rows()}
    assert ids == {f"ok{i}" for i in range(20)} | {"after"}
    log.close_sync()


def test_database_failure_surfaces_then_recovers(db: tuple[str | None, Path]) -> None:
    async def main() -> None:
        log = await started(db)
        await log.record(LogRow("first"))
        with log.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE decisions"))
        with pytest.raises(DecisionLogWriteError, match="lost"):
            await log.record(LogRow("lost"))
        assert log.stats()["rows_failed"] == 1
        log.create_schema()
        await log.record(LogRow("back"))
        await log.close()

    asyncio.run(main())
    log = make_log(db)
    assert [r["request_id"] for r in log.iter_rows()] == ["back"]
    log.close_sync()


def test_backpressure_small_queue_loses_nothing(db: tuple[str | None, Path]) -> None:
    async def main() -> None:
        log = await started(db, max_queue=4, max_batch=2)
        await asyncio.gather(*(log.record(LogRow(f"b{i}")) for i in range(120)))
        await log.close()

    asyncio.run(main())
    log = make_log(db)
    assert log.count() == 120
    log.close_sync()


def test_queue_full_past_timeout_raises(tmp_path: Path) -> None:
    """SQLite locked by another writer: the queue fills and record() gives up clearly."""
    path = tmp_path / "locked.db"

    async def main() -> None:
        log = create_decision_log(
            None, path, busy_timeout_ms=200, max_queue=1, max_batch=1, enqueue_timeout_s=0.2
        )
        await log.start()
        await log.record(LogRow("warm"))
        blocker = sqlite3.connect(path, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            pending = [asyncio.create_task(log.record(LogRow(f"w{i}"))) for i in range(3)]
            done = await asyncio.gather(*pending, return_exceptions=True)
            assert any(isinstance(r, DecisionLogFullError) for r in done)
        finally:
            blocker.rollback()
            blocker.close()
        await log.close()

    asyncio.run(main())


def test_record_sync_and_cancelled_waiter(db: tuple[str | None, Path]) -> None:
    async def main() -> None:
        log = await started(db)
        task = asyncio.create_task(log.record(LogRow("cancelled")))
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.to_thread(log.record_sync, LogRow("sync"))
        await log.close()

    asyncio.run(main())
    log = make_log(db)
    assert {r["request_id"] for r in log.iter_rows()} == {"cancelled", "sync"}
    log.close_sync()


def test_records_from_several_event_loops(db: tuple[str | None, Path]) -> None:
    log = make_log(db)
    asyncio.run(log.start())
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        async def go() -> None:
            await asyncio.gather(*(log.record(LogRow(f"t{k}-{i}")) for i in range(50)))

        try:
            asyncio.run(go())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close_sync()
    assert errors == []
    assert make_log(db).count() == 200


def test_text_with_nul_bytes(db: tuple[str | None, Path]) -> None:
    async def main() -> None:
        log = await started(db)
        await log.record(
            LogRow("nul", messages=[{"role": "user", "content": "a\x00b"}], answer="c\x00")
        )
        await log.close()

    asyncio.run(main())
    (row,) = list(make_log(db).iter_rows())
    content = row["messages"][0]["content"]
    assert content in ("a\x00b", "a\ufffdb")  # PostgreSQL cannot store U+0000
    assert row["answer"] in ("c\x00", "c\ufffd")


def test_sqlite_is_wal_with_normal_sync(tmp_path: Path) -> None:
    log = create_decision_log(None, tmp_path / "wal.db")
    with log.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    log.close_sync()


def test_unsupported_database_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported database URL 'mysql'"):
        create_decision_log("mysql://u@h/db", tmp_path / "x.db")


def test_postgres_scheme_is_normalised_to_psycopg(tmp_path: Path) -> None:
    log = create_decision_log("postgresql://u:p@127.0.0.1:1/db", tmp_path / "x.db")
    assert log.engine.url.drivername == "postgresql+psycopg"
    log.close_sync()


# -- feedback -----------------------------------------------------------------------------


def test_feedback_is_idempotent_and_replaceable(db: tuple[str | None, Path]) -> None:
    log = make_log(db)
    log.create_schema()
    assert log.add_feedback("r1", "judge", judge_model="gpt-4o", score=7, rationale="ok")
    assert not log.add_feedback("r1", "judge", judge_model="gpt-4o", score=2)  # no-op
    assert log.add_feedback("r1", "judge", judge_model="claude", preference="strong")
    assert log.add_feedback("r1", "user", thumbs=1, rationale="nice")
    assert log.add_feedback("r1", "user", thumbs=-1, replace=True)
    rows = list(log.iter_feedback())
    assert len(rows) == 3
    by_key = {(r["source"], r["judge_model"]): r for r in rows}
    assert by_key[("judge", "gpt-4o")]["score"] == 7
    assert by_key[("judge", "claude")]["preference"] == "strong"
    assert by_key[("user", "")]["thumbs"] == -1
    assert [r["source"] for r in log.iter_feedback(source="user")] == ["user"]
    log.close_sync()


def test_failed_judgements_do_not_count_as_existing(db: tuple[str | None, Path]) -> None:
    log = make_log(db)
    log.create_schema()
    log.add_feedback("r2", "judge", judge_model="j", status="failed", error="timeout", cost_usd=0.0)
    assert not log.feedback_exists("r2", "judge", "j")
    assert log.feedback_exists("r2", "judge", "j", ok_only=False)
    assert list(log.iter_feedback(ok_only=True)) == []
    assert log.add_feedback("r2", "judge", judge_model="j", score=9, replace=True)
    assert log.feedback_exists("r2", "judge", "j")
    assert not log.feedback_exists("r2", "judge", "other")
    log.close_sync()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "robot"}, "source"),
        ({"source": "judge", "score": 11}, "score"),
        ({"source": "judge", "score": 0}, "score"),
        ({"source": "judge", "preference": "weak"}, "preference"),
        ({"source": "user", "thumbs": 2}, "thumbs"),
        ({"source": "judge", "status": "maybe"}, "status"),
    ],
)
def test_feedback_validation(
    db: tuple[str | None, Path], kwargs: dict[str, object], message: str
) -> None:
    log = make_log(db)
    log.create_schema()
    args = dict(kwargs)
    source = str(args.pop("source"))
    with pytest.raises(ValueError, match=message):
        log.add_feedback("r", source, **args)
    log.close_sync()


def test_request_exists(db: tuple[str | None, Path]) -> None:
    log = make_log(db)
    asyncio.run(log.start())
    log.record_sync(LogRow("known"))
    assert log.request_exists("known") and not log.request_exists("unknown")
    log.close_sync()
