"""The ``judge`` CLI's endpoint flags: ``--strong-*`` (key from a named variable, its own
prices), ``--max-spend`` refused when nothing has a price, and cost reporting that keeps
estimated spend apart (JSON summary, progress bar)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from test_judge_run import (
    ONE_CALL_USD,
    PRICE_IN,
    PRICE_OUT,
    chat_reply,
    rating_responder,
    seed_log,
)

from fakes.server import FakeUpstream, Recorded, Reply
from router_service.logstore import create_decision_log
from training.loop import judge_cli
from training.loop.judge import JudgeSummary

STRONG_USAGE = (40, 20)


def verdict_judge(rec: Recorded) -> Reply:
    """Prefers the strong answer wherever it is shown."""
    prompt = rec.json()["messages"][-1]["content"]
    a = prompt.split("<answer_a>")[1].split("</answer_a>")[0]
    return chat_reply(f"Clearer.\nVerdict: [[{'A' if 'STRONG' in a else 'B'}]]")


@pytest.fixture
def servers() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    judge = FakeUpstream("judge", verdict_judge)
    strong = FakeUpstream("strong", lambda rec: chat_reply("STRONG answer", usage=STRONG_USAGE))
    yield judge, strong
    judge.stop()
    strong.stop()


def run_cli(
    tmp_path: Path, judge_url: str, *extra: str, environ: Mapping[str, str] | None = None
) -> int:
    if not (tmp_path / "cli.db").exists():
        seed_log(tmp_path / "cli.db", n=2).close_sync()
    parser = argparse.ArgumentParser()
    judge_cli.register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "judge",
            "--sqlite-path",
            str(tmp_path / "cli.db"),
            "--policy",
            str(tmp_path / "no-policy.yaml"),
            "--judge-base-url",
            f"{judge_url}/v1",
            "--judge-model",
            "judge-cli",
            "--no-progress",
            "--json",
            *extra,
        ]
    )
    return judge_cli.run(args, environ=environ or {})


JUDGE_PRICES = ("--judge-price-in", str(PRICE_IN), "--judge-price-out", str(PRICE_OUT))


def test_cli_judges_and_prints_throughput(tmp_path, servers, capsys) -> None:
    judge, _ = servers
    judge.responder = rating_responder
    seed_log(tmp_path / "cli.db", n=3).close_sync()
    assert run_cli(tmp_path, judge.url, *JUDGE_PRICES) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] == 3 and out["judge_model"] == "judge-cli"
    assert out["cost_usd"] == pytest.approx(3 * ONE_CALL_USD)
    assert out["judged_per_s"] > 0
    log = create_decision_log(None, tmp_path / "cli.db")
    try:
        assert {r["judge_model"] for r in log.iter_feedback()} == {"judge-cli"}
    finally:
        log.close_sync()


def test_strong_endpoint_gets_its_key_and_its_own_prices(tmp_path, servers, capsys) -> None:
    judge, strong = servers
    code = run_cli(
        tmp_path,
        judge.url,
        "--mode",
        "pairwise",
        *JUDGE_PRICES,
        "--strong-base-url",
        f"{strong.url}/v1",
        "--strong-model",
        "strong-cli",
        "--strong-api-key-env",
        "STRONG_KEY",
        "--strong-price-in",
        "100",
        "--strong-price-out",
        "1000",
        environ={"STRONG_KEY": " sk-strong \n"},
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] == 2
    assert [c.headers.get("authorization") for c in strong.calls] == ["Bearer sk-strong"] * 2
    assert {c.json()["model"] for c in strong.calls} == {"strong-cli"}
    assert all("authorization" not in c.headers for c in judge.calls)
    strong_usd = (STRONG_USAGE[0] * 100 + STRONG_USAGE[1] * 1000) / 1e6
    assert out["cost_usd"] == pytest.approx(2 * (strong_usd + 2 * ONE_CALL_USD))


def test_a_named_key_variable_that_is_unset_is_refused(tmp_path, servers) -> None:
    judge, strong = servers
    with pytest.raises(SystemExit, match=r"\$STRONG_KEY"):
        run_cli(
            tmp_path,
            judge.url,
            "--mode",
            "pairwise",
            "--strong-base-url",
            f"{strong.url}/v1",
            "--strong-api-key-env",
            "STRONG_KEY",
            environ={"OTHER": "x"},
        )
    with pytest.raises(SystemExit, match=r"\$JUDGE_KEY"):
        run_cli(tmp_path, judge.url, "--judge-api-key-env", "JUDGE_KEY", environ={})
    assert judge.calls == [] and strong.calls == []


def test_judge_key_is_sent_when_set(tmp_path, servers) -> None:
    judge, _ = servers
    judge.responder = lambda rec: chat_reply("Fine.\nRating: [[7]]")
    env = {"JUDGE_KEY": "sk-judge"}
    assert run_cli(tmp_path, judge.url, "--judge-api-key-env", "JUDGE_KEY", environ=env) == 0
    assert {c.headers.get("authorization") for c in judge.calls} == {"Bearer sk-judge"}


def test_strong_flags_without_a_strong_url_are_a_usage_error(tmp_path, servers, capsys) -> None:
    judge, _ = servers
    with pytest.raises(SystemExit) as exc:
        run_cli(tmp_path, judge.url, "--mode", "pairwise", "--strong-price-in", "3")
    assert exc.value.code == 2
    assert "--strong-price-in: only valid with --strong-base-url" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        (),  # single mode, judge unpriced
        ("--mode", "pairwise", "--strong-base-url", "http://127.0.0.1:9/v1"),  # both unpriced
    ],
)
def test_max_spend_without_any_price_is_refused(tmp_path, servers, capsys, extra) -> None:
    judge, _ = servers
    with pytest.raises(SystemExit) as exc:
        run_cli(tmp_path, judge.url, "--max-spend", "5", *extra)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--max-spend" in err and "--judge-price-in/--judge-price-out" in err
    assert judge.calls == []


def test_max_spend_with_one_unpriced_endpoint_warns(tmp_path, servers, capsys) -> None:
    judge, strong = servers
    code = run_cli(
        tmp_path,
        judge.url,
        "--mode",
        "pairwise",
        *JUDGE_PRICES,
        "--strong-base-url",
        f"{strong.url}/v1",
        "--max-spend",
        "5",
    )
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["ok"] == 2
    assert "warning: the strong endpoint has no price" in captured.err


def test_json_summary_reports_estimated_cost_apart(tmp_path, servers, capsys) -> None:
    judge, _ = servers
    judge.responder = lambda rec: Reply.json(
        {"choices": [{"message": {"content": "Fine.\nRating: [[7]]"}, "finish_reason": "stop"}]}
    )
    assert run_cli(tmp_path, judge.url, *JUDGE_PRICES) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["calls_without_usage"] == 2 and out["cost_reported_usd"] == 0
    assert out["cost_estimated_usd"] == pytest.approx(out["cost_usd"]) and out["cost_usd"] > 0


def test_progress_bar_shows_estimated_cost() -> None:
    bar, update = judge_cli._progress([], True)
    try:
        summary = JudgeSummary("j", "single", ok=2, cost_usd=0.004)
        update(summary, 4)
        assert "cost_estimated" not in bar.postfix
        summary.calls_without_usage, summary.cost_estimated_usd = 1, 0.001
        update(summary, 4)
        assert "cost=$0.0040" in bar.postfix and "cost_estimated=$0.0010" in bar.postfix
    finally:
        bar.close()
