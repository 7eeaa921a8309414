"""Retries honour ``Retry-After``: parsing (seconds, HTTP-date, garbage), the cap and the
exponential fallback; and a loopback judge that answers 429/503 with the header."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from test_judge_run import fast_opts, judge, judged, priced, seed_log

from fakes.llm import openai_completion
from training.loop.judge import JudgeSummary, run_judge
from training.loop.judge_calls import RetryPolicy, backoff_delay, parse_retry_after

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        ("Wed, 01 Jan 2025 12:00:45 GMT", 45.0),
        ("Wed, 01 Jan 2025 11:00:00 GMT", 0.0),  # already past: go now
        (None, None),
        ("", None),
        ("-5", None),
        ("soon", None),
        ("12 parsecs", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


def delay(attempt: int, retry_after: str | None, seed: int = 0) -> float:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=20.0, retry_after_max_s=60.0)
    return backoff_delay(attempt, retry_after, policy, random.Random(seed), NOW)


def test_backoff_prefers_retry_after_capped_else_exponential_with_jitter() -> None:
    assert delay(1, "7") == 7.0
    assert delay(3, "Wed, 01 Jan 2025 12:00:09 GMT") == 9.0
    assert delay(1, "86400") == 60.0  # capped
    for attempt, cap in [(1, 0.5), (2, 1.0), (4, 4.0), (9, 20.0)]:
        waits = {delay(attempt, None, seed) for seed in range(20)}
        assert all(cap / 2 <= w <= cap for w in waits) and len(waits) > 1
        assert all(cap / 2 <= delay(attempt, "garbage", s) <= cap for s in range(5))


class BusyJudge:
    """A loopback judge (stdlib HTTP server) whose first ``busy`` answers are ``status``
    with ``Retry-After: retry_after()``, then ``Rating: [[7]]``; it records arrival times."""

    def __init__(self, busy: int, status: int, retry_after) -> None:
        self.arrivals: list[float] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                owner.arrivals.append(time.monotonic())
                if len(owner.arrivals) <= busy:
                    self.answer(status, {"error": {"message": "busy"}}, retry_after())
                else:
                    self.answer(200, openai_completion("Fine.\nRating: [[7]]", usage=(10, 5)))

            def answer(self, code: int, body: dict, retry_after: str | None = None) -> None:
                data = orjson.dumps(body)
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if retry_after is not None:
                    self.send_header("retry-after", retry_after)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def one_row_log(tmp_path: Path) -> Iterator:
    log = seed_log(tmp_path / "retry.db", n=1)
    yield log
    log.close_sync()


def http_date_in(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("status", "retry_after", "at_least_s"),
    [
        (429, lambda: "1", 1.0),
        (503, lambda: http_date_in(2.0), 1.0),  # whole seconds: waits 1 to 2 s
    ],
)
def test_busy_answers_are_retried_after_the_time_the_server_asks(
    one_row_log, status, retry_after, at_least_s
) -> None:
    server = BusyJudge(busy=1, status=status, retry_after=retry_after)
    try:
        # Exponential backoff alone would retry within 0.05 s.
        summary = judge(one_row_log, priced(server.url), fast_opts(max_retries=2))
    finally:
        server.stop()
    assert summary.ok == 1 and summary.retries == 1 and len(server.arrivals) == 2
    assert server.arrivals[1] - server.arrivals[0] >= at_least_s
    assert judged(one_row_log)["r0"]["score"] == 7


def test_retry_after_is_capped(one_row_log) -> None:
    server = BusyJudge(busy=2, status=429, retry_after=lambda: "3600")
    opts = fast_opts(max_retries=2, retry_after_max_s=0.2)

    async def go() -> JudgeSummary:  # an uncapped hour-long wait fails, not hangs
        target = priced(server.url)
        try:
            return await asyncio.wait_for(run_judge(one_row_log, target, opts), 60)
        finally:
            await target.backend.aclose()

    try:
        summary = asyncio.run(go())
    finally:
        server.stop()
    assert summary.ok == 1 and summary.retries == 2
    gaps = [b - a for a, b in zip(server.arrivals, server.arrivals[1:], strict=False)]
    assert all(gap >= 0.2 for gap in gaps)
