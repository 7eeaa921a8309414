"""Decision -> an ordered list of backends to try -> the first usable upstream answer.

* ``CircuitBreaker``: per backend; opens after N consecutive failures, lets one trial
  request through (half-open) after a cool-down, closes again on success.
* ``LatencyTracker``: rolling p50 of each backend's latency (non-streaming: whole answer;
  streaming: first event), falling back to the policy's ``expected_latency_ms``.
* ``Upstream.plan``: chosen tier + its fallback chain (disabled tiers skipped); a sensitive
  request gets the local tier only (fail closed); a latency budget that the chosen tier's
  p50 exceeds puts a faster tier first.
* ``Upstream.run``: tries the plan in order. Connection errors, timeouts before the first
  byte, 429/5xx, 401/403 (the router's own credentials refused: the backend is marked
  misconfigured) and malformed answers move on to the next backend; any other 4xx is the
  client's problem and is returned as is (never retried down the chain). Exhaustion ->
  ``ApiError`` (429 with the smallest upstream ``Retry-After``, 502, 503, 504)."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from router_service.backends import Backend, Completion, UpstreamError, UpstreamStream
from router_service.backends.errors import AUTH_STATUSES
from router_service.decision import TIERS, Tier
from router_service.errors import ApiError
from router_service.policy import CircuitBreakerConfig, LatencyConfig, Policy

Clock = Callable[[], float]


class CircuitBreaker:
    """closed -> (``failures`` consecutive failures) -> open -> (cool-down) -> half-open
    (one trial request) -> closed on success / open again on failure."""

    __slots__ = ("_clock", "cooldown", "failures", "opened_at", "probing", "streak", "threshold")

    def __init__(self, config: CircuitBreakerConfig, clock: Clock = time.monotonic) -> None:
        self.threshold = config.failures
        self.cooldown = config.cooldown_seconds
        self._clock = clock
        self.streak = 0
        self.opened_at: float | None = None
        self.probing = False
        self.failures = 0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        if self.probing or self._clock() - self.opened_at >= self.cooldown:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a request go to this backend now? (Claims the half-open trial slot.)"""
        if self.opened_at is None:
            return True
        if self.probing or self._clock() - self.opened_at < self.cooldown:
            return False
        self.probing = True
        return True

    def available(self) -> bool:
        """Like ``allow`` but without claiming anything (for planning and health)."""
        if self.opened_at is None:
            return True
        return not self.probing and self._clock() - self.opened_at >= self.cooldown

    def success(self) -> None:
        self.streak = 0
        self.opened_at = None
        self.probing = False

    def failure(self) -> None:
        self.failures += 1
        self.streak += 1
        if self.probing or self.streak >= self.threshold:
            self.opened_at = self._clock()
        self.probing = False

    def release(self) -> None:
        """The trial request was abandoned (client went away): no verdict."""
        self.probing = False


class LatencyTracker:
    """Rolling window of one backend's latencies (seconds) -> p50 in ms."""

    __slots__ = ("_p50", "expected_ms", "min_samples", "samples")

    def __init__(self, config: LatencyConfig, expected_ms: float | None) -> None:
        self.samples: deque[float] = deque(maxlen=config.window)
        self.min_samples = config.min_samples
        self.expected_ms = expected_ms
        self._p50: float | None = None

    def add(self, seconds: float) -> None:
        self.samples.append(seconds * 1000.0)
        self._p50 = None

    def p50_ms(self) -> float | None:
        if len(self.samples) < self.min_samples:
            return self.expected_ms
        if self._p50 is None:
            ordered = sorted(self.samples)
            self._p50 = ordered[len(ordered) // 2]
        return self._p50


@dataclass(slots=True)
class BackendSlot:
    """A backend plus its runtime state."""

    backend: Backend
    tier: Tier
    enabled: bool
    disabled_reason: str | None
    breaker: CircuitBreaker
    latency: LatencyTracker
    # Why the backend refused the router's credentials (401/403), until it answers again.
    misconfigured: str | None = None


@dataclass(slots=True)
class Plan:
    slots: list[BackendSlot]
    chain: list[Tier]
    note: str | None = None  # e.g. why a latency budget moved the request
    disabled: list[str] = field(default_factory=list)  # "name: why" for the chain's tiers


@dataclass(slots=True)
class Outcome:
    """What ``run`` got: a completion or an open stream, from which backend, after what."""

    slot: BackendSlot
    completion: Completion | None
    stream: UpstreamStream | None
    fallbacks: list[str]
    upstream_s: float
    native: bool = False  # answered in the client's own API, untranslated (``NativeRequest``)


@dataclass(frozen=True, slots=True)
class NativeRequest:
    """The client's own request, for backends that speak its API (``Backend.speaks``):
    they get ``body`` as it came (their model in it), the others the chat translation."""

    api: str  # "messages"
    body: dict[str, Any]


@dataclass(slots=True)
class _Failure:
    slot: BackendSlot
    category: str
    error: UpstreamError | None


def failure_category(err: UpstreamError) -> str:
    if err.kind == "status":
        if err.status is None:
            return "stream_error"
        return "http_429" if err.status == 429 else f"http_{err.status}"
    kinds = {"connect": "connect_error", "timeout": "timeout", "saturated": "saturated"}
    return kinds.get(err.kind, "protocol_error")


def metric_reason(category: str) -> str:
    """Low-cardinality label for the fallback counter."""
    if category.startswith("http_5"):
        return "http_5xx"
    if category in ("http_401", "http_403"):
        return "auth_error"
    return category


@dataclass(slots=True)
class Upstream:
    """All backend slots of the policy and the fallback logic over them."""

    policy: Policy
    slots: list[BackendSlot]
    on_upstream: Callable[[str, str, float, bool], None] | None = None
    on_fallback: Callable[[str, str, str], None] | None = None
    # Every attempt when it is over: (backend, seconds, failure category or None); tracing.
    on_attempt: Callable[[Backend, float, str | None], None] | None = None
    by_tier: dict[Tier, list[BackendSlot]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_tier = {t: [s for s in self.slots if s.tier == t] for t in TIERS}

    # -- planning ----------------------------------------------------------------------
    def tier_enabled(self, tier: Tier) -> bool:
        return any(s.enabled for s in self.by_tier[tier])

    def tier_p50_ms(self, tier: Tier) -> float | None:
        """The best (lowest) p50 among the tier's usable backends."""
        values = [
            p
            for s in self.by_tier[tier]
            if s.enabled and s.breaker.available() and (p := s.latency.p50_ms()) is not None
        ]
        return min(values) if values else None

    def chain(self, tier: Tier) -> list[Tier]:
        return [tier, *self.policy.fallback.get(tier, [])]

    def plan(
        self,
        tier: Tier,
        *,
        sensitive: bool = False,
        forced: bool = False,
        preferred: str | None = None,
        budget_rule: str | None = None,
    ) -> Plan:
        """Chosen tier -> backends to try, in order (enabled ones only)."""
        if sensitive:
            chain: list[Tier] = ["local"]
        elif forced and not self.policy.fallback_on_forced:
            chain = [tier]
        else:
            chain = [t for t in self.chain(tier) if t == tier or self.tier_enabled(t)]
        note = None
        may_widen = not sensitive and not (forced and not self.policy.fallback_on_forced)
        if may_widen and not any(self.tier_enabled(t) for t in chain):
            # Nothing in the chain is configured (e.g. no cloud API keys): rather than
            # refuse, use whatever tier is enabled, cheapest first.
            spare = [t for t in TIERS if t not in chain and self.tier_enabled(t)]
            if spare:
                note = f"tier {tier} and its fallbacks are disabled -> {spare[0]}"
                chain = [*chain, *spare]
        if not sensitive and not forced and budget_rule is not None:
            chain, budget_note = self._apply_budget(chain, budget_rule)
            note = budget_note or note
        slots: list[BackendSlot] = []
        for t in chain:
            tier_slots = [s for s in self.by_tier[t] if s.enabled]
            if preferred is not None:
                tier_slots.sort(key=lambda s: s.backend.name != preferred)
            slots.extend(tier_slots)
        disabled = [
            f"{s.backend.name}: {s.disabled_reason}"
            for t in chain
            for s in self.by_tier[t]
            if not s.enabled
        ]
        return Plan(slots, chain, note, disabled)

    def _apply_budget(self, chain: list[Tier], rule: str) -> tuple[list[Tier], str | None]:
        budgets = self.policy.latency.budgets_ms
        budget = budgets.get(rule, budgets.get("default"))
        if budget is None:
            return chain, None
        first = chain[0]
        p50 = self.tier_p50_ms(first)
        if p50 is None or p50 <= budget:
            return chain, None
        others = [t for t in chain[1:]] + [t for t in TIERS if t not in chain]
        for t in others:
            tp = self.tier_p50_ms(t)
            if self.tier_enabled(t) and tp is not None and tp <= budget:
                new_chain = [t, *[c for c in chain if c != t]]
                note = (
                    f"latency budget ({rule}): {first} p50 {p50:.0f} ms > {budget:g} ms "
                    f"-> {t} (p50 {tp:.0f} ms)"
                )
                return new_chain, note
        return chain, None

    # -- execution ---------------------------------------------------------------------
    async def run(
        self,
        plan: Plan,
        body: dict[str, Any],
        *,
        stream: bool,
        native: NativeRequest | None = None,
    ) -> Outcome:
        """Try the plan in order; the first usable answer wins. ``body`` is the chat
        request; a backend that speaks ``native``'s API gets that request instead."""
        failures: list[_Failure] = []
        fallbacks: list[str] = []
        pending: _Failure | None = None
        for slot in plan.slots:
            if not slot.breaker.allow():
                failure = _Failure(slot, "circuit_open", None)
                failures.append(failure)
                fallbacks.append(f"{slot.tier}/{slot.backend.name}: circuit_open")
                pending = pending or failure
                continue
            if pending is not None and self.on_fallback is not None:
                self.on_fallback(pending.slot.tier, slot.tier, metric_reason(pending.category))
            pending = None
            started = time.monotonic()
            own = native.body if native and slot.backend.speaks(native.api) else None
            try:
                result: Completion | UpstreamStream
                if stream:
                    result = await slot.backend.open_stream(body, own)
                else:
                    result = await slot.backend.complete(body, own)
            except UpstreamError as err:
                elapsed = time.monotonic() - started
                slot.breaker.failure()
                self._observe(slot, elapsed, False)
                category = failure_category(err)
                if self.on_attempt is not None:
                    self.on_attempt(slot.backend, elapsed, category)
                if err.status in AUTH_STATUSES:
                    slot.misconfigured = f"HTTP {err.status}: the backend refused the router's key"
                failure = _Failure(slot, category, err)
                failures.append(failure)
                fallbacks.append(f"{slot.tier}/{slot.backend.name}: {category}")
                pending = failure
                continue
            except asyncio.CancelledError:
                slot.breaker.release()
                raise
            elapsed = time.monotonic() - started
            slot.breaker.success()
            slot.misconfigured = None
            if self.on_attempt is not None:
                ttfb = result.ttfb_s if isinstance(result, UpstreamStream) else elapsed
                self.on_attempt(slot.backend, ttfb, None)
            if isinstance(result, UpstreamStream):
                slot.latency.add(result.ttfb_s)
                self._observe(slot, result.ttfb_s, True)
                return Outcome(slot, None, result, fallbacks, result.ttfb_s, own is not None)
            if result.status < 400:
                slot.latency.add(elapsed)
            self._observe(slot, elapsed, True)
            return Outcome(slot, result, None, fallbacks, elapsed, own is not None)
        raise exhausted_error(plan, failures, fallbacks)

    def _observe(self, slot: BackendSlot, seconds: float, ok: bool) -> None:
        if self.on_upstream is not None:
            self.on_upstream(slot.tier, slot.backend.name, seconds, ok)

    def stream_finished(self, slot: BackendSlot, ok: bool) -> None:
        """A committed stream ended; a mid-stream failure counts against the backend."""
        if not ok:
            slot.breaker.failure()

    async def aclose(self) -> None:
        await asyncio.gather(*(s.backend.aclose() for s in self.slots), return_exceptions=True)


class ExhaustedError(ApiError):
    """No backend produced an answer; carries the fallback trail for the log.

    ``message`` (the client's) names backends and failure categories only; ``detail`` (the
    log's) adds each backend's own error text, which may name internal hosts and ports."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str,
        fallbacks: list[str],
        detail: str | None = None,
    ) -> None:
        super().__init__(status, message, code=code)
        self.fallbacks = fallbacks
        self.detail = detail or message


def upstream_message(err: UpstreamError, limit: int = 300) -> str | None:
    """The backend's own error text from its (translated, credential-redacted) body."""
    if not err.body:
        return None
    try:
        data = orjson.loads(err.body)
        message = data["error"]["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(message, str) or not message.strip():
        return None
    return message.strip()[:limit]


def _describe(failures: Iterable[_Failure]) -> tuple[str, str]:
    """Failures -> (the client's text: backend names, categories and what each backend said;
    the log's: the same plus each error's own text, which may name internal hosts)."""
    public, internal = [], []
    for f in failures:
        head = f"{f.slot.backend.name}: {f.category}"
        if f.error is None:
            public.append(head)
            internal.append(head)
            continue
        said = upstream_message(f.error) if f.error.kind == "status" else None
        public.append(f"{head} ({said})" if said else head)
        internal.append(f"{head} ({f.error.message}{f': {said}' if said else ''})")
    return "; ".join(public), "; ".join(internal)


def exhausted_error(plan: Plan, failures: list[_Failure], fallbacks: list[str]) -> ExhaustedError:
    """The plan ran out -> the error the client sees."""
    chain = " -> ".join(plan.chain)
    if not plan.slots:
        status, code = 503, "no_backend_available"
        why = f" ({'; '.join(plan.disabled)})" if plan.disabled else " (none configured)"
        message = detail = f"No enabled backend for tier chain {chain}{why}."
    else:
        tried = [f for f in failures if f.error is not None]
        last = tried[-1].error if tried else None
        if last is None:
            status, code = 503, "circuit_open"
        elif last.kind == "timeout":
            status, code = 504, "upstream_timeout"
        elif last.kind == "saturated":
            status, code = 503, "upstream_at_capacity"
        elif last.status == 429:
            status, code = 429, "upstream_rate_limited"
        else:
            status, code = 502, "upstream_error"
        public, internal = _describe(failures)
        prefix = f"All backends failed for tier chain {chain}: "
        message, detail = prefix + public, prefix + internal
    err = ExhaustedError(status, message, code, fallbacks, detail)
    waits = [
        f.error.retry_after
        for f in failures
        if f.error is not None and f.error.status == 429 and f.error.retry_after is not None
    ]
    if status == 429 and waits:  # the soonest any tier will take the request again
        err.headers["Retry-After"] = str(max(1, math.ceil(min(waits))))
    return err
