"""One judge / strong-tier chat call -> its text, with rate limiting, retries and cost;
and the spend budget that decides whether a request may start.

``Caller.chat`` sends one non-streaming chat completion through the router's own backends
and retries 429/5xx answers and timeouts: it waits what the server's ``Retry-After`` header
asks (seconds or an HTTP-date, capped at ``retry_after_max_s``), else exponential backoff
with jitter. The header reaches the caller through ``RetryAfterTransport`` (the backends
keep headers to themselves); ``build_judge_backend`` builds a backend on it.

Costs come from the endpoint's ``usage`` x the endpoint's prices. An endpoint that answers
without usage is charged an estimate (characters / 4), which the spend cap needs; the
estimate is kept apart in ``Tally.cost_estimated_usd`` / ``calls_without_usage`` and
logged once per endpoint, so a run never passes estimated spend off as metered.

``SpendBudget`` makes the spend cap a hard bound: a request starts only if its worst-case
cost, on top of what was spent and what in-flight requests reserved at their worst case,
fits under the cap; a finished request releases its reservation down to its actual cost."""

from __future__ import annotations

import asyncio
import contextvars
import email.utils
import logging
import random
import re
import time
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from router_service.backends import Backend, Completion, UpstreamError, UsageStats, build_backend
from router_service.backends.transport import FastTransport
from router_service.policy import ResolvedBackend

log = logging.getLogger("training.judge")

CHARS_PER_TOKEN = 4.0
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# The Retry-After values of the current task's attempt (set by ``Caller``, filled by the
# transport): a context variable, because one backend serves many concurrent calls.
_RETRY_AFTER: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "judge_retry_after", default=None
)


@dataclass(frozen=True, slots=True)
class Priced:
    """A backend to call and its prices (USD per 1M tokens)."""

    backend: Backend
    price_in: float = 0.0
    price_out: float = 0.0

    @classmethod
    def of(cls, resolved: ResolvedBackend) -> Priced:
        """A resolved policy backend -> its judge backend, priced as configured."""
        price = resolved.config.price
        return cls(build_judge_backend(resolved), price.input_per_1m, price.output_per_1m)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6


@dataclass(slots=True, kw_only=True)
class Tally:
    """What calls cost. ``cost_usd`` includes ``cost_estimated_usd``: the part priced from
    estimated token counts because the endpoint reported no usage for it."""

    calls: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    cost_estimated_usd: float = 0.0
    calls_without_usage: int = 0

    def add_tally(self, other: Tally) -> None:
        """Add ``other``'s counts and costs to these."""
        for f in fields(Tally):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


class RetryAfterTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands the ``Retry-After`` header of a 429/5xx answer to the
    ``Caller`` attempt that got it (through ``_RETRY_AFTER``); otherwise ``inner`` as is."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        slot = _RETRY_AFTER.get()
        retryable = response.status_code == 429 or response.status_code >= 500
        if slot is not None and retryable and "retry-after" in response.headers:
            slot.append(response.headers["retry-after"])
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def build_judge_backend(resolved: ResolvedBackend) -> Backend:
    """A resolved backend -> its ``Backend`` on a ``RetryAfterTransport`` over the router's
    own keep-alive pool (``FastTransport``, the backend's connection limit): httpx's pool
    scans every connection on each request, which capped a 32-way judge run at ~160/s."""
    inner = FastTransport(max_connections=resolved.config.max_connections)
    return build_backend(resolved, RetryAfterTransport(inner))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How ``Caller`` retries: attempts, backoff, the Retry-After cap and the per-call timeout."""

    max_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    retry_after_max_s: float = 120.0
    timeout_s: float = 60.0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header value -> seconds to wait from ``now`` (>= 0), or None when
    absent or malformed. Accepts delay-seconds ("120", also "1.5") and an HTTP-date."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _DELAY_SECONDS.fullmatch(text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(
    attempt: int,
    retry_after: str | None,
    policy: RetryPolicy,
    rng: random.Random,
    now: datetime | None = None,
) -> float:
    """Retry number ``attempt`` (1 = first retry) -> seconds to wait: the server's valid
    ``Retry-After`` capped at ``retry_after_max_s``; else ``backoff_base_s * 2**(attempt-1)``
    capped at ``backoff_max_s``, times a random 0.5..1 (jitter spreads concurrent retries)."""
    asked = parse_retry_after(retry_after, now or datetime.now(UTC))
    if asked is not None:
        return min(asked, policy.retry_after_max_s)
    cap = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1))
    return cap * (0.5 + 0.5 * rng.random())


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


class Caller:
    """One chat completion with rate limiting, retries and usage accounting."""

    def __init__(self, policy: RetryPolicy, limiter: RateLimiter, rng: random.Random) -> None:
        self.policy = policy
        self.limiter = limiter
        self.rng = rng
        self._warned: set[str] = set()

    async def chat(
        self, target: Priced, messages: list[dict[str, str]], max_tokens: int, tally: Tally
    ) -> str:
        """Chat messages -> the answer text, its cost added to ``tally``; ``CallFailed``
        after the last retry or on a non-retryable client error (400, 401, 404 ...)."""
        body: dict[str, Any] = {"model": target.backend.model, "messages": messages}
        body.update(max_tokens=max_tokens, temperature=0.0)
        last, retry_after = "no attempt made", None
        for attempt in range(self.policy.max_retries + 1):
            if attempt:
                tally.retries += 1
                await asyncio.sleep(backoff_delay(attempt, retry_after, self.policy, self.rng))
            await self.limiter.acquire()
            tally.calls += 1
            hint: list[str] = []
            try:
                done = await self._attempt(target, body, hint)
            except TimeoutError:
                last, retry_after = f"timeout after {self.policy.timeout_s:g}s", None
                continue
            except UpstreamError as exc:
                if not exc.retryable:
                    raise CallFailed(exc.message) from None
                last, retry_after = exc.message, (hint[-1] if hint else None)
                continue
            if done.status >= 400:
                raise CallFailed(f"HTTP {done.status}: {_error_message(done.body)}")
            self._account(target, messages, done.stats, tally)
            return done.stats.answer
        raise CallFailed(f"gave up after {self.policy.max_retries + 1} attempts: {last}")

    async def _attempt(self, target: Priced, body: dict[str, Any], hint: list[str]) -> Completion:
        """One request within the per-call timeout; a retryable answer's Retry-After lands
        in ``hint``."""
        token = _RETRY_AFTER.set(hint)
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                return await target.backend.complete(body)
        finally:
            _RETRY_AFTER.reset(token)

    def _account(
        self, target: Priced, messages: list[dict[str, str]], stats: UsageStats, tally: Tally
    ) -> None:
        """One answered call -> tokens and cost in ``tally``, estimating what the endpoint
        did not report (and warning the first time an endpoint reports no usage)."""
        p_est = _tokens(orjson.dumps(messages).decode()) if stats.prompt_tokens is None else 0
        c_est = _tokens(stats.answer) if stats.completion_tokens is None else 0
        p_tok = p_est if stats.prompt_tokens is None else stats.prompt_tokens
        c_tok = c_est if stats.completion_tokens is None else stats.completion_tokens
        tally.prompt_tokens += p_tok
        tally.completion_tokens += c_tok
        tally.cost_usd += target.cost(p_tok, c_tok)
        if stats.prompt_tokens is None or stats.completion_tokens is None:
            tally.cost_estimated_usd += target.cost(p_est, c_est)
            tally.calls_without_usage += 1
            self._warn_no_usage(target.backend)

    def _warn_no_usage(self, backend: Backend) -> None:
        if backend.name in self._warned:
            return
        self._warned.add(backend.name)
        log.warning(
            "endpoint %s (model %s) answered without token usage: its cost is estimated "
            "from characters / %g and reported as cost_estimated_usd",
            backend.name,
            backend.model,
            CHARS_PER_TOKEN,
        )


def _tokens(text: str) -> int:
    return max(1, round(len(text) / CHARS_PER_TOKEN))


def _error_message(body: bytes) -> str:
    try:
        data = orjson.loads(body)
        return str(data["error"]["message"])[:300]
    except Exception:
        return body.decode("utf-8", "replace")[:300]


class SpendBudget:
    """The spend cap over spent + in-flight worst cases (USD).

    ``reserve(worst)`` admits a request only if ``spent + reserved + worst <= cap``; while
    it does not fit but requests are in flight it waits (they may finish below their worst
    case), and it returns False once nothing is in flight and it still does not fit.
    ``settle(worst, actual)`` swaps a finished request's reservation for its actual cost."""

    def __init__(self, cap_usd: float) -> None:
        self.cap = cap_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.in_flight = 0
        self._changed = asyncio.Condition()

    async def reserve(self, worst: float) -> bool:
        async with self._changed:
            while self.spent + self.reserved + worst > self.cap:
                if self.in_flight == 0:
                    return False
                await self._changed.wait()
            self.reserved += worst
            self.in_flight += 1
            return True

    async def settle(self, worst: float, actual: float) -> None:
        async with self._changed:
            self.in_flight -= 1
            self.reserved = self.reserved - worst if self.in_flight else 0.0
            self.spent += actual
            self._changed.notify_all()
