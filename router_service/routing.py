"""Scores -> tier: the pure routing function and its thresholds.

``RoutingPolicy`` is the ``routing:`` section of the policy YAML. ``choose_tier`` is a
pure function of (policy, scores, request flags) -> (tier, reason), applying the rules
in order, first match wins: privacy pin -> force -> per-intent thresholds on
``strong_win_rate`` (below ``local_below`` local, at or above ``strong_above`` strong,
primary between) -> default. ``decide`` times a scorer plus this function end to end."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router_service.decision import Decision, Scorer, Scores, Tier
from router_service.features import messages_from_payload
from router_service.intents import INTENTS


class Thresholds(BaseModel):
    """Per-intent cut points on the calibrated ``strong_win_rate``."""

    model_config = ConfigDict(extra="forbid")

    local_below: float = Field(ge=0.0, le=1.0)
    strong_above: float = Field(ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.local_below > self.strong_above:
            raise ValueError(
                f"local_below ({self.local_below}) must be <= strong_above ({self.strong_above})"
            )
        return self


# Defaults = the committed policy's thresholds (policies/default.yaml, where their origin is
# documented): one cut on the committed model's calibrated strong_win_rate for every intent,
# placed on 11,137 real ShareGPT first turns for 50% local / 30% primary / 20% strong. The
# model's probabilities already differ by intent (reasoning 41% strong, chitchat 5%), so one
# cut keeps that ordering. ``learned-router calibrate`` rewrites them from logged traffic.
# tests/test_service_policy.py checks these equal the committed policy's.
GLOBAL_CUT = (0.2342, 0.264)
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = dict.fromkeys(INTENTS, GLOBAL_CUT)


class HeuristicThresholds(BaseModel):
    """How the heuristic's 0-100 complexity maps to tiers (it is not a probability)."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(50.0, ge=0, le=100, description="complexity >= this leaves local")
    strong_threshold: float = Field(75.0, ge=0, le=100, description="complexity >= this: strong")
    local_token_cap: int = Field(3000, ge=1, description="prompts longer than this never local")


class RoutingPolicy(BaseModel):
    """The ``routing:`` section of the policy file."""

    model_config = ConfigDict(extra="forbid")

    default_tier: Tier = "primary"
    intents: dict[str, Thresholds] = Field(
        default_factory=lambda: {
            name: Thresholds(local_below=lo, strong_above=hi)
            for name, (lo, hi) in DEFAULT_THRESHOLDS.items()
        }
    )
    heuristic: HeuristicThresholds = Field(default_factory=HeuristicThresholds)

    @model_validator(mode="after")
    def _known_intents(self) -> RoutingPolicy:
        unknown = sorted(set(self.intents) - set(INTENTS))
        if unknown:
            raise ValueError(f"unknown intent(s) {unknown}; known intents: {list(INTENTS)}")
        return self


def choose_tier(
    policy: RoutingPolicy,
    scores: Scores,
    *,
    sensitive: bool = False,
    forced: Tier | None = None,
) -> tuple[Tier, str]:
    """(policy, scores, flags) -> (tier, reason). Pure; first matching rule wins."""
    if sensitive:
        return "local", "privacy: sensitive request pinned to local"
    if forced is not None:
        return forced, f"forced: {forced}"
    if scores.complexity is not None:
        h = policy.heuristic
        if scores.n_tokens > h.local_token_cap and scores.complexity < h.strong_threshold:
            return "primary", f"heuristic: {scores.n_tokens} tokens > local cap {h.local_token_cap}"
        if scores.complexity >= h.strong_threshold:
            reason = f"heuristic: complexity {scores.complexity:.0f} >= {h.strong_threshold:g}"
            return "strong", reason
        if scores.complexity >= h.threshold:
            return "primary", f"heuristic: complexity {scores.complexity:.0f} >= {h.threshold:g}"
        return "local", f"heuristic: complexity {scores.complexity:.0f} < {h.threshold:g}"
    intent = scores.intent
    cut = policy.intents.get(intent)
    if cut is None:
        return policy.default_tier, f"default: no thresholds for intent {intent}"
    p = scores.strong_win_rate
    if p < cut.local_below:
        return "local", f"{intent}: strong_win_rate {p:.3f} < {cut.local_below:g}"
    if p >= cut.strong_above:
        return "strong", f"{intent}: strong_win_rate {p:.3f} >= {cut.strong_above:g}"
    return "primary", (
        f"{intent}: {cut.local_below:g} <= strong_win_rate {p:.3f} < {cut.strong_above:g}"
    )


def decide(
    scorer: Scorer,
    policy: RoutingPolicy,
    payload: str | Sequence[Mapping[str, Any]],
    *,
    sensitive: bool = False,
    forced: Tier | None = None,
) -> Decision:
    """Raw prompt or messages -> ``Decision``; ``decision_us`` covers all of it."""
    start = time.perf_counter()
    messages = messages_from_payload(payload)
    scores = scorer.score(messages)
    tier, reason = choose_tier(policy, scores, sensitive=sensitive, forced=forced)
    elapsed_us = (time.perf_counter() - start) * 1e6
    intent = scores.intent
    return Decision(
        intent=intent,
        intent_confidence=scores.intent_scores[intent],
        intent_scores=scores.intent_scores,
        strong_win_rate=scores.strong_win_rate,
        tier=tier,
        reason=reason,
        scorer=scorer.name,
        decision_us=round(elapsed_us, 1),
        model_version=scorer.version,
        complexity=scores.complexity,
    )
