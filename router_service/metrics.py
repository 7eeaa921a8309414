"""Router events -> Prometheus metrics (text exposition) and the same numbers as JSON.

Each ``RouterMetrics`` owns its own ``CollectorRegistry`` so many apps (tests) can coexist
in one process. Costs are estimates from the policy's per-1M-token prices; "saved" is
what always sending the request to the strong tier would have cost minus what it did."""

from __future__ import annotations

import math
import threading
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from router_service.decision import Decision

PREFIX = "router"
DECISION_US_BUCKETS: tuple[float, ...] = (
    25, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000
)  # fmt: skip
UPSTREAM_S_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 120
)  # fmt: skip
WIN_RATE_BUCKETS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(1, 11))


class RouterMetrics:
    """Counters and histograms of one router app, in a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r, ns = self.registry, PREFIX
        self._lock = threading.Lock()
        self.requests = Counter(
            "requests", "HTTP requests by endpoint and status code", ["endpoint", "status"],
            namespace=ns, registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            "decisions", "Routing decisions by tier, intent and scorer",
            ["tier", "intent", "scorer"], namespace=ns, registry=r,
        )  # fmt: skip
        self.decision_latency = Histogram(
            "decision_latency_microseconds", "Messages -> tier wall time (µs)",
            buckets=DECISION_US_BUCKETS, namespace=ns, registry=r,
        )  # fmt: skip
        self.strong_win_rate = Histogram(
            "strong_win_rate", "Calibrated strong_win_rate of routed requests", ["tier"],
            buckets=WIN_RATE_BUCKETS, namespace=ns, registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "fallbacks", "Fallbacks from one tier to another and why",
            ["from_tier", "to_tier", "reason"], namespace=ns, registry=r,
        )  # fmt: skip
        self.upstream_requests = Counter(
            "upstream_requests", "Upstream model calls by tier, backend and outcome",
            ["tier", "backend", "outcome"], namespace=ns, registry=r,
        )  # fmt: skip
        self.upstream_latency = Histogram(
            "upstream_latency_seconds", "Upstream model call latency (s)",
            ["tier", "backend", "outcome"], buckets=UPSTREAM_S_BUCKETS, namespace=ns, registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "tokens", "Tokens by tier and kind (prompt, completion)", ["tier", "kind"],
            namespace=ns, registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "estimated_cost_usd", "Estimated spend (USD) by tier", ["tier"],
            namespace=ns, registry=r,
        )  # fmt: skip
        self.strong_cost = Counter(
            "estimated_strong_baseline_cost_usd",
            "Estimated spend (USD) had every request gone to the strong tier", ["tier"],
            namespace=ns, registry=r,
        )  # fmt: skip
        self.saved = Gauge(
            "estimated_cost_saved_usd",
            "Strong-baseline cost minus estimated spend (USD), all tiers",
            namespace=ns, registry=r,
        )  # fmt: skip
        self._cost_total = 0.0
        self._baseline_total = 0.0
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, cached: prometheus_client validates and locks on
        every ``labels`` call (~3 µs), and label sets repeat (tiers, intents, backends)."""
        key = (metric, labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- observations -----------------------------------------------------------------
    def observe_decision(self, decision: Decision) -> None:
        self._child(self.decisions, decision.tier, decision.intent, decision.scorer).inc()
        if math.isfinite(decision.decision_us):
            self.decision_latency.observe(decision.decision_us)
        if math.isfinite(decision.strong_win_rate):
            self._child(self.strong_win_rate, decision.tier).observe(decision.strong_win_rate)

    def observe_request(self, endpoint: str, status: int) -> None:
        self._child(self.requests, endpoint, str(int(status))).inc()

    def observe_upstream(self, tier: str, backend: str, seconds: float, ok: bool) -> None:
        outcome = "ok" if ok else "error"
        self._child(self.upstream_requests, tier, backend, outcome).inc()
        if math.isfinite(seconds) and seconds >= 0:
            self._child(self.upstream_latency, tier, backend, outcome).observe(seconds)

    def observe_fallback(self, from_tier: str, to_tier: str, reason: str) -> None:
        """``reason`` should be a short category (timeout, http_5xx, connect_error, ...)."""
        self._child(self.fallbacks, from_tier, to_tier, reason).inc()

    def observe_usage(
        self,
        tier: str,
        prompt_tokens: int,
        completion_tokens: int,
        price_in_per_1m: float,
        price_out_per_1m: float,
        strong_price_in_per_1m: float,
        strong_price_out_per_1m: float,
    ) -> None:
        """Token counts and prices (USD per 1M tokens) -> tokens, cost, strong baseline."""
        p_in, p_out = max(int(prompt_tokens or 0), 0), max(int(completion_tokens or 0), 0)
        self._child(self.tokens, tier, "prompt").inc(p_in)
        self._child(self.tokens, tier, "completion").inc(p_out)
        cost = (p_in * price_in_per_1m + p_out * price_out_per_1m) / 1e6
        baseline = (p_in * strong_price_in_per_1m + p_out * strong_price_out_per_1m) / 1e6
        if not (math.isfinite(cost) and math.isfinite(baseline)) or cost < 0 or baseline < 0:
            raise ValueError(f"prices must be finite and >= 0 (cost {cost}, baseline {baseline})")
        self._child(self.cost, tier).inc(cost)
        self._child(self.strong_cost, tier).inc(baseline)
        with self._lock:
            self._cost_total += cost
            self._baseline_total += baseline
            self.saved.set(self._baseline_total - self._cost_total)

    # -- exposition -------------------------------------------------------------------
    def render_prometheus(self) -> tuple[bytes, str]:
        """-> (body, content type) for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def as_json(self) -> dict[str, Any]:
        """The registry as JSON: ``{"metrics": {name: {...}}, "summary": {...}}``.

        Counters/gauges: ``{"type", "help", "samples": [{"labels", "value"}]}``;
        histograms: samples ``{"labels", "count", "sum", "buckets": {le: cumulative}}``."""
        metrics: dict[str, Any] = {}
        for family in self.registry.collect():
            entry: dict[str, Any] = {"type": family.type, "help": family.documentation}
            if family.type == "histogram":
                groups: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
                for s in family.samples:
                    labels = {k: v for k, v in s.labels.items() if k != "le"}
                    key = tuple(sorted(labels.items()))
                    g = groups.setdefault(
                        key, {"labels": labels, "count": 0.0, "sum": 0.0, "buckets": {}}
                    )
                    if s.name.endswith("_bucket"):
                        g["buckets"][s.labels["le"]] = s.value
                    elif s.name.endswith("_count"):
                        g["count"] = s.value
                    elif s.name.endswith("_sum"):
                        g["sum"] = s.value
                entry["samples"] = list(groups.values())
            else:
                entry["samples"] = [
                    {"labels": dict(s.labels), "value": s.value}
                    for s in family.samples
                    if not s.name.endswith("_created")
                ]
            metrics[family.name] = entry
        return {"metrics": metrics, "summary": self._summary(metrics)}

    def _summary(self, metrics: dict[str, Any]) -> dict[str, Any]:
        def by(name: str, label: str) -> dict[str, float]:
            out: dict[str, float] = {}
            for s in metrics.get(name, {}).get("samples", []):
                key = s["labels"].get(label, "")
                out[key] = out.get(key, 0.0) + s["value"]
            return out

        ns = PREFIX
        latency = metrics.get(f"{ns}_decision_latency_microseconds", {}).get("samples", [])
        lat = latency[0] if latency else {"count": 0.0, "sum": 0.0}
        with self._lock:
            cost, baseline = self._cost_total, self._baseline_total
        return {
            "requests": sum(by(f"{ns}_requests", "endpoint").values()),
            "requests_by_status": by(f"{ns}_requests", "status"),
            "decisions_by_tier": by(f"{ns}_decisions", "tier"),
            "decisions_by_intent": by(f"{ns}_decisions", "intent"),
            "fallbacks": sum(by(f"{ns}_fallbacks", "reason").values()),
            "decision_latency_us_mean": lat["sum"] / lat["count"] if lat["count"] else None,
            "tokens_by_kind": by(f"{ns}_tokens", "kind"),
            "estimated_cost_usd": cost,
            "estimated_strong_baseline_cost_usd": baseline,
            "estimated_cost_saved_usd": baseline - cost,
        }
