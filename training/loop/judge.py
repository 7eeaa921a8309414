"""Logged cheap-tier exchanges -> judge verdicts in the ``feedback`` table.

``select_rows`` samples logged requests (tier, intent, time window, a deterministic
sampling rate, a max count) that this judge has not yet judged successfully, so a run is
idempotent and an interrupted run continues where it stopped. ``run_judge`` grades them
concurrently (asyncio + the router's own httpx backends): ``single`` mode asks for a 1-10
rating of the logged answer; ``pairwise`` mode also gets the strong tier's answer and asks
which is better in both orders (inconsistent verdicts -> tie). Calls are rate limited and
retried on 429/5xx/timeouts (``training.loop.judge_calls``: Retry-After, else exponential
backoff); each request yields exactly one feedback row (status "ok" with score/preference,
or "failed" with the error, never a made-up score) with its cost from token usage x the
endpoints' prices (estimated when an endpoint reports no usage, and summarised apart).

The spend cap is a hard bound: a request starts only if its worst-case cost
(``worst_case_cost``), on top of what was spent and what in-flight requests reserved at
their worst case, stays within ``max_spend_usd``; a finished request releases its
reservation down to its actual cost. CLI: ``training.loop.judge_cli``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from router_service.logstore import DecisionLog
from training.loop import judge_prompts as jp
from training.loop.judge_calls import (
    Caller,
    CallFailed,
    Priced,
    RateLimiter,
    RetryPolicy,
    SpendBudget,
    Tally,
)

Mode = Literal["single", "pairwise"]


@dataclass(slots=True)
class JudgeOptions:
    mode: Mode = "single"
    tiers: tuple[str, ...] = ("local", "primary")
    intents: frozenset[str] | None = None
    since: datetime | None = None
    until: datetime | None = None
    sample_rate: float = 1.0
    seed: int = 0
    max_count: int | None = None
    max_spend_usd: float | None = None
    concurrency: int = 8
    rps: float = 0.0  # judge calls per second, 0 = unlimited
    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    retry_after_max_s: float = 120.0  # longest server-requested wait honoured
    timeout_s: float = 60.0  # one judge call, all of it
    max_tokens: int = 512  # judge reply budget
    answer_max_tokens: int = 1024  # strong tier's answer (pairwise)
    progress: bool = True

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.max_retries,
            self.backoff_base_s,
            self.backoff_max_s,
            self.retry_after_max_s,
            self.timeout_s,
        )


@dataclass(slots=True)
class Verdict:
    """What one request's judgement produced (one feedback row) and what its calls cost."""

    request_id: str
    status: Literal["ok", "failed"]
    score: int | None = None
    preference: str | None = None
    rationale: str | None = None
    error: str | None = None
    tally: Tally = field(default_factory=Tally)


@dataclass(slots=True)
class JudgeSummary(Tally):
    """A run's counts, and the ``Tally`` of all its calls: ``cost_usd`` is all spend,
    ``cost_estimated_usd`` the part of it priced from estimated tokens
    (``calls_without_usage`` calls reported no usage)."""

    judge_model: str
    mode: Mode
    considered: int = 0
    already_judged: int = 0
    selected: int = 0
    ok: int = 0
    failed: int = 0
    not_started: int = 0
    stopped_by_budget: bool = False
    elapsed_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def judged_per_s(self) -> float:
        return (self.ok + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def cost_reported_usd(self) -> float:
        """Spend priced from the usage the endpoints reported."""
        return max(0.0, self.cost_usd - self.cost_estimated_usd)

    def add(self, v: Verdict) -> None:
        """Count one finished request."""
        if v.status == "ok":
            self.ok += 1
        else:
            self.failed += 1
            kind = (v.error or "error").split(":")[0][:60]
            self.errors[kind] = self.errors.get(kind, 0) + 1
        self.add_tally(v.tally)

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["cost_reported_usd"] = self.cost_reported_usd
        out["judged_per_s"] = round(self.judged_per_s, 3)
        out["calls_per_s"] = round(self.calls / self.elapsed_s, 3) if self.elapsed_s else 0.0
        return out

    def describe_cost(self) -> str:
        """ "$0.0123" or, when some calls reported no usage, "$0.0123 ($0.0040 estimated:
        3 calls without usage)"."""
        if not self.calls_without_usage:
            return f"${self.cost_usd:.4f}"
        return (
            f"${self.cost_usd:.4f} (${self.cost_estimated_usd:.4f} estimated: "
            f"{self.calls_without_usage} calls without usage)"
        )

    def describe(self) -> str:
        return (
            f"judge {self.judge_model} ({self.mode}): {self.ok} ok, {self.failed} failed, "
            f"{self.already_judged} already judged, {self.not_started} not started"
            f"{' (spend cap reached)' if self.stopped_by_budget else ''}; "
            f"{self.calls} calls ({self.retries} retries) in {self.elapsed_s:.1f}s = "
            f"{self.judged_per_s:.2f} requests/s; tokens {self.prompt_tokens} in / "
            f"{self.completion_tokens} out; cost {self.describe_cost()}"
        )


def judge_key(model: str, mode: Mode) -> str:
    """The ``feedback.judge_model`` value: one verdict per (request, judge, mode)."""
    return model if mode == "single" else f"{model}#pairwise"


def sampled(request_id: str, rate: float, seed: int) -> bool:
    """Deterministic Bernoulli(rate) per request id: a re-run picks the same sample."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.sha256(f"{seed}:{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def judgeable(row: Mapping[str, Any], opts: JudgeOptions) -> bool:
    """A logged decision row that can and should be judged under ``opts``."""
    if row.get("status") != 200 or not row.get("answer"):
        return False
    if row.get("tier") not in opts.tiers:
        return False
    if opts.intents is not None and row.get("intent") not in opts.intents:
        return False
    messages = row.get("messages") or []
    return any(isinstance(m, dict) and m.get("content") for m in messages)


def select_rows(
    decision_log: DecisionLog, key: str, opts: JudgeOptions, summary: JudgeSummary
) -> list[dict[str, Any]]:
    """Logged rows -> the ones this run judges (oldest first), skipping ``key``'s done ones."""
    done = {
        fb["request_id"]
        for fb in decision_log.iter_feedback(source="judge", ok_only=True)
        if fb["judge_model"] == key
    }
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in decision_log.iter_rows(opts.since, opts.until):
        rid = row["request_id"]
        if rid in seen or not judgeable(row, opts) or not sampled(rid, opts.sample_rate, opts.seed):
            continue
        seen.add(rid)
        summary.considered += 1
        if rid in done:
            summary.already_judged += 1
            continue
        if opts.max_count is not None and len(out) >= opts.max_count:
            continue
        out.append(row)
    summary.selected = len(out)
    return out


def strong_request(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Logged messages -> the chat messages that ask the strong tier for its answer."""
    return [{"role": str(m.get("role")), "content": str(m.get("content"))} for m in messages]


async def _pairwise(
    v: Verdict,
    messages: list[dict[str, Any]],
    answer: str,
    opts: JudgeOptions,
    judge: Priced,
    strong: Priced | None,
    caller: Caller,
) -> None:
    """Strong answer, then both orders judged -> ``v.preference`` and ``v.rationale``."""
    if strong is None:
        raise CallFailed("pairwise mode needs a strong-tier backend")
    strong_answer = await caller.chat(
        strong, strong_request(messages), opts.answer_max_tokens, v.tally
    )
    if not strong_answer.strip():
        raise CallFailed("the strong tier returned an empty answer")
    orders = ((answer, strong_answer), (strong_answer, answer))
    replies = await asyncio.gather(  # both orders; both finish (and are paid for)
        *(
            caller.chat(judge, jp.pairwise_messages(messages, a, b), opts.max_tokens, v.tally)
            for a, b in orders
        ),
        return_exceptions=True,
    )
    for outcome in replies:
        if isinstance(outcome, BaseException):
            raise outcome
    first, second = str(replies[0]), str(replies[1])
    a, b = jp.parse_verdict(first), jp.parse_verdict(second)
    v.preference = jp.combine_pairwise(a, b)
    v.rationale = (
        f"cheap-first verdict {a}, strong-first verdict {b} -> {v.preference}. "
        + jp.rationale_of(first)
    )[: jp.MAX_RATIONALE_CHARS]


async def judge_row(
    row: Mapping[str, Any],
    opts: JudgeOptions,
    judge: Priced,
    strong: Priced | None,
    caller: Caller,
) -> Verdict:
    """One logged exchange -> ``Verdict`` (never raises for a judge/upstream failure)."""
    v = Verdict(str(row["request_id"]), "failed")
    messages = _messages(row)
    answer = str(row.get("answer") or "")
    try:
        if opts.mode == "single":
            single = jp.single_messages(messages, answer)
            reply = await caller.chat(judge, single, opts.max_tokens, v.tally)
            v.score = jp.parse_rating(reply)
            v.rationale = jp.rationale_of(reply)
        else:
            await _pairwise(v, messages, answer, opts, judge, strong, caller)
        v.status = "ok"
    except jp.JudgeParseError as exc:
        v.error = f"unparsable judge reply: {exc}"
    except CallFailed as exc:
        v.error = str(exc)
    return v


def _messages(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [m for m in row.get("messages") or [] if isinstance(m, dict)]


def prompt_tokens_bound(messages: list[dict[str, str]]) -> int:
    """Chat messages -> an upper bound on their prompt tokens: the bytes of their JSON.
    A tokenizer never needs more than one token per UTF-8 byte of text (byte-level BPE,
    SentencePiece with byte fallback), and the JSON keys and quotes around each message
    outweigh the few tokens a chat template adds per message."""
    return len(orjson.dumps(messages))


def worst_case_cost(
    row: Mapping[str, Any], opts: JudgeOptions, judge: Priced, strong: Priced | None
) -> float:
    """One request -> the most its calls can cost (USD) when each succeeds once: prompts
    at ``prompt_tokens_bound``, every reply at its ``max_tokens``. Pairwise adds the strong
    tier's answer at its own price (``answer_max_tokens``) and counts that answer, unknown
    yet, at its longest in both judge prompts (``jp.MAX_ANSWER_PROMPT_TOKENS``). Failed
    attempts (timeouts, 5xx) report no usage and are charged nothing by the run."""
    messages = _messages(row)
    answer = str(row.get("answer") or "")
    if opts.mode == "single":
        single = jp.single_messages(messages, answer)
        return judge.cost(prompt_tokens_bound(single), opts.max_tokens)
    ask = strong_request(messages)
    strong_cost = strong.cost(prompt_tokens_bound(ask), opts.answer_max_tokens) if strong else 0.0
    known = prompt_tokens_bound(jp.pairwise_messages(messages, answer, ""))
    one_judge = judge.cost(known + jp.MAX_ANSWER_PROMPT_TOKENS, opts.max_tokens)
    return strong_cost + 2 * one_judge


def _store(decision_log: DecisionLog, key: str, v: Verdict) -> None:
    decision_log.add_feedback(
        v.request_id,
        "judge",
        judge_model=key,
        score=v.score,
        preference=v.preference,
        rationale=v.rationale,
        status=v.status,
        error=v.error,
        cost_usd=round(v.tally.cost_usd, 8),
        replace=True,  # a previous "failed" row is overwritten by this attempt
    )


async def run_judge(
    decision_log: DecisionLog,
    judge: Priced,
    opts: JudgeOptions,
    *,
    judge_model: str | None = None,
    strong: Priced | None = None,
    on_progress: Callable[[JudgeSummary, int], None] | None = None,
) -> JudgeSummary:
    """Select, judge and store. Returns the run's ``JudgeSummary``."""
    key = judge_key(judge_model or judge.backend.model, opts.mode)
    summary = JudgeSummary(key, opts.mode)
    started = time.monotonic()
    rows = await asyncio.to_thread(select_rows, decision_log, key, opts, summary)
    caller = Caller(opts.retry_policy(), RateLimiter(opts.rps), random.Random(opts.seed))
    budget = SpendBudget(opts.max_spend_usd) if opts.max_spend_usd is not None else None
    # One writer thread: concurrent SQLite commits from many threads only contend.
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge-db")
    loop = asyncio.get_running_loop()
    pending: Iterator[dict[str, Any]] = iter(rows)
    lock = asyncio.Lock()  # rows start in order, each once its reservation fits

    async def next_row() -> tuple[dict[str, Any], float] | None:
        async with lock:
            row = next(pending, None) if not summary.stopped_by_budget else None
            if row is None:
                return None
            worst = worst_case_cost(row, opts, judge, strong)
            if budget is not None and not await budget.reserve(worst):
                summary.stopped_by_budget = True
                summary.not_started += 1
                return None
            return row, worst

    async def worker() -> None:
        while (got := await next_row()) is not None:
            row, worst = got
            verdict = await judge_row(row, opts, judge, strong, caller)
            if budget is not None:
                await budget.settle(worst, verdict.tally.cost_usd)
            await loop.run_in_executor(writer, _store, decision_log, key, verdict)
            summary.add(verdict)
            if on_progress is not None:
                on_progress(summary, len(rows))

    n_workers = max(1, min(opts.concurrency, len(rows)))
    try:
        await asyncio.gather(*(worker() for _ in range(n_workers)))
    finally:
        writer.shutdown(wait=True)
    summary.not_started += sum(1 for _ in pending)
    summary.elapsed_s = time.monotonic() - started
    return summary
