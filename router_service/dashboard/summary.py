"""Decision-log rows of one time window + prices -> the dashboard's aggregates (pure).

``summarise(rows, prices=..., strong_price=..., now=..., window_s=...)`` takes the rows
``query.recent_decisions`` read (newest first) and returns the recent decisions as the
table shows them, tier counts and shares, a time series (per bucket: decisions per tier,
estimated cost and what always-strong would have cost, upstream latency p50/p99), the
window's cost and saving, decision/upstream/total latency p50/p99, and per backend the
answers it served (how many were errors) and the fallbacks away from it, by reason.

Costs follow ``router_service.metrics``: tokens x the serving backend's price per 1M
tokens, the baseline at the strong tier's price, answered requests (status < 400) only."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from router_service.decision import TIERS

Price = tuple[float, float]  # USD per 1M (input, output) tokens
BUCKET_STEPS_S: tuple[int, ...] = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
MAX_BUCKETS = 60
ERROR_CHARS = 300


def bucket_seconds(window_s: float) -> int:
    """The smallest step in ``BUCKET_STEPS_S`` that cuts the window into <= 60 buckets."""
    for step in BUCKET_STEPS_S:
        if window_s / step <= MAX_BUCKETS:
            return step
    return BUCKET_STEPS_S[-1] * math.ceil(window_s / (BUCKET_STEPS_S[-1] * MAX_BUCKETS))


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[idx]


def latency(values: Iterable[float | None], digits: int = 1) -> dict[str, Any]:
    """Values (None skipped) -> ``{"p50", "p99", "n"}``."""
    ordered = sorted(v for v in values if v is not None and math.isfinite(v))
    p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
    return {
        "p50": None if p50 is None else round(p50, digits),
        "p99": None if p99 is None else round(p99, digits),
        "n": len(ordered),
    }


def row_cost(row: Mapping[str, Any], prices: Mapping[str, Price], strong: Price) -> Price | None:
    """-> (estimated cost, always-strong cost) in USD, or None when the row has no usage
    (no tokens reported, no backend, or an error answer)."""
    p_tok, c_tok = row.get("prompt_tokens"), row.get("completion_tokens")
    if (p_tok is None and c_tok is None) or row.get("backend") is None:
        return None
    if int(row.get("status") or 0) >= 400:
        return None
    price = prices.get(str(row["backend"]), (0.0, 0.0))
    p, c = max(int(p_tok or 0), 0), max(int(c_tok or 0), 0)
    return (p * price[0] + c * price[1]) / 1e6, (p * strong[0] + c * strong[1]) / 1e6


def fallback_backend(entry: str) -> str:
    """``"primary/primary-openai: http_5xx"`` -> ``"primary-openai"`` (the one left)."""
    head = entry.split(":", 1)[0]
    return head.split("/", 1)[1] if "/" in head else head


def recent_row(row: Mapping[str, Any], backend_tiers: Mapping[str, str]) -> dict[str, Any]:
    """One log row -> a row of the recent-decisions table. ``tier`` is the decision's;
    ``served_tier`` the tier of the backend that answered (another one after a fallback;
    None when no backend answered or it is no longer in the policy)."""
    extra = row.get("extra") or {}
    created: datetime = row["created_at"]
    swr, error = row.get("strong_win_rate"), row.get("error")
    return {
        "request_id": row["request_id"],
        "created_at": created.isoformat(),
        "endpoint": extra.get("endpoint", "chat"),
        "intent": row.get("intent"),
        "tier": row.get("tier"),
        "decided_tier": extra.get("decided_tier", row.get("tier")),
        "forced": bool(extra.get("forced")),
        "strong_win_rate": None if swr is None else round(float(swr), 4),
        "reason": row.get("reason"),
        "scorer": row.get("scorer"),
        "model_version": row.get("model_version"),
        "backend": row.get("backend"),
        "served_tier": backend_tiers.get(str(row.get("backend"))),
        "model": row.get("model"),
        "status": row.get("status"),
        "error": None if error is None else str(error)[:ERROR_CHARS],
        "stream": bool(row.get("stream")),
        "sensitive": bool(row.get("sensitive")),
        "fallbacks": list(row.get("fallbacks") or []),
        "decision_us": _round(row.get("decision_us"), 1),
        "upstream_ms": _round(row.get("upstream_latency_ms"), 1),
        "total_ms": _round(row.get("total_ms"), 1),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def _series(
    rows: Sequence[Mapping[str, Any]],
    costs: Sequence[Price | None],
    step: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Rows (newest first) -> one point per bucket from the oldest row's to now's."""
    if not rows:
        return []
    first = int(rows[-1]["created_at"].timestamp()) // step
    last = max(int(now.timestamp()) // step, int(rows[0]["created_at"].timestamp()) // step)
    points = [
        {"t": b * step, **dict.fromkeys(TIERS, 0), "cost_usd": 0.0, "strong_baseline_usd": 0.0}
        for b in range(first, last + 1)
    ]
    upstream: list[list[float]] = [[] for _ in points]
    for row, cost in zip(rows, costs, strict=True):
        i = int(row["created_at"].timestamp()) // step - first
        point = points[i]
        if row.get("tier") in TIERS:
            point[row["tier"]] += 1
        if cost is not None:
            point["cost_usd"] += cost[0]
            point["strong_baseline_usd"] += cost[1]
        if row.get("upstream_latency_ms") is not None:
            upstream[i].append(float(row["upstream_latency_ms"]))
    for point, values in zip(points, upstream, strict=True):
        lat = latency(values)
        point["upstream_ms_p50"], point["upstream_ms_p99"] = lat["p50"], lat["p99"]
    return points


def summarise(
    rows: Sequence[Mapping[str, Any]],
    *,
    prices: Mapping[str, Price],
    strong_price: Price,
    now: datetime,
    window_s: float,
    recent: int = 50,
    backend_tiers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Rows of one window (newest first) -> the log half of ``GET /dashboard/data``.
    ``prices`` and ``backend_tiers`` are keyed by backend name (from the policy)."""
    costs = [row_cost(r, prices, strong_price) for r in rows]
    counts = dict.fromkeys(TIERS, 0)
    for r in rows:
        if r.get("tier") in counts:
            counts[r["tier"]] += 1
    decided = sum(counts.values())
    spent = sum(c[0] for c in costs if c is not None)
    baseline = sum(c[1] for c in costs if c is not None)
    backends: dict[str, dict[str, Any]] = {}

    def backend(name: str) -> dict[str, Any]:
        return backends.setdefault(name, {"served": 0, "errors": 0, "fallbacks": {}})

    with_fallback = 0
    for r in rows:
        if r.get("backend") is not None:
            entry = backend(str(r["backend"]))
            entry["served"] += 1
            entry["errors"] += int(r.get("status") or 0) >= 400
        with_fallback += bool(r.get("fallbacks"))
        for text in map(str, r.get("fallbacks") or []):
            reason = text.split(": ", 1)[1] if ": " in text else "unknown"
            left = backend(fallback_backend(text))["fallbacks"]
            left[reason] = left.get(reason, 0) + 1
    step = bucket_seconds(window_s)
    return {
        "recent": [recent_row(r, backend_tiers or {}) for r in rows[:recent]],
        "tiers": {
            "counts": counts,
            "shares": {t: (counts[t] / decided if decided else None) for t in TIERS},
        },
        "series": {"bucket_seconds": step, "points": _series(rows, costs, step, now)},
        "cost": {
            "estimated_usd": spent,
            "strong_baseline_usd": baseline,
            "saved_usd": baseline - spent,
            "saved_pct": 100.0 * (baseline - spent) / baseline if baseline > 0 else None,
            "rows_with_usage": sum(c is not None for c in costs),
        },
        "latency": {
            "decision_us": latency(r.get("decision_us") for r in rows),
            "upstream_ms": latency(r.get("upstream_latency_ms") for r in rows),
            "total_ms": latency(r.get("total_ms") for r in rows),
        },
        "fallbacks": {"requests": with_fallback},
        "backends": backends,
        "errors": sum(int(r.get("status") or 0) >= 400 for r in rows),
    }
