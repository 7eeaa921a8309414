"""Settings + policy + environment -> ``RouterState``: everything a request handler needs.

Built once per app in ``create_app``: the scorer, one pooled client per backend (inside
``Upstream``), the decision log, the metrics and the health cache. Nothing here is built
per request."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from router_service.backends import build_backend
from router_service.backends.transport import FastTransport
from router_service.decision import Scorer, Tier
from router_service.logstore import DecisionLog, LogRow, create_decision_log
from router_service.metrics import RouterMetrics
from router_service.policy import (
    Policy,
    ResolvedBackend,
    load_policy,
    model_index,
    resolve_backends,
)
from router_service.scoring import DEFAULT_MODEL_DIR, load_scorer
from router_service.settings import Settings
from router_service.tracing import NO_TRACING, NoTracing, make_tracing
from router_service.upstream import BackendSlot, CircuitBreaker, LatencyTracker, Upstream

log = logging.getLogger("router_service")

REPO_ROOT = Path(__file__).resolve().parent.parent.parent


def resolve_path(path: Path) -> Path:
    """A relative path that does not exist under the working directory is looked up in
    the repository (so ``policies/default.yaml`` works from anywhere in a dev checkout)."""
    if path.is_absolute() or path.exists():
        return path
    candidate = REPO_ROOT / path
    return candidate if candidate.exists() else path


def served_model_dir(settings: Settings) -> Path:
    """The model directory the learned scorer serves: ``ROUTER_MODEL_DIR`` or the packaged
    ``models/default``."""
    return resolve_path(settings.model_dir) if settings.model_dir else DEFAULT_MODEL_DIR


@dataclass(slots=True)
class HealthCache:
    checked_at: float = -1.0
    result: dict[str, Any] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    refresh: asyncio.Task[None] | None = None  # a background re-probe in flight


@dataclass(slots=True)
class RouterState:
    settings: Settings
    policy: Policy
    policy_path: Path
    scorer: Scorer
    scorer_error: str | None
    backends: list[ResolvedBackend]
    models: dict[str, ResolvedBackend]
    upstream: Upstream
    log: DecisionLog
    metrics: RouterMetrics
    strong_price: tuple[float, float]
    tracing: NoTracing = NO_TRACING
    health: HealthCache = field(default_factory=HealthCache)
    inflight: int = 0
    started_at: float = field(default_factory=time.time)

    pending_logs: set[asyncio.Future[None]] = field(default_factory=set)

    async def write_log(self, make_row: Callable[[], LogRow]) -> None:
        """One decision-log row. With ``log_wait`` this returns once the row is committed
        (the response's last byte waits for it: ``responses.LoggedResponse``); by default the
        row is built and written in the background (drained at shutdown). Never raises."""
        if self.settings.log_wait:
            await self._record(make_row)
        else:
            task = asyncio.ensure_future(self._record(make_row))
            self.pending_logs.add(task)
            task.add_done_callback(self.pending_logs.discard)

    async def _record(self, make_row: Callable[[], LogRow]) -> None:
        row = None
        try:
            row = make_row()
            await self.log.record(row)
        except Exception as exc:  # the answer already went out; a log failure must not crash
            log.warning("decision log write failed for %s: %s", row and row.request_id, exc)

    async def drain_logs(self) -> None:
        if self.pending_logs:
            await asyncio.gather(*self.pending_logs, return_exceptions=True)

    def tier_models(self, tier: Tier) -> list[str]:
        return [b.config.model for b in self.backends if b.tier == tier and b.enabled]


def _strong_baseline_price(backends: list[ResolvedBackend]) -> tuple[float, float]:
    """Prices of the strong tier's first backend (enabled preferred): the cost baseline."""
    strong = [b for b in backends if b.tier == "strong"]
    strong.sort(key=lambda b: not b.enabled)
    if not strong:
        return (0.0, 0.0)
    price = strong[0].config.price
    return (price.input_per_1m, price.output_per_1m)


def _transport(settings: Settings, backend: ResolvedBackend) -> httpx.AsyncBaseTransport | None:
    if settings.upstream_client == "fast":
        return FastTransport(max_connections=backend.config.max_connections)
    return None  # the backend builds httpx's own pooled transport


def build_state(
    settings: Settings, env: Mapping[str, str], tracer_provider: Any = None
) -> RouterState:
    """Settings + environment -> ``RouterState`` (raises ``PolicyError`` on a bad policy).
    ``tracer_provider``: an OpenTelemetry provider to use when ``settings.otel`` (tests)."""
    policy_path = resolve_path(settings.policy)
    policy = load_policy(policy_path)
    scorer, scorer_error = load_scorer(settings.scorer, served_model_dir(settings))
    backends = resolve_backends(policy, env)
    for b in backends:
        if not b.enabled:
            log.info("backend %s (%s tier) disabled: %s", b.name, b.tier, b.disabled_reason)
    metrics = RouterMetrics()
    slots = [
        BackendSlot(
            backend=build_backend(b, _transport(settings, b)),
            tier=b.tier,
            enabled=b.enabled,
            disabled_reason=b.disabled_reason,
            breaker=CircuitBreaker(policy.circuit_breaker),
            latency=LatencyTracker(policy.latency, b.config.expected_latency_ms),
        )
        for b in backends
    ]
    tracing = make_tracing(settings.otel, tracer_provider)
    upstream = Upstream(
        policy,
        slots,
        on_upstream=metrics.observe_upstream,
        on_fallback=metrics.observe_fallback,
        on_attempt=tracing.attempt if tracing.enabled else None,
    )
    decision_log = create_decision_log(settings.database_url, settings.sqlite_path)
    return RouterState(
        settings=settings,
        policy=policy,
        policy_path=policy_path,
        scorer=scorer,
        scorer_error=scorer_error,
        backends=backends,
        models=model_index(backends),
        upstream=upstream,
        log=decision_log,
        metrics=metrics,
        strong_price=_strong_baseline_price(backends),
        tracing=tracing,
    )
