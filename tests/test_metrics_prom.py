"""router_service.metrics: per-instance registries, Prometheus text and the JSON view."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from router_service.decision import Decision
from router_service.metrics import RouterMetrics


def decision(tier: str = "strong", intent: str = "math", us: float = 120.0) -> Decision:
    return Decision(
        intent=intent,
        intent_confidence=0.9,
        intent_scores={intent: 0.9},
        strong_win_rate=0.7,
        tier=tier,  # type: ignore[arg-type]
        reason="r",
        scorer="learned",
        decision_us=us,
    )


def samples(m: RouterMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, _ = m.render_prometheus()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_instances_are_independent() -> None:
    a, b = RouterMetrics(), RouterMetrics()
    a.observe_request("/v1/chat/completions", 200)
    assert (
        samples(a)[
            ("router_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "200")))
        ]
        == 1
    )
    assert not any(name == "router_requests_total" for name, _ in samples(b))


def test_prometheus_exposition() -> None:
    m = RouterMetrics()
    m.observe_request("/v1/chat/completions", 200)
    m.observe_request("/v1/chat/completions", 200)
    m.observe_request("/v1/chat/completions", 502)
    m.observe_decision(decision("strong", "math", 30.0))
    m.observe_decision(decision("local", "chitchat", 4000.0))
    m.observe_fallback("local", "primary", "timeout")
    m.observe_upstream("primary", "openai-mini", 0.3, True)
    m.observe_upstream("local", "llamacpp", 1.5, False)
    body, content_type = m.render_prometheus()
    assert content_type.startswith("text/plain")
    s = samples(m)
    assert (
        s[("router_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "200")))] == 2
    )
    assert (
        s[("router_requests_total", (("endpoint", "/v1/chat/completions"), ("status", "502")))] == 1
    )
    key = (("intent", "math"), ("scorer", "learned"), ("tier", "strong"))
    assert s[("router_decisions_total", key)] == 1
    assert s[("router_decision_latency_microseconds_bucket", (("le", "50.0"),))] == 1
    assert s[("router_decision_latency_microseconds_bucket", (("le", "5000.0"),))] == 2
    assert s[("router_decision_latency_microseconds_bucket", (("le", "25.0"),))] == 0
    assert s[("router_decision_latency_microseconds_sum", ())] == 4030.0
    fb = (("from_tier", "local"), ("reason", "timeout"), ("to_tier", "primary"))
    assert s[("router_fallbacks_total", fb)] == 1
    up = (("backend", "llamacpp"), ("outcome", "error"), ("tier", "local"))
    assert s[("router_upstream_requests_total", up)] == 1
    assert s[("router_upstream_latency_seconds_sum", up)] == 1.5
    assert b"# TYPE router_decision_latency_microseconds histogram" in body


def test_usage_cost_and_savings() -> None:
    m = RouterMetrics()
    # local: free; strong baseline $3 in / $15 out per 1M
    m.observe_usage("local", 1_000_000, 100_000, 0.0, 0.0, 3.0, 15.0)
    # primary: $0.15 / $0.60
    m.observe_usage("primary", 2_000_000, 0, 0.15, 0.60, 3.0, 15.0)
    # strong itself: no saving
    m.observe_usage("strong", 100_000, 100_000, 3.0, 15.0, 3.0, 15.0)
    s = samples(m)
    assert s[("router_tokens_total", (("kind", "prompt"), ("tier", "local")))] == 1_000_000
    assert s[("router_tokens_total", (("kind", "completion"), ("tier", "strong")))] == 100_000
    assert s[("router_estimated_cost_usd_total", (("tier", "primary"),))] == pytest.approx(0.30)
    assert s[("router_estimated_cost_usd_total", (("tier", "local"),))] == 0.0
    baseline = 3.0 + 1.5 + 6.0 + 0.3 + 1.5
    actual = 0.30 + 0.3 + 1.5
    assert s[("router_estimated_cost_saved_usd", ())] == pytest.approx(baseline - actual)
    summary = m.as_json()["summary"]
    assert summary["estimated_cost_usd"] == pytest.approx(actual)
    assert summary["estimated_strong_baseline_cost_usd"] == pytest.approx(baseline)
    assert summary["estimated_cost_saved_usd"] == pytest.approx(baseline - actual)


def test_usage_rejects_negative_prices_and_tolerates_missing_tokens() -> None:
    m = RouterMetrics()
    with pytest.raises(ValueError, match="prices"):
        m.observe_usage("primary", 10, 10, -1.0, 0.0, 3.0, 15.0)
    m.observe_usage("primary", None, None, 1.0, 1.0, 3.0, 15.0)  # type: ignore[arg-type]
    assert m.as_json()["summary"]["estimated_cost_usd"] == 0.0


def test_json_matches_prometheus() -> None:
    m = RouterMetrics()
    for _ in range(3):
        m.observe_request("/v1/classify", 200)
    m.observe_decision(decision("primary", "coding", 80.0))
    m.observe_decision(decision("primary", "coding", 120.0))
    m.observe_upstream("primary", "openai-mini", 0.2, True)
    data = m.as_json()
    metrics = data["metrics"]
    (req,) = metrics["router_requests"]["samples"]
    assert req == {"labels": {"endpoint": "/v1/classify", "status": "200"}, "value": 3.0}
    (lat,) = metrics["router_decision_latency_microseconds"]["samples"]
    assert lat["count"] == 2 and lat["sum"] == 200.0
    assert lat["buckets"]["100.0"] == 1 and lat["buckets"]["+Inf"] == 2
    assert metrics["router_decisions"]["type"] == "counter"
    summary = data["summary"]
    assert summary["requests"] == 3
    assert summary["decisions_by_tier"] == {"primary": 2}
    assert summary["decisions_by_intent"] == {"coding": 2}
    assert summary["decision_latency_us_mean"] == 100.0
    prom = samples(m)
    assert prom[("router_decision_latency_microseconds_count", ())] == lat["count"]


def test_non_finite_observations_are_ignored() -> None:
    m = RouterMetrics()
    m.observe_decision(decision(us=float("nan")))
    m.observe_upstream("strong", "x", float("inf"), True)
    lat = m.as_json()["metrics"]["router_decision_latency_microseconds"]["samples"][0]
    assert lat["count"] == 0
    assert m.as_json()["summary"]["decisions_by_tier"] == {"strong": 1}
