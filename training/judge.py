"""Logged cheap-tier exchanges -> judge verdicts in the ``feedback`` table.

``select_rows`` samples logged requests (tier, intent, time window, a deterministic
sampling rate, a max count) that this judge has not yet judged successfully, so a run is
idempotent and an interrupted run continues where it stopped. ``run_judge`` grades them
concurrently (asyncio + the router's own httpx backends): ``single`` mode asks for a 1-10
rating of the logged answer; ``pairwise`` mode also gets the strong tier's answer and asks
which is better in both orders (inconsistent verdicts -> tie). Calls are rate limited and
retried with exponential backoff on 429/5xx/timeouts; each request yields exactly one
feedback row (status "ok" with score/preference, or "failed" with the error, never a
made-up score) with its cost from token usage x the judge's prices. A spend cap stops
scheduling new work once reached. CLI: ``training.judge_cli``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

from router_service.backends import Backend, UpstreamError
from router_service.logstore import DecisionLog
from training import judge_prompts as jp

log = logging.getLogger("training.judge")

Mode = Literal["single", "pairwise"]
CHARS_PER_TOKEN = 4.0


@dataclass(frozen=True, slots=True)
class Priced:
    """A backend to call and its prices (USD per 1M tokens)."""

    backend: Backend
    price_in: float = 0.0
    price_out: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6


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
    timeout_s: float = 60.0  # one judge call, all of it
    max_tokens: int = 512  # judge reply budget
    answer_max_tokens: int = 1024  # strong tier's answer (pairwise)
    progress: bool = True


@dataclass(slots=True)
class Verdict:
    """What one request's judgement produced (one feedback row)."""

    request_id: str
    status: Literal["ok", "failed"]
    score: int | None = None
    preference: str | None = None
    rationale: str | None = None
    error: str | None = None
    cost_usd: float = 0.0
    calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(slots=True)
class JudgeSummary:
    judge_model: str
    mode: Mode
    considered: int = 0
    already_judged: int = 0
    selected: int = 0
    ok: int = 0
    failed: int = 0
    not_started: int = 0
    stopped_by_budget: bool = False
    calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    elapsed_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def judged_per_s(self) -> float:
        return (self.ok + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["judged_per_s"] = round(self.judged_per_s, 3)
        out["calls_per_s"] = round(self.calls / self.elapsed_s, 3) if self.elapsed_s else 0.0
        return out

    def describe(self) -> str:
        return (
            f"judge {self.judge_model} ({self.mode}): {self.ok} ok, {self.failed} failed, "
            f"{self.already_judged} already judged, {self.not_started} not started"
            f"{' (spend cap reached)' if self.stopped_by_budget else ''}; "
            f"{self.calls} calls ({self.retries} retries) in {self.elapsed_s:.1f}s = "
            f"{self.judged_per_s:.2f} requests/s; tokens {self.prompt_tokens} in / "
            f"{self.completion_tokens} out; cost ${self.cost_usd:.4f}"
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


class RateLimiter:
    """At most ``rps`` call starts per second (evenly spaced); 0 = unlimited."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps if rps > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.interval <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


class CallFailed(Exception):
    """A call that failed for good (after retries, or a non-retryable client error)."""


def _tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN))


class Caller:
    """One chat completion with rate limiting, retries and usage accounting."""

    def __init__(self, opts: JudgeOptions, limiter: RateLimiter, rng: random.Random) -> None:
        self.opts = opts
        self.limiter = limiter
        self.rng = rng

    async def chat(
        self, target: Priced, messages: list[dict[str, str]], max_tokens: int, v: Verdict
    ) -> str:
        body = {"model": target.backend.model, "messages": messages, "max_tokens": max_tokens}
        body["temperature"] = 0.0
        last = "no attempt made"
        for attempt in range(self.opts.max_retries + 1):
            if attempt:
                v.retries += 1
                cap = min(self.opts.backoff_max_s, self.opts.backoff_base_s * 2 ** (attempt - 1))
                await asyncio.sleep(cap * (0.5 + 0.5 * self.rng.random()))
            await self.limiter.acquire()
            v.calls += 1
            try:
                async with asyncio.timeout(self.opts.timeout_s):
                    done = await target.backend.complete(body)
            except TimeoutError:
                last = f"timeout after {self.opts.timeout_s:g}s"
                continue
            except UpstreamError as exc:
                last = exc.message
                if not exc.retryable:
                    raise CallFailed(last) from None
                continue
            if done.status >= 400:  # non-retryable client error (400, 401, 404 ...)
                raise CallFailed(f"HTTP {done.status}: {_error_message(done.body)}")
            text = done.stats.answer
            p_tok = done.stats.prompt_tokens
            c_tok = done.stats.completion_tokens
            p_tok = p_tok if p_tok is not None else _tokens(orjson.dumps(messages).decode())
            c_tok = c_tok if c_tok is not None else _tokens(text)
            v.prompt_tokens += p_tok
            v.completion_tokens += c_tok
            v.cost_usd += target.cost(p_tok, c_tok)
            return text
        raise CallFailed(f"gave up after {self.opts.max_retries + 1} attempts: {last}")


def _error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
        return str(data["error"]["message"])[:300]
    except Exception:
        return body.decode("utf-8", "replace")[:300]


async def judge_row(
    row: Mapping[str, Any],
    opts: JudgeOptions,
    judge: Priced,
    strong: Priced | None,
    caller: Caller,
) -> Verdict:
    """One logged exchange -> ``Verdict`` (never raises for a judge/upstream failure)."""
    v = Verdict(str(row["request_id"]), "failed")
    messages = [m for m in row.get("messages") or [] if isinstance(m, dict)]
    answer = str(row.get("answer") or "")
    try:
        if opts.mode == "single":
            reply = await caller.chat(
                judge, jp.single_messages(messages, answer), opts.max_tokens, v
            )
            v.score = jp.parse_rating(reply)
            v.rationale = jp.rationale_of(reply)
        else:
            if strong is None:
                raise CallFailed("pairwise mode needs a strong-tier backend")
            ask = [{"role": str(m.get("role")), "content": str(m.get("content"))} for m in messages]
            strong_answer = await caller.chat(strong, ask, opts.answer_max_tokens, v)
            if not strong_answer.strip():
                raise CallFailed("the strong tier returned an empty answer")
            replies = await asyncio.gather(  # both orders; both finish (and are paid for)
                caller.chat(
                    judge, jp.pairwise_messages(messages, answer, strong_answer), opts.max_tokens, v
                ),
                caller.chat(
                    judge, jp.pairwise_messages(messages, strong_answer, answer), opts.max_tokens, v
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
        v.status = "ok"
    except jp.JudgeParseError as exc:
        v.error = f"unparsable judge reply: {exc}"
    except CallFailed as exc:
        v.error = str(exc)
    return v


def _estimate_cost(row: Mapping[str, Any], opts: JudgeOptions, judge: Priced) -> float:
    """Rough pre-call cost of one request (for the spend cap before any usage is known)."""
    chars = len(orjson.dumps(row.get("messages") or [])) + len(str(row.get("answer") or ""))
    p_tok = round((chars + 2000) / CHARS_PER_TOKEN)  # + the grading template
    one = judge.cost(p_tok, opts.max_tokens // 2)
    return one if opts.mode == "single" else 3 * one


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
        cost_usd=round(v.cost_usd, 8),
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
    caller = Caller(opts, RateLimiter(opts.rps), random.Random(opts.seed))
    # One writer thread: concurrent SQLite commits from many threads only contend.
    writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge-db")
    loop = asyncio.get_running_loop()
    pending: Iterator[dict[str, Any]] = iter(rows)
    reserved: dict[int, float] = {}
    lock = asyncio.Lock()

    async def next_row(worker: int) -> dict[str, Any] | None:
        async with lock:
            row = next(pending, None)
            if row is None:
                return None
            if opts.max_spend_usd is not None:
                est = _estimate_cost(row, opts, judge)
                if summary.cost_usd + sum(reserved.values()) + est > opts.max_spend_usd:
                    summary.stopped_by_budget = True
                    summary.not_started += 1
                    return None
                reserved[worker] = est
            return row

    async def worker(n: int) -> None:
        while not summary.stopped_by_budget:
            row = await next_row(n)
            if row is None:
                return
            verdict = await judge_row(row, opts, judge, strong, caller)
            await loop.run_in_executor(writer, _store, decision_log, key, verdict)
            async with lock:
                reserved.pop(n, None)
                if verdict.status == "ok":
                    summary.ok += 1
                else:
                    summary.failed += 1
                    kind = (verdict.error or "error").split(":")[0][:60]
                    summary.errors[kind] = summary.errors.get(kind, 0) + 1
                summary.calls += verdict.calls
                summary.retries += verdict.retries
                summary.prompt_tokens += verdict.prompt_tokens
                summary.completion_tokens += verdict.completion_tokens
                summary.cost_usd += verdict.cost_usd
            if on_progress is not None:
                on_progress(summary, len(rows))

    n_workers = max(1, min(opts.concurrency, len(rows)))
    try:
        await asyncio.gather(*(worker(i) for i in range(n_workers)))
    finally:
        writer.shutdown(wait=True)
    summary.not_started += sum(1 for _ in pending)
    summary.elapsed_s = time.monotonic() - started
    return summary
