"""What a judge run spends, against loopback servers: the spend cap as a hard bound under
concurrency (servers that bill the most a request can cost), the reservation ledger, and
cost estimated for endpoints that report no usage, kept apart from metered cost."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest
from test_judge_run import ONE_CALL_USD, chat_reply, fast_opts, judge, judged, priced, seed_log

from fakes.llm import openai_completion
from fakes.server import FakeUpstream, Recorded, Reply
from training.loop.judge import JudgeOptions, worst_case_cost
from training.loop.judge_calls import SpendBudget


def billing_the_most(text: str):
    """A server answering ``text`` and billing the worst case the run can assume: a token
    per byte of the request's messages, and the full ``max_tokens``."""

    def respond(rec: Recorded) -> Reply:
        body = rec.json()
        usage = (len(orjson.dumps(body["messages"])), body["max_tokens"])
        return Reply(first_delay=0.02, chunks=[orjson.dumps(openai_completion(text, usage=usage))])

    return respond


def stored_cost(log) -> float:
    return sum(r["cost_usd"] for r in judged(log).values())


def test_single_mode_never_spends_past_the_cap_under_concurrency(tmp_path: Path) -> None:
    log = seed_log(tmp_path / "cap.db", n=12)
    server = FakeUpstream("judge", billing_the_most("Fine.\nRating: [[7]]"))
    try:
        target = priced(server.url)
        worst = worst_case_cost(next(log.iter_rows()), JudgeOptions(), target, None)
        cap = 4.5 * worst  # every request costs exactly its worst case: four fit
        summary = judge(log, target, fast_opts(concurrency=6, max_spend_usd=cap))
        assert summary.stopped_by_budget and summary.ok == 4 and summary.not_started == 8
        assert summary.cost_usd == pytest.approx(4 * worst)
        assert stored_cost(log) <= cap
    finally:
        server.stop()
        log.close_sync()


def test_pairwise_cap_counts_the_strong_tier_at_its_own_price(tmp_path: Path) -> None:
    # The strong tier is 25x dearer than the judge: a cap that ignored it would let all six
    # requests start at once and spend far past it.
    log = seed_log(tmp_path / "pair.db", n=12)
    judge_server = FakeUpstream("judge", billing_the_most("Same.\nVerdict: [[C]]"))
    strong_server = FakeUpstream("strong", billing_the_most("A strong answer. " * 30))
    try:
        target = priced(judge_server.url)
        strong = priced(strong_server.url, model="strong-model", prices=(50.0, 200.0))
        opts = fast_opts(mode="pairwise", concurrency=6, answer_max_tokens=256, max_tokens=128)
        one_strong_answer = 256 * 200.0 / 1e6
        cap = 3.5 * worst_case_cost(next(log.iter_rows()), opts, target, strong)
        opts.max_spend_usd = cap
        summary = judge(log, target, opts, strong=strong)
        assert summary.stopped_by_budget and summary.ok >= 3
        assert one_strong_answer * summary.ok < summary.cost_usd <= cap
        assert stored_cost(log) == pytest.approx(summary.cost_usd)
        assert len(strong_server.calls) == summary.ok
    finally:
        judge_server.stop()
        strong_server.stop()
        log.close_sync()


def test_budget_waits_for_in_flight_requests_then_refuses() -> None:
    async def scenario() -> list[object]:
        budget = SpendBudget(1.0)
        events: list[object] = [await budget.reserve(0.6)]
        waiting = asyncio.create_task(budget.reserve(0.6))  # 0.6 + 0.6 > 1.0: waits
        await asyncio.sleep(0.01)
        events.append(waiting.done())
        await budget.settle(0.6, 0.2)  # finished below its worst case: 0.2 + 0.6 fits
        events.append(await waiting)
        await budget.settle(0.6, 0.5)  # spent 0.7, nothing in flight: 0.6 never fits
        events.append(await budget.reserve(0.6))
        events.append(await budget.reserve(0.3))
        events.append(round(budget.spent + budget.reserved, 9))
        return events

    assert asyncio.run(scenario()) == [True, False, True, False, True, 1.0]


def no_usage_reply(text: str) -> Reply:
    body = openai_completion(text, "judge-model")
    del body["usage"]
    return Reply.json(body)


def test_cost_without_usage_is_estimated_reported_apart_and_warned_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = seed_log(tmp_path / "usage.db")
    server = FakeUpstream("judge", lambda rec: chat_reply("Fine.\nRating: [[7]]"))
    server.script(*(no_usage_reply("Fine.\nRating: [[7]]") for _ in range(2)))
    try:
        with caplog.at_level(logging.WARNING, logger="training.judge"):
            summary = judge(log, priced(server.url), fast_opts(concurrency=1))
    finally:
        server.stop()
        log.close_sync()
    assert summary.ok == 6 and summary.calls_without_usage == 2
    assert summary.cost_reported_usd == pytest.approx(4 * ONE_CALL_USD)
    assert 0 < summary.cost_estimated_usd < ONE_CALL_USD  # a short prompt, estimated
    assert summary.cost_usd == pytest.approx(4 * ONE_CALL_USD + summary.cost_estimated_usd)
    out = summary.as_dict()
    assert out["calls_without_usage"] == 2 and out["cost_estimated_usd"] > 0
    assert "estimated: 2 calls without usage" in summary.describe()
    warnings = [r for r in caplog.records if "without token usage" in r.getMessage()]
    assert len(warnings) == 1 and "judge-model" in warnings[0].getMessage()


def test_metered_runs_say_nothing_about_estimates(tmp_path: Path) -> None:
    log = seed_log(tmp_path / "metered.db", n=2)
    server = FakeUpstream("judge", lambda rec: chat_reply("Fine.\nRating: [[7]]"))
    try:
        summary = judge(log, priced(server.url), fast_opts())
    finally:
        server.stop()
        log.close_sync()
    assert summary.calls_without_usage == 0 and summary.cost_estimated_usd == 0
    assert summary.describe().endswith(f"cost ${2 * ONE_CALL_USD:.4f}")
