"""Database URL -> ``DecisionLog``: durable, group-committed decision logging.

``create_decision_log(database_url, sqlite_path)`` picks SQLite (WAL, synchronous=NORMAL,
busy_timeout; the default) or PostgreSQL (``postgresql+psycopg://...``). ``await
log.record(row)`` returns only once the row is committed, so a client never sees an answer
whose log row could still be lost to a crash; concurrent records share one commit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

import router_service.logstore.feedback as _fb
from router_service.logstore.schema import LogRow, decisions, metadata, row_to_dict, row_values
from router_service.logstore.writer import (
    DecisionLogClosedError,
    GroupCommitWriter,
    _Item,
    wait_put,
)

logger = logging.getLogger("router_service.logstore")

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def normalise_database_url(url: str) -> str:
    """``postgres://`` / ``postgresql://`` -> the psycopg 3 driver; others unchanged."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(
    database_url: str | None,
    sqlite_path: Path | str,
    *,
    sqlite_synchronous: str = "NORMAL",
    busy_timeout_ms: int = 10_000,
) -> sa.Engine:
    """URL (or None -> SQLite file at ``sqlite_path``) -> a configured SQLAlchemy Engine."""
    url = normalise_database_url(database_url) if database_url else None
    if url is None or url.startswith("sqlite"):
        sync = sqlite_synchronous.upper()
        if sync not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite_synchronous must be one of {SQLITE_SYNCHRONOUS}")
        if url is None:
            path = Path(sqlite_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{path}"
        engine = sa.create_engine(
            url,
            json_serializer=_json_dumps,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        )

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            try:
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            finally:
                cur.close()

        return engine
    if url.startswith("postgresql"):
        return sa.create_engine(url, json_serializer=_json_dumps, pool_pre_ping=True)
    raise ValueError(
        f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite:///PATH or "
        "postgresql+psycopg://USER:PASS@HOST:PORT/DB"
    )


class DecisionLog:
    """Decision rows -> the ``decisions`` table via one group-commit writer thread.

    ``await start()`` creates the tables and starts the writer; ``await record(row)``
    enqueues and waits for the commit (raises ``DecisionLogError`` subclasses on failure);
    ``await close()`` drains everything queued. Reads (``iter_rows``, ``count``, feedback)
    use their own pooled connections and work without ``start()``."""

    def __init__(
        self,
        engine: sa.Engine,
        *,
        max_queue: int = 10_000,
        max_batch: int = 500,
        enqueue_timeout_s: float = 30.0,
    ) -> None:
        self.engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._writer = GroupCommitWriter(
            engine, decisions, max_queue=max_queue, max_batch=max_batch
        )
        self._enqueue_timeout_s = enqueue_timeout_s
        self._started = False
        self._closed = False
        self._last_full_warning = 0.0

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_schema(self) -> None:
        metadata.create_all(self.engine)

    async def start(self) -> None:
        if self._started:
            return
        if self._closed:
            raise DecisionLogClosedError("decision log already closed")
        await asyncio.to_thread(self.create_schema)
        self._writer.start()
        self._started = True

    def _check_open(self) -> None:
        if not self._started:
            raise DecisionLogClosedError("DecisionLog.start() has not been awaited")
        if self._closed:
            raise DecisionLogClosedError("decision log is closed")
        if not self._writer.alive:
            raise DecisionLogClosedError("decision log writer thread is not running")

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._last_full_warning > 5.0:
            self._last_full_warning = now
            logger.warning(
                "decision log queue is full (%d rows): requests wait for the database",
                self._writer.qsize(),
            )

    async def record(self, row: LogRow) -> None:
        """Enqueue ``row`` and return once it is committed (group commit).

        Raises ``DecisionLogWriteError`` if the row could not be written,
        ``DecisionLogFullError`` if the queue stayed full past the enqueue timeout,
        ``DecisionLogClosedError`` if the log is not running; TypeError/ValueError for a
        malformed row. Cancelling the awaiting task does not un-write the row."""
        self._check_open()
        values = row_values(row, postgres=self._postgres)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        item = _Item(values, (loop, fut))
        await wait_put(self._writer, item, self._enqueue_timeout_s, self._warn_full)
        await fut

    def record_sync(self, row: LogRow, timeout: float | None = None) -> None:
        """Blocking ``record`` for code without an event loop (CLI, jobs, tests)."""
        self._check_open()
        values = row_values(row, postgres=self._postgres)
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer.put_waiting(_Item(values, fut), self._enqueue_timeout_s, self._warn_full)
        fut.result(timeout)

    async def close(self) -> None:
        """Drain the queue (every queued row is committed or failed) and release the DB."""
        if self._closed:
            return
        self._closed = True
        if self._started:
            await asyncio.to_thread(self._writer.stop)
        self.engine.dispose()

    def close_sync(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started:
            self._writer.stop()
        self.engine.dispose()

    def stats(self) -> dict[str, Any]:
        w = self._writer
        return {
            "dialect": self.dialect,
            "queued": w.qsize(),
            "rows_written": w.rows_written,
            "rows_failed": w.rows_failed,
            "batches": w.batches,
            "max_batch": w.max_batch_seen,
            "last_error": w.last_error,
        }

    # -- reads -------------------------------------------------------------------------
    def has_schema(self) -> bool:
        return sa.inspect(self.engine).has_table("decisions")

    def iter_rows(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        columns: Sequence[str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Logged decisions with ``since <= created_at < until``, oldest first, streamed.
        Each dict has every ``LogRow`` field (``created_at`` aware UTC) plus ``id``, or
        only ``columns`` when given (cheaper: calibration needs no messages)."""
        if columns is None:
            query = sa.select(decisions)
        else:
            unknown = sorted(set(columns) - set(decisions.c.keys()))
            if unknown:
                raise ValueError(f"unknown decision-log columns {unknown}")
            query = sa.select(*(decisions.c[name] for name in columns))
        if since is not None:
            query = query.where(decisions.c.created_at >= since)
        if until is not None:
            query = query.where(decisions.c.created_at < until)
        query = query.order_by(decisions.c.created_at, decisions.c.id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(query)
            for row in result.mappings():
                yield row_to_dict(row) if columns is None else {str(k): v for k, v in row.items()}

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(decisions)).scalar_one())

    # -- feedback ----------------------------------------------------------------------
    def add_feedback(self, request_id: str, source: str, **kwargs: Any) -> bool:
        """See ``router_service.logstore.feedback.add_feedback`` (sync; it is rare)."""
        return _fb.add_feedback(self.engine, request_id, source, **kwargs)

    async def add_feedback_async(self, request_id: str, source: str, **kwargs: Any) -> bool:
        return await asyncio.to_thread(_fb.add_feedback, self.engine, request_id, source, **kwargs)

    def feedback_exists(
        self,
        request_id: str,
        source: str = "judge",
        judge_model: str | None = None,
        *,
        ok_only: bool = True,
    ) -> bool:
        return _fb.feedback_exists(self.engine, request_id, source, judge_model, ok_only=ok_only)

    def iter_feedback(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        return _fb.iter_feedback(self.engine, **kwargs)

    def request_exists(self, request_id: str) -> bool:
        return self.request_client(request_id)[0]

    def request_client(self, request_id: str) -> tuple[bool, str | None]:
        """-> (a decision row with this id exists, the client key id it was made with)."""
        query = sa.select(decisions.c.extra).where(decisions.c.request_id == request_id).limit(1)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return False, None
        extra = row[0] if isinstance(row[0], dict) else {}
        key = extra.get("client_key")
        return True, key if isinstance(key, str) else None


def create_decision_log(
    database_url: str | None,
    sqlite_path: Path,
    *,
    sqlite_synchronous: str = "NORMAL",
    busy_timeout_ms: int = 10_000,
    max_queue: int = 10_000,
    max_batch: int = 500,
    enqueue_timeout_s: float = 30.0,
) -> DecisionLog:
    """``database_url`` (PostgreSQL/SQLite URL) or None -> SQLite at ``sqlite_path``.

    Nothing touches the database until ``await log.start()`` (or a read)."""
    engine = make_engine(
        database_url,
        sqlite_path,
        sqlite_synchronous=sqlite_synchronous,
        busy_timeout_ms=busy_timeout_ms,
    )
    return DecisionLog(
        engine, max_queue=max_queue, max_batch=max_batch, enqueue_timeout_s=enqueue_timeout_s
    )
