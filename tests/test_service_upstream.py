"""Circuit breaker, latency tracker and the plan (fallback chain, privacy pin, forced
tiers, disabled tiers, latency budgets) as plain objects, with an injected clock."""

from __future__ import annotations

from typing import Any

from router_service.backends import build_backend
from router_service.policy import (
    CircuitBreakerConfig,
    LatencyConfig,
    parse_policy,
    resolve_backends,
)
from router_service.upstream import BackendSlot, CircuitBreaker, LatencyTracker, Upstream


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_half_opens_and_closes():
    clock = Clock()
    b = CircuitBreaker(CircuitBreakerConfig(failures=3, cooldown_seconds=10), clock)
    b.failure()
    b.failure()
    assert b.state == "closed" and b.allow()
    b.success()  # resets the streak: failures must be consecutive
    for _ in range(3):
        b.failure()
    assert b.state == "open" and not b.allow()
    clock.now += 9.9
    assert not b.allow()
    clock.now += 0.2
    assert b.state == "half_open"
    assert b.allow(), "one trial request after the cool-down"
    assert not b.allow(), "only one trial at a time"
    b.failure()  # the trial failed: open again for a full cool-down
    assert b.state == "open" and not b.available()
    clock.now += 10.1
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def test_breaker_abandoned_trial_frees_the_slot():
    clock = Clock()
    b = CircuitBreaker(CircuitBreakerConfig(failures=1, cooldown_seconds=0), clock)
    b.failure()
    assert b.allow() and not b.allow()
    b.release()
    assert b.allow()


def test_latency_tracker_uses_expected_until_enough_samples():
    t = LatencyTracker(LatencyConfig(window=4, min_samples=3), expected_ms=500)
    assert t.p50_ms() == 500
    t.add(0.1)
    t.add(0.3)
    assert t.p50_ms() == 500
    t.add(0.2)
    assert t.p50_ms() == 200
    for _ in range(4):
        t.add(2.0)  # the window forgets old samples
    assert t.p50_ms() == 2000


def _upstream(policy: dict[str, Any], env: dict[str, str] | None = None) -> Upstream:
    p = parse_policy(policy)
    slots = [
        BackendSlot(
            build_backend(b),
            b.tier,
            b.enabled,
            b.disabled_reason,
            CircuitBreaker(p.circuit_breaker),
            LatencyTracker(p.latency, b.config.expected_latency_ms),
        )
        for b in resolve_backends(p, {"K": "1"} if env is None else env)
    ]
    return Upstream(p, slots)


def _b(name: str, ms: float | None = None, key: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "type": "openai",
        "base_url": "http://127.0.0.1:1/v1",
        "model": f"{name}-model",
    }
    if ms is not None:
        out["expected_latency_ms"] = ms
    if key:
        out["api_key_env"] = "K"
    return out


POLICY: dict[str, Any] = {
    "tiers": {
        "local": {"backends": [_b("l1", 100), _b("l2", 100)]},
        "primary": {"backends": [_b("p1", 3000, key=True)]},
        "strong": {"backends": [_b("s1", 4000, key=True), _b("s2", 4000, key=True)]},
    },
    "latency": {"budgets_ms": {"chitchat": 1000}},
}


def names(plan: Any) -> list[str]:
    return [s.backend.name for s in plan.slots]


def test_plan_follows_the_fallback_chain():
    up = _upstream(POLICY)
    assert names(up.plan("local")) == ["l1", "l2", "p1", "s1", "s2"]
    assert names(up.plan("primary")) == ["p1", "s1", "s2"]
    assert names(up.plan("strong")) == ["s1", "s2"]
    assert names(up.plan("strong", preferred="s2")) == ["s2", "s1"]


def test_plan_privacy_forced_and_disabled():
    up = _upstream(POLICY)
    assert names(up.plan("strong", sensitive=True)) == ["l1", "l2"]
    assert names(up.plan("local", forced=True)) == ["l1", "l2"]
    no_keys = _upstream(POLICY, env={})
    assert names(no_keys.plan("local")) == ["l1", "l2"]
    assert no_keys.plan("strong", forced=True).slots == []
    assert no_keys.plan("strong", forced=True).disabled == [
        "s1: $K is not set",
        "s2: $K is not set",
    ]
    auto = no_keys.plan("strong")  # nothing in strong's chain is enabled: use what is
    assert names(auto) == ["l1", "l2"] and "disabled" in (auto.note or "")
    with_forced_fallback = _upstream({**POLICY, "fallback_on_forced": True})
    assert names(with_forced_fallback.plan("local", forced=True)) == ["l1", "l2", "p1", "s1", "s2"]


def test_plan_latency_budget_spills_to_a_faster_tier():
    up = _upstream(POLICY)
    plan = up.plan("primary", budget_rule="chitchat")
    assert names(plan) == ["l1", "l2", "p1", "s1", "s2"]
    assert "p50 3000 ms > 1000 ms -> local" in (plan.note or "")
    assert names(up.plan("primary", budget_rule="coding")) == ["p1", "s1", "s2"], "no budget"
    assert names(up.plan("primary", budget_rule="chitchat", forced=True)) == ["p1"]
    # observed latencies replace the expectation once there are enough samples
    for slot in up.by_tier["primary"]:
        for _ in range(5):
            slot.latency.add(0.2)
    assert up.plan("primary", budget_rule="chitchat").note is None
