"""``training.loop.judge`` against scripted judge servers on loopback: ratings, unparsable
replies, 429 then success, timeouts, pairwise with position swap, filters, spend cap,
idempotency and resuming an interrupted run; and the ``judge`` CLI."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fakes.llm import openai_completion
from fakes.server import FakeUpstream, Recorded, Reply
from router_service.logstore import DecisionLog, LogRow, create_decision_log
from router_service.policy import BackendConfig, Price, ResolvedBackend, Timeouts
from training.loop import judge_cli
from training.loop.judge import JudgeOptions, judge_key, run_judge, sampled, worst_case_cost
from training.loop.judge_calls import Priced

T0 = datetime(2025, 1, 1, tzinfo=UTC)
PRICE_IN, PRICE_OUT = 2.0, 8.0  # USD / 1M tokens
USAGE = (1000, 50)
ONE_CALL_USD = (USAGE[0] * PRICE_IN + USAGE[1] * PRICE_OUT) / 1e6


def seed_log(path: Path, n: int = 6, **overrides: Any) -> DecisionLog:
    """``n`` logged requests: r0..r{n-1}, tiers local/primary alternating, intents math/
    chitchat alternating, one minute apart, each with an answer."""
    log = create_decision_log(None, path)
    asyncio.run(log.start())
    for i in range(n):
        fields: dict[str, Any] = {
            "request_id": f"r{i}",
            "created_at": T0 + timedelta(minutes=i),
            "messages": [{"role": "user", "content": f"question number {i}?"}],
            "tier": "local" if i % 2 == 0 else "primary",
            "intent": "math" if i % 2 == 0 else "chitchat",
            "answer": f"answer number {i}",
            "status": 200,
        }
        fields.update(overrides)
        log.record_sync(LogRow(**fields))
    return log


@pytest.fixture
def decision_log(tmp_path: Path) -> Iterator[DecisionLog]:
    log = seed_log(tmp_path / "log.db")
    yield log
    log.close_sync()


def chat_reply(text: str, usage: tuple[int, int] = USAGE) -> Reply:
    return Reply.json(openai_completion(text, "judge-model", usage=usage))


def rating_responder(rec: Recorded) -> Reply:
    """Rates the answer by its number: 'answer number i' -> (i % 10) + 1."""
    prompt = rec.json()["messages"][-1]["content"]
    i = int(re.search(r"answer number (\d+)", prompt).group(1))
    return chat_reply(f"Reasonable.\nRating: [[{i % 10 + 1}]]")


@pytest.fixture
def judge_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream("judge", rating_responder)
    yield server
    server.stop()


def priced(
    url: str,
    model: str = "judge-model",
    timeout: float = 5.0,
    prices: tuple[float, float] = (PRICE_IN, PRICE_OUT),
) -> Priced:
    """A judge endpoint at ``url``, built as the CLI builds it."""
    config = BackendConfig(
        name=model,
        type="openai",
        base_url=f"{url}/v1",
        model=model,
        timeouts=Timeouts(connect=1.0, first_byte=timeout, idle=timeout, total=timeout),
        price=Price(input_per_1m=prices[0], output_per_1m=prices[1]),
    )
    return Priced.of(ResolvedBackend("strong", config, None, True, None))


def fast_opts(**kw: Any) -> JudgeOptions:
    base = {"progress": False, "backoff_base_s": 0.01, "backoff_max_s": 0.05, "concurrency": 4}
    base.update(kw)
    return JudgeOptions(**base)


def judge(log: DecisionLog, target: Priced, opts: JudgeOptions, **kw: Any) -> Any:
    async def go() -> Any:
        try:
            return await run_judge(log, target, opts, **kw)
        finally:
            await target.backend.aclose()
            if kw.get("strong") is not None:
                await kw["strong"].backend.aclose()

    return asyncio.run(go())


def judged(log: DecisionLog) -> dict[str, dict[str, Any]]:
    rows = list(log.iter_feedback(source="judge"))
    assert len({(r["request_id"], r["judge_model"]) for r in rows}) == len(rows)
    return {r["request_id"]: r for r in rows}


def test_ratings_are_stored_with_cost(decision_log, judge_server) -> None:
    summary = judge(decision_log, priced(judge_server.url), fast_opts())
    rows = judged(decision_log)
    assert summary.ok == 6 and summary.failed == 0 and len(rows) == 6
    for i in range(6):
        row = rows[f"r{i}"]
        assert row["status"] == "ok" and row["source"] == "judge"
        assert row["judge_model"] == "judge-model"
        assert row["score"] == i % 10 + 1
        assert row["rationale"] == "Reasonable."
        assert row["cost_usd"] == pytest.approx(ONE_CALL_USD)
        assert row["error"] is None
    assert summary.cost_usd == pytest.approx(6 * ONE_CALL_USD)
    assert summary.calls == 6 and summary.judged_per_s > 0
    body = judge_server.calls[0].json()
    assert body["model"] == "judge-model" and body["temperature"] == 0.0
    assert "question number" in body["messages"][1]["content"]


@pytest.mark.parametrize(
    "reply",
    [
        "It is a fine answer, I suppose.",
        "I would give it 7/10.",  # a rating in prose, not in the requested form
        "Rating: [[3]]\nOn second thought, Rating: [[8]]",  # conflicting ratings
    ],
)
def test_unparsable_reply_is_a_failure_not_a_score(decision_log, judge_server, reply) -> None:
    judge_server.responder = lambda rec: chat_reply(reply)
    summary = judge(decision_log, priced(judge_server.url), fast_opts())
    rows = judged(decision_log)
    assert summary.ok == 0 and summary.failed == 6
    assert all(r["status"] == "failed" and r["score"] is None for r in rows.values())
    assert all("unparsable" in r["error"] for r in rows.values())
    assert all(r["cost_usd"] == pytest.approx(ONE_CALL_USD) for r in rows.values())


def test_429_then_success_is_retried(decision_log, judge_server) -> None:
    judge_server.script(
        Reply.json({"error": {"message": "slow down"}}, status=429),
        Reply.json({"error": {"message": "overloaded"}}, status=503),
    )
    summary = judge(decision_log, priced(judge_server.url), fast_opts(concurrency=1))
    assert summary.ok == 6 and summary.failed == 0
    assert summary.retries == 2 and summary.calls == 8


def test_client_error_is_not_retried(decision_log, judge_server) -> None:
    judge_server.responder = lambda rec: Reply.json({"error": {"message": "bad model"}}, 404)
    summary = judge(decision_log, priced(judge_server.url), fast_opts(max_count=1))
    row = judged(decision_log)["r0"]
    assert summary.failed == 1 and summary.calls == 1
    assert row["status"] == "failed" and "HTTP 404" in row["error"] and "bad model" in row["error"]


def test_timeout_is_retried_then_recorded_as_failed(decision_log, judge_server) -> None:
    judge_server.responder = lambda rec: Reply(first_delay=3.0, chunks=[b"{}"])
    opts = fast_opts(max_count=1, max_retries=1, timeout_s=0.3)
    summary = judge(decision_log, priced(judge_server.url, timeout=0.3), opts)
    row = judged(decision_log)["r0"]
    assert summary.failed == 1 and summary.calls == 2 and summary.retries == 1
    assert row["status"] == "failed" and row["score"] is None
    assert "timeout" in row["error"] or "within" in row["error"]


def pairwise_judge(biased: bool):
    """A judge that prefers the strong answer wherever it is shown, or (biased) always
    says A."""

    def respond(rec: Recorded) -> Reply:
        prompt = rec.json()["messages"][-1]["content"]
        a = prompt.split("<answer_a>")[1].split("</answer_a>")[0]
        verdict = "A" if biased or "STRONG" in a else "B"
        return chat_reply(f"One is clearer.\nVerdict: [[{verdict}]]")

    return respond


@pytest.mark.parametrize(("biased", "preference"), [(False, "strong"), (True, "tie")])
def test_pairwise_runs_both_orders(decision_log, judge_server, biased, preference) -> None:
    judge_server.responder = pairwise_judge(biased)
    strong = FakeUpstream("strong", lambda rec: chat_reply("STRONG answer", usage=(10, 10)))
    try:
        summary = judge(
            decision_log,
            priced(judge_server.url),
            fast_opts(mode="pairwise", max_count=2),
            strong=priced(strong.url, model="strong-model"),
        )
        # Judging is concurrent: the strong tier sees both questions, in either order.
        asked = sorted(c.json()["messages"][-1]["content"] for c in strong.calls)
        assert asked == ["question number 0?", "question number 1?"]
        assert all(len(c.json()["messages"]) == 1 for c in strong.calls)
    finally:
        strong.stop()
    rows = judged(decision_log)
    assert summary.ok == 2 and summary.calls == 6  # strong answer + 2 judge calls each
    for rid in ("r0", "r1"):
        assert rows[rid]["preference"] == preference and rows[rid]["score"] is None
        assert rows[rid]["judge_model"] == judge_key("judge-model", "pairwise")
    prompts = [c.json()["messages"][-1]["content"] for c in judge_server.calls]
    firsts = [p.split("<answer_a>")[1].split("</answer_a>")[0].strip() for p in prompts]
    assert sorted(f.startswith("STRONG") for f in firsts) == [False, False, True, True]


def test_filters_select_by_tier_intent_and_time(decision_log, judge_server) -> None:
    opts = fast_opts(
        tiers=("local",),
        intents=frozenset({"math"}),
        since=T0 + timedelta(minutes=1),
        until=T0 + timedelta(minutes=5),
    )
    summary = judge(decision_log, priced(judge_server.url), opts)
    assert set(judged(decision_log)) == {"r2", "r4"}
    assert summary.considered == 2


def test_strong_tier_failed_and_unanswered_requests_are_skipped(tmp_path, judge_server) -> None:
    log = seed_log(tmp_path / "a.db", n=2, tier="strong")
    log.record_sync(
        LogRow("err", messages=[{"role": "user", "content": "x"}], status=502, tier="local")
    )
    log.record_sync(LogRow("noans", messages=[{"role": "user", "content": "x"}], tier="local"))
    try:
        summary = judge(log, priced(judge_server.url), fast_opts())
        assert summary.selected == 0 and judge_server.calls == []
    finally:
        log.close_sync()


def test_sampling_is_deterministic() -> None:
    ids = [f"req-{i}" for i in range(2000)]
    picked = [i for i in ids if sampled(i, 0.25, seed=7)]
    assert picked == [i for i in ids if sampled(i, 0.25, seed=7)]
    assert 400 < len(picked) < 600
    assert picked != [i for i in ids if sampled(i, 0.25, seed=8)]
    assert all(sampled(i, 1.0, 0) for i in ids[:10])
    assert not any(sampled(i, 0.0, 0) for i in ids[:10])


def test_spend_cap_stops_scheduling(decision_log, judge_server) -> None:
    # One at a time, a request starts while what was spent plus its worst case fits: here
    # after 0, 1 and 2 requests (ONE_CALL_USD each), not after 3.
    target = priced(judge_server.url)
    worst = worst_case_cost(next(decision_log.iter_rows()), JudgeOptions(), target, None)
    assert worst > ONE_CALL_USD
    cap = worst + 2.5 * ONE_CALL_USD
    summary = judge(decision_log, target, fast_opts(concurrency=1, max_spend_usd=cap))
    assert summary.stopped_by_budget
    assert summary.ok == 3 and summary.not_started == 3
    assert summary.cost_usd == pytest.approx(3 * ONE_CALL_USD)


def test_rerun_is_idempotent_and_retries_failures(decision_log, judge_server) -> None:
    judge_server.script(chat_reply("no rating here"))
    first = judge(decision_log, priced(judge_server.url), fast_opts(concurrency=1))
    assert first.ok == 5 and first.failed == 1
    assert judged(decision_log)["r0"]["status"] == "failed"
    second = judge(decision_log, priced(judge_server.url), fast_opts())
    assert second.selected == 1 and second.already_judged == 5 and second.ok == 1
    assert judged(decision_log)["r0"]["status"] == "ok"
    third = judge(decision_log, priced(judge_server.url), fast_opts())
    assert third.selected == 0 and third.calls == 0
    assert len(judge_server.calls) == 7
    other = judge(decision_log, priced(judge_server.url, model="judge-2"), fast_opts())
    assert other.ok == 6  # another judge grades everything once more
    assert len(list(decision_log.iter_feedback(source="judge"))) == 12


def test_interrupted_run_resumes_without_judging_twice(decision_log, judge_server) -> None:
    judge_server.responder = lambda rec: Reply(
        first_delay=0.05, chunks=rating_responder(rec).chunks
    )

    async def interrupted() -> None:
        target = priced(judge_server.url)
        task = asyncio.create_task(run_judge(decision_log, target, fast_opts(concurrency=1)))
        while len(list(decision_log.iter_feedback())) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await target.backend.aclose()

    asyncio.run(interrupted())
    done_before = set(judged(decision_log))
    assert 2 <= len(done_before) < 6
    summary = judge(decision_log, priced(judge_server.url), fast_opts())
    assert summary.already_judged == len(done_before)
    assert summary.ok == 6 - len(done_before)
    assert set(judged(decision_log)) == {f"r{i}" for i in range(6)}


def test_cli_time_arguments() -> None:
    assert judge_cli.parse_time("2025-01-31T12:00") == datetime(2025, 1, 31, 12, tzinfo=UTC)
    age = datetime.now(UTC) - judge_cli.parse_time("24h")
    assert timedelta(hours=23) < age < timedelta(hours=25)
    with pytest.raises(argparse.ArgumentTypeError):
        judge_cli.parse_time("yesterday")


def test_cli_defaults_to_the_policys_strong_tier(tmp_path, judge_server, capsys) -> None:
    seed_log(tmp_path / "p.db", n=2).close_sync()
    backend = {
        "name": "strong-judge",
        "type": "openai",
        "base_url": f"{judge_server.url}/v1",
        "model": "policy-judge",
        "price": {"input_per_1m": PRICE_IN, "output_per_1m": PRICE_OUT},
    }
    policy = {"tiers": {"strong": {"backends": [backend]}}}
    (tmp_path / "policy.yaml").write_text(json.dumps(policy))  # JSON is valid YAML
    parser = argparse.ArgumentParser()
    judge_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "judge",
            "--sqlite-path",
            str(tmp_path / "p.db"),
            "--policy",
            str(tmp_path / "policy.yaml"),
            "--no-progress",
            "--json",
        ]
    )
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["judge_model"] == "policy-judge" and out["ok"] == 2
    assert out["cost_usd"] == pytest.approx(2 * ONE_CALL_USD)
    assert judge_server.calls[0].json()["model"] == "policy-judge"
