"""Router state + decision log -> the JSON document of ``GET /dashboard/data``.

Two halves, each a plain function:

* ``log_view(state, now, window_s, limit, recent)`` (blocking, run in a thread): the
  newest ``limit`` decisions of the last ``window_s`` seconds and that window's feedback
  counts (``query``), aggregated by ``summary.summarise``. Covers every replica and worker
  writing the same log. A database that cannot be read gives ``{"error": ...}`` instead,
  and the live half still answers.
* ``live_view(state, loop)`` (cheap, on the event loop): this process's own state: the
  served model and its reloads, the shadow candidate's agreement, every backend's circuit
  breaker, rolling p50 and upstream call counts, and the in-process metrics summary
  (counters since start-up, ``RouterMetrics.as_json``).

``dashboard_data`` joins them; each backend also gets its window's answers and fallbacks."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from router_service import __version__
from router_service.api.state import RouterState
from router_service.dashboard.query import feedback_counts, recent_decisions
from router_service.dashboard.summary import Price, summarise
from router_service.logstore.schema import utcnow

log = logging.getLogger("router_service")

SHADOW_FIELDS = (
    "candidate_version",
    "candidate_scorer",
    "sample_rate",
    "scored",
    "dropped",
    "errors",
    "agreement",
    "tier_share",
    "estimated_cost_usd",
    "candidate_decision_us",
)


def backend_prices(state: RouterState) -> dict[str, Price]:
    """Backend name -> its (input, output) USD per 1M tokens, from the policy."""
    return {
        b.name: (b.config.price.input_per_1m, b.config.price.output_per_1m) for b in state.backends
    }


def log_view(
    state: RouterState, now: datetime, window_s: float, limit: int, recent: int
) -> dict[str, Any]:
    """The decision-log half (blocking). ``window``: what was asked and what was read."""
    since = now - timedelta(seconds=window_s)
    window: dict[str, Any] = {
        "seconds": window_s,
        "since": since.isoformat(),
        "limit": limit,
        "dialect": state.log.dialect,
    }
    try:
        rows, truncated = recent_decisions(state.log.engine, since, limit)
        feedback = feedback_counts(state.log.engine, since)
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        log.warning("dashboard: decision log read failed: %s", exc)
        return {"window": window, "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    window["rows"] = len(rows)
    window["truncated"] = truncated
    # When cut at ``limit``, the aggregates cover only the newest rows: say from when.
    window["covered_since"] = rows[-1]["created_at"].isoformat() if truncated else None
    body = summarise(
        rows,
        prices=backend_prices(state),
        strong_price=state.strong_price,
        now=now,
        window_s=window_s,
        recent=recent,
        backend_tiers={b.name: b.tier for b in state.backends},
    )
    return {"window": window, **body, "feedback": feedback}


def _upstream_counts(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    samples = metrics.get("router_upstream_requests", {}).get("samples", [])
    out: dict[str, dict[str, float]] = {}
    for s in samples:
        entry = out.setdefault(s["labels"].get("backend", ""), {"ok": 0.0, "error": 0.0})
        outcome = s["labels"].get("outcome", "error")
        entry[outcome] = entry.get(outcome, 0.0) + s["value"]
    return out


def live_view(state: RouterState, loop: Any) -> dict[str, Any]:
    """This process's state (``loop``: the app's ``model_store.ModelLoop``)."""
    metrics = state.metrics.as_json()
    calls = _upstream_counts(metrics["metrics"])
    backends = []
    for slot in state.upstream.slots:
        name = slot.backend.name
        p50 = slot.latency.p50_ms()
        backends.append(
            {
                "name": name,
                "tier": slot.tier,
                "type": slot.backend.kind,
                "model": slot.backend.model,
                "enabled": slot.enabled,
                "disabled_reason": slot.disabled_reason,
                "circuit": slot.breaker.state,
                "consecutive_failures": slot.breaker.streak,
                "failures": slot.breaker.failures,
                "p50_ms": None if p50 is None else round(p50, 1),
                "misconfigured": slot.misconfigured,
                "calls": calls.get(name, {"ok": 0.0, "error": 0.0}),
            }
        )
    status = loop.status()
    history = status.get("history") or []
    shadow = loop.shadow
    if shadow is None:
        shadow_view: dict[str, Any] = {"enabled": False}
    else:
        report = shadow.report()
        shadow_view = {"enabled": True, **{k: report.get(k) for k in SHADOW_FIELDS}}
    return {
        "model": {
            "scorer": state.scorer.name,
            "version": state.scorer.version,
            "fallback_reason": state.scorer_error,
            "model_dir": status.get("model_dir"),
            "watch_seconds": status.get("watch_seconds"),
            "reloads": status.get("reloads", 0),
            "refusals": status.get("refusals", 0),
            "last_reload": history[-1] if history else None,
        },
        "shadow": shadow_view,
        "backends": backends,
        "process": {
            "version": __version__,
            "uptime_s": round(time.time() - state.started_at, 1),
            "inflight": state.inflight,
            "metrics": metrics["summary"],
            "log_writer": state.log.stats(),
        },
    }


async def dashboard_data(
    state: RouterState, loop: Any, *, window_s: float, limit: int, recent: int
) -> dict[str, Any]:
    """-> the whole document: ``{"object": "dashboard.data", "generated_at", "model",
    "shadow", "backends", "process"}`` (``live_view``) + ``"log"`` (``log_view``). Each
    live backend also gets ``window``: ``{served, errors, fallbacks: {reason: n}}`` from
    the log window (the answers it gave, and the times the router left it)."""
    now = utcnow()
    live = live_view(state, loop)
    logged = await asyncio.to_thread(log_view, state, now, window_s, limit, recent)
    window_backends = logged.get("backends", {})
    for b in live["backends"]:
        seen = window_backends.get(b["name"], {})
        b["window"] = {
            "served": seen.get("served", 0),
            "errors": seen.get("errors", 0),
            "fallbacks": seen.get("fallbacks", {}),
        }
    return {"object": "dashboard.data", "generated_at": now.isoformat(), **live, "log": logged}
