"""Queued insert values -> committed batches: the group-commit writer thread.

One background thread owns all writes, on one database connection it keeps open (a pool
checkout and reset per batch would double the cost of a one-row commit). Callers enqueue
``(values, waiter)``; the thread takes whatever is queued (up to ``max_batch``), inserts it
in ONE transaction, and only after COMMIT resolves every waiter in the batch. So under load
many requests share a single commit (one fsync), and a waiter that resolved without error
is durable.

If a batch fails, the connection is dropped (a broken or restarted server gets a fresh
one) and each row is retried in its own transaction so one bad row cannot fail its
neighbours; rows that still fail resolve their waiter with ``DecisionLogWriteError``
(and are logged), never silently dropped."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

logger = logging.getLogger("router_service.logstore")


class DecisionLogError(RuntimeError):
    """Base class of decision-log failures surfaced to callers."""


class DecisionLogWriteError(DecisionLogError):
    """A row could not be committed; the message says why."""


class DecisionLogFullError(DecisionLogError):
    """The write queue stayed full for longer than the enqueue timeout."""


class DecisionLogClosedError(DecisionLogError):
    """``record()`` was called before ``start()`` or after ``close()``."""


Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | concurrent.futures.Future[None]


@dataclass(slots=True)
class _Item:
    values: dict[str, Any]
    waiter: Waiter


_STOP = object()


def _settle_async(futures: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    """Runs on the waiters' event loop: resolve them (skipping any the caller cancelled)."""
    for fut in futures:
        if fut.done():
            continue
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)


class GroupCommitWriter:
    """Single writer thread inserting queued rows into ``table`` in batched transactions."""

    def __init__(
        self,
        engine: sa.Engine,
        table: sa.Table,
        *,
        max_queue: int = 10_000,
        max_batch: int = 500,
        name: str = "decision-log-writer",
    ) -> None:
        self._engine = engine
        self._insert = table.insert()
        self._queue: queue.Queue[_Item | object] = queue.Queue(maxsize=max_queue)
        self._max_batch = max_batch
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._conn: sa.Connection | None = None  # owned by the writer thread
        self._lock = threading.Lock()
        self._closed = False
        self.rows_written = 0
        self.rows_failed = 0
        self.batches = 0
        self.max_batch_seen = 0
        self.last_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new rows, then wait until every queued row is committed or failed."""
        with self._lock:
            if self._closed:
                already = True
            else:
                already, self._closed = False, True
        if not already and self._thread.is_alive():
            self._queue.put(_STOP)  # behind every accepted row (none can follow it)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def qsize(self) -> int:
        return self._queue.qsize()

    # -- enqueue ----------------------------------------------------------------------
    def offer(self, item: _Item) -> bool:
        """Non-blocking enqueue: False when the queue is full; raises once stopped (the
        lock makes "not stopped" and "queued before the stop marker" one step)."""
        with self._lock:
            if self._closed:
                raise DecisionLogClosedError("decision log is closed")
            try:
                self._queue.put_nowait(item)
            except queue.Full:
                return False
        return True

    def put_waiting(self, item: _Item, deadline_s: float, on_wait: Callable[[], None]) -> None:
        """Blocking enqueue with backoff (for synchronous callers)."""
        if self.offer(item):
            return
        on_wait()
        delay, start = 0.0005, time.monotonic()
        while not self.offer(item):
            if time.monotonic() - start > deadline_s:
                raise _full_error(deadline_s)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -- the thread -------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batch: list[_Item] = [first]  # type: ignore[list-item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)  # type: ignore[arg-type]
            try:
                self._write(batch)
            except BaseException as exc:  # never let the thread die with waiters pending
                logger.exception("decision log writer crashed on a batch of %d", len(batch))
                self._settle(batch, DecisionLogWriteError(f"decision log writer error: {exc!r}"))
        self._drop_connection()

    def _insert_rows(self, rows: list[dict[str, Any]]) -> None:
        """One transaction on the writer's connection; on any failure the connection is
        dropped, so the next attempt starts on a fresh one."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self._engine.connect()
        try:
            with self._conn.begin():
                self._conn.execute(self._insert, rows)
        except BaseException:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _write(self, batch: list[_Item]) -> None:
        try:
            self._insert_rows([item.values for item in batch])
        except Exception as exc:
            logger.error(
                "decision log: batch of %d rows failed (%s); retrying rows one by one",
                len(batch),
                exc,
            )
            self._write_one_by_one(batch)
            return
        with self._lock:
            self.rows_written += len(batch)
            self.batches += 1
            self.max_batch_seen = max(self.max_batch_seen, len(batch))
        self._settle(batch, None)

    def _write_one_by_one(self, batch: list[_Item]) -> None:
        ok: list[_Item] = []
        for item in batch:
            try:
                self._insert_rows([item.values])
            except Exception as exc:
                message = (
                    f"decision log: could not write row request_id="
                    f"{item.values.get('request_id')!r}: {type(exc).__name__}: {exc}"
                )
                logger.error(message)
                with self._lock:
                    self.rows_failed += 1
                    self.last_error = message
                self._settle([item], DecisionLogWriteError(message))
            else:
                ok.append(item)
        with self._lock:
            self.rows_written += len(ok)
            self.batches += len(ok)
        self._settle(ok, None)

    @staticmethod
    def _settle(items: list[_Item], exc: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = defaultdict(list)
        for item in items:
            waiter = item.waiter
            if isinstance(waiter, concurrent.futures.Future):
                if not waiter.done():
                    if exc is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(exc)
            else:
                loop, fut = waiter
                by_loop[loop].append(fut)
        # One wake-up per event loop per batch, not one per row.
        for loop, futures in by_loop.items():
            # A closed loop raises RuntimeError: nobody is waiting there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle_async, futures, exc)


def _full_error(deadline_s: float) -> DecisionLogFullError:
    return DecisionLogFullError(
        f"decision log queue stayed full for {deadline_s:g}s; the database is too slow"
    )


async def wait_put(
    writer: GroupCommitWriter, item: _Item, deadline_s: float, on_wait: Callable[[], None]
) -> None:
    """Backpressure for async callers: enqueue, retrying with backoff while the queue is
    full (the event loop keeps serving other requests meanwhile)."""
    if writer.offer(item):
        return
    on_wait()
    delay, start = 0.0005, time.monotonic()
    while not writer.offer(item):
        if time.monotonic() - start > deadline_s:
            raise _full_error(deadline_s)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
