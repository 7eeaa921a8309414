"""Read-only endpoints: ``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus)
and ``GET /v1/metrics`` (JSON). Health probes every enabled backend, at most once per
``health_cache_seconds``, concurrently and with a short timeout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from router_service import __version__
from router_service.api.auth import check_admin, check_client_auth, may_see_internals
from router_service.api.state import RouterState
from router_service.decision import TIERS
from router_service.errors import ApiError
from router_service.protocol import AUTO_MODEL


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def models_list(state: RouterState) -> dict[str, Any]:
    """``auto``, the three tiers, then every enabled concrete model (OpenAI list shape)."""
    created = int(state.started_at)
    data: list[dict[str, Any]] = [
        {
            "id": AUTO_MODEL,
            "object": "model",
            "created": created,
            "owned_by": "learned-router",
            "description": "routed per request by the learned router",
        }
    ]
    for tier in TIERS:
        data.append(
            {
                "id": tier,
                "object": "model",
                "created": created,
                "owned_by": "learned-router",
                "tier": tier,
                "enabled": state.upstream.tier_enabled(tier),
                "models": state.tier_models(tier),
            }
        )
    seen = {AUTO_MODEL, *TIERS}
    for b in state.backends:
        if b.enabled and b.config.model not in seen:
            seen.add(b.config.model)
            data.append(
                {
                    "id": b.config.model,
                    "object": "model",
                    "created": created,
                    "owned_by": b.name,
                    "tier": b.tier,
                }
            )
    return {"object": "list", "data": data}


async def list_models(request: Request) -> Response:
    state: RouterState = request.app.state.router
    check_client_auth(state.settings, request.headers)
    return _json(models_list(state))


async def retrieve_model(request: Request) -> Response:
    """``GET /v1/models/{id}``: one entry of the list (aliases too), else 404."""
    state: RouterState = request.app.state.router
    check_client_auth(state.settings, request.headers)
    wanted = request.path_params["model_id"]
    for entry in models_list(state)["data"]:
        if entry["id"] == wanted:
            return _json(entry)
    backend = state.models.get(wanted)
    if backend is not None and backend.enabled:  # an alias of a configured model
        entry = {"id": wanted, "object": "model", "created": int(state.started_at)}
        return _json({**entry, "owned_by": backend.name, "tier": backend.tier})
    raise ApiError(
        404,
        f"The model '{wanted}' does not exist on this router (GET /v1/models lists them).",
        param="model",
        code="model_not_found",
    )


async def backend_health(state: RouterState) -> dict[str, Any]:
    """Probe every enabled backend (concurrently) -> per-backend status."""
    timeout = state.settings.health_timeout_seconds
    slots = state.upstream.slots

    async def one(i: int) -> dict[str, Any]:
        slot = slots[i]
        info: dict[str, Any] = {"tier": slot.tier, "type": slot.backend.kind}
        info["model"] = slot.backend.model
        if not slot.enabled:
            return {**info, "enabled": False, "reason": slot.disabled_reason}
        probe = await slot.backend.probe(timeout)
        p50 = slot.latency.p50_ms()
        return {
            **info,
            "enabled": True,
            **probe,
            "circuit": slot.breaker.state,
            "p50_ms": None if p50 is None else round(p50, 1),
            "misconfigured": slot.misconfigured,
        }

    results = await asyncio.gather(*(one(i) for i in range(len(slots))))
    return {slots[i].backend.name: r for i, r in enumerate(results)}


async def _probe_into(state: RouterState) -> None:
    cache = state.health
    async with cache.lock:
        cache.result = await backend_health(state)
        cache.checked_at = time.monotonic()


async def cached_backends(state: RouterState) -> dict[str, Any]:
    """Backend probes, at most ``health_cache_seconds`` old. Stale results are served at
    once while one background task re-probes, so ``/health`` never waits on a slow or
    saturated backend; only the first call (nothing cached yet) or a cache time of 0
    (always fresh) awaits the probes."""
    cache = state.health
    max_age = state.settings.health_cache_seconds
    if cache.result is None and cache.refresh is not None and not cache.refresh.done():
        await asyncio.shield(cache.refresh)  # the start-up probe (``prefetch_health``)
    if cache.result is None or max_age <= 0:
        async with cache.lock:
            if cache.result is None or max_age <= 0:
                cache.result = await backend_health(state)
                cache.checked_at = time.monotonic()
            return cache.result
    if time.monotonic() - cache.checked_at > max_age:
        start_refresh(state)
    return cache.result


def start_refresh(state: RouterState) -> None:
    """Start one background re-probe of the backends unless one is already running."""
    cache = state.health
    if cache.refresh is None or cache.refresh.done():
        cache.refresh = asyncio.ensure_future(_probe_into(state))


def prefetch_health(state: RouterState) -> None:
    """Probe the backends once in the background at start-up, so the first ``/health``
    (often a readiness probe arriving with the first traffic) finds a result."""
    state.health.refresh = asyncio.ensure_future(_probe_into(state))


async def health_report(state: RouterState) -> dict[str, Any]:
    cache = state.health
    backends = await cached_backends(state)
    tiers = tier_reachability(backends)
    reasons = degraded_reasons(state, any(tiers.values()))
    return {
        "status": "degraded" if reasons else "ok",
        "reasons": reasons,
        "version": __version__,
        "uptime_s": round(time.time() - state.started_at, 1),
        "scorer": {
            "name": state.scorer.name,
            "version": state.scorer.version,
            "fallback_reason": state.scorer_error,
        },
        "policy": str(state.policy_path),
        "tiers": tiers,
        "backends": backends,
        "checked_s_ago": round(time.monotonic() - cache.checked_at, 1),
    }


def tier_reachability(backends: dict[str, Any]) -> dict[str, bool]:
    """Backend probes -> per tier: does an enabled backend answer with its circuit closed?"""
    return {
        tier: any(
            b.get("reachable") and b.get("circuit") != "open"
            for b in backends.values()
            if b["tier"] == tier and b.get("enabled")
        )
        for tier in TIERS
    }


def degraded_reasons(state: RouterState, any_tier_up: bool) -> list[str]:
    """Why the router is not fully itself: no reachable tier, the learned scorer replaced
    by the heuristic, a backend refusing the router's credentials."""
    reasons = []
    if not any_tier_up:
        reasons.append("no tier has a reachable backend")
    if state.scorer_error:
        reasons.append(f"scorer fallback to {state.scorer.name}: {state.scorer_error}")
    reasons += [
        f"backend {s.backend.name} misconfigured: {s.misconfigured}"
        for s in state.upstream.slots
        if s.misconfigured
    ]
    return reasons


async def health(request: Request) -> Response:
    """Liveness (always 200 while the process serves) + backend reachability. With keys
    configured, callers without one see the status only (no models, hosts or reasons)."""
    state: RouterState = request.app.state.router
    report = await health_report(state)
    if not may_see_internals(state.settings, request.headers):
        return _json({"status": report["status"]})
    return _json(report)


async def prometheus(request: Request) -> Response:
    state: RouterState = request.app.state.router
    check_admin(state.settings, request.headers)
    body, content_type = state.metrics.render_prometheus()
    return Response(body, media_type=content_type)


async def metrics_json(request: Request) -> Response:
    state: RouterState = request.app.state.router
    check_admin(state.settings, request.headers)
    body = state.metrics.as_json()
    body["log"] = state.log.stats()
    body["backends"] = {
        s.backend.name: {
            "tier": s.tier,
            "enabled": s.enabled,
            "circuit": s.breaker.state,
            "failures": s.breaker.failures,
            "p50_ms": s.latency.p50_ms(),
        }
        for s in state.upstream.slots
    }
    body["inflight"] = state.inflight
    return _json(body)


ROUTES = (
    ("/v1/models", list_models),
    ("/v1/models/{model_id:path}", retrieve_model),
    ("/health", health),
    ("/metrics", prometheus),
    ("/v1/metrics", metrics_json),
)
