"""Scores -> a routing decision record, the one object every scorer returns.

``Scores`` is what a scorer computes (calibrated intent probabilities and the
calibrated ``strong_win_rate``); ``Decision`` adds the tier chosen by the policy,
the scorer's name and the wall time from raw messages to tier."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Tier = Literal["local", "primary", "strong"]
TIERS: tuple[Tier, ...] = ("local", "primary", "strong")


@dataclass(frozen=True, slots=True)
class Scores:
    """What a scorer says about one request, before any policy is applied."""

    intent_scores: dict[str, float]  # all 14 intents, summing to 1
    strong_win_rate: float  # calibrated P(strong tier answers materially better than local)
    complexity: float | None = None  # heuristic 0-100 score; None for the learned scorer
    n_tokens: int = 0  # tokens actually scored (after the text budget)

    @property
    def intent(self) -> str:
        return max(self.intent_scores, key=self.intent_scores.__getitem__)

    @property
    def intent_confidence(self) -> float:
        return self.intent_scores[self.intent]


@dataclass(frozen=True, slots=True)
class Decision:
    """A routing decision: the scores, the tier, and why."""

    intent: str
    intent_confidence: float
    intent_scores: dict[str, float]
    strong_win_rate: float
    tier: Tier
    reason: str
    scorer: str
    decision_us: float
    model_version: str | None = None
    complexity: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        extra = out.pop("extra")
        out.update(extra)
        return out


class Scorer(Protocol):
    """Anything that turns normalised messages into calibrated ``Scores``."""

    name: str
    version: str | None

    def score(self, messages: Sequence[Mapping[str, str]]) -> Scores: ...
