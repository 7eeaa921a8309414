"""(candidate metrics, champion metrics, tolerances) -> (promote?, reasons): the promotion gate.

A pure function, no I/O. A candidate is promoted only if

* its intent accuracy is not below the champion's by more than ``intent_accuracy_tol``,
* its routing quality (APGR) is not below the champion's by more than ``apgr_tol``,
* its decision latency p50 and p99 are within the absolute budgets (µs),

all measured on the same held-out set. With no champion (first model) the quality
comparisons pass and only the budgets and metric sanity apply. Every check contributes one
human-readable reason, so the printed list explains a refusal and a promotion alike."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# Metric names (keys of the metric dicts the evaluation produces).
INTENT_ACCURACY = "intent_accuracy"
APGR = "apgr"
LATENCY_P50 = "latency_p50_us"
LATENCY_P99 = "latency_p99_us"


@dataclass(frozen=True, slots=True)
class GateConfig:
    """How much worse a candidate may be, and the latency budget it must meet."""

    intent_accuracy_tol: float = 0.01  # absolute (0.01 = one accuracy point)
    apgr_tol: float = 0.01  # absolute APGR
    latency_p50_budget_us: float = 1000.0
    latency_p99_budget_us: float = 5000.0
    intent_key: str = INTENT_ACCURACY
    apgr_key: str = APGR
    p50_key: str = LATENCY_P50
    p99_key: str = LATENCY_P99

    def __post_init__(self) -> None:
        for name in ("intent_accuracy_tol", "apgr_tol"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("latency_p50_budget_us", "latency_p99_budget_us"):
            value = getattr(self, name)
            if not (value > 0):  # inf allowed: "no budget"
                raise ValueError(f"{name} must be > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class GateResult:
    promote: bool
    reasons: tuple[str, ...]

    def summary(self) -> str:
        head = "PROMOTE" if self.promote else "KEEP CHAMPION (candidate not promoted)"
        return head + "".join(f"\n  - {r}" for r in self.reasons)


def _metric(metrics: Mapping[str, object] | None, key: str) -> float | None:
    if metrics is None:
        return None
    value = metrics.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _quality(
    label: str,
    key: str,
    tol: float,
    candidate: Mapping[str, object],
    champion: Mapping[str, object] | None,
) -> tuple[bool, str]:
    cand = _metric(candidate, key)
    if cand is None:
        return False, f"{label}: candidate has no finite {key!r} metric"
    champ = _metric(champion, key)
    if champion is None:
        return True, f"{label}: {cand:.4f} (no champion to compare with)"
    if champ is None:
        return True, f"{label}: {cand:.4f} (champion has no {key!r}; not compared)"
    delta = cand - champ
    ok = delta >= -tol
    verdict = "ok" if ok else "WORSE"
    return ok, (
        f"{label}: candidate {cand:.4f} vs champion {champ:.4f} "
        f"(delta {delta:+.4f}, tolerance -{tol:g}): {verdict}"
    )


def _latency(
    label: str, key: str, budget: float, candidate: Mapping[str, object]
) -> tuple[bool, str]:
    value = _metric(candidate, key)
    if value is None:
        return False, f"{label}: candidate has no finite {key!r} metric"
    ok = value <= budget
    verdict = "ok" if ok else "OVER BUDGET"
    return ok, f"{label}: {value:.1f} µs (budget {budget:g} µs): {verdict}"


def gate(
    candidate: Mapping[str, object],
    champion: Mapping[str, object] | None,
    config: GateConfig | None = None,
) -> GateResult:
    """Metric dicts (same held-out set) -> ``GateResult(promote, reasons)``."""
    cfg = config or GateConfig()
    checks = [
        _quality("intent accuracy", cfg.intent_key, cfg.intent_accuracy_tol, candidate, champion),
        _quality("routing quality (APGR)", cfg.apgr_key, cfg.apgr_tol, candidate, champion),
        _latency("decision latency p50", cfg.p50_key, cfg.latency_p50_budget_us, candidate),
        _latency("decision latency p99", cfg.p99_key, cfg.latency_p99_budget_us, candidate),
    ]
    return GateResult(all(ok for ok, _ in checks), tuple(reason for _, reason in checks))
