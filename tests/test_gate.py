"""Promotion gate decisions (``training.loop.gate.gate``): a pure function of two metric dicts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.loop.gate import GateConfig, gate

CHAMP = {"intent_accuracy": 0.80, "apgr": 0.60, "latency_p50_us": 120.0, "latency_p99_us": 600.0}
CFG = GateConfig(
    intent_accuracy_tol=0.01, apgr_tol=0.02, latency_p50_budget_us=500, latency_p99_budget_us=2000
)


def cand(**kw: float) -> dict[str, float]:
    return {**CHAMP, **kw}


def test_equal_candidate_is_promoted_with_a_reason_per_check() -> None:
    res = gate(cand(), CHAMP, CFG)
    assert res.promote
    assert len(res.reasons) == 4 and all(("ok" in r or "no champion" in r) for r in res.reasons)


@pytest.mark.parametrize(
    ("change", "promote", "word"),
    [
        ({"intent_accuracy": 0.795}, True, "ok"),  # within 0.01
        ({"intent_accuracy": 0.785}, False, "WORSE"),  # 0.015 worse
        ({"apgr": 0.585}, True, "ok"),  # within 0.02
        ({"apgr": 0.57}, False, "WORSE"),
        ({"intent_accuracy": 0.95, "apgr": 0.7}, True, "ok"),
        ({"latency_p50_us": 500.0}, True, "ok"),  # at the budget
        ({"latency_p50_us": 501.0}, False, "OVER BUDGET"),
        ({"latency_p99_us": 2500.0}, False, "OVER BUDGET"),
        ({"latency_p99_us": float("nan")}, False, "no finite"),
    ],
)
def test_each_check(change: dict[str, float], promote: bool, word: str) -> None:
    res = gate(cand(**change), CHAMP, CFG)
    assert res.promote is promote
    assert any(word in r for r in res.reasons)
    assert res.summary().startswith("PROMOTE" if promote else "KEEP CHAMPION")


def test_better_quality_does_not_buy_a_latency_overrun() -> None:
    res = gate(cand(intent_accuracy=0.99, apgr=0.9, latency_p99_us=10_000), CHAMP, CFG)
    assert not res.promote


def test_missing_candidate_metric_refuses() -> None:
    metrics = cand()
    del metrics["apgr"]
    res = gate(metrics, CHAMP, CFG)
    assert not res.promote and any("no finite 'apgr'" in r for r in res.reasons)


def test_first_model_needs_only_budgets_and_sane_metrics() -> None:
    assert gate(cand(), None, CFG).promote
    assert not gate(cand(latency_p50_us=900), None, CFG).promote
    partial = {k: v for k, v in CHAMP.items() if k != "apgr"}
    res = gate(cand(), partial, CFG)  # champion without APGR: that check is not compared
    assert res.promote and any("champion has no 'apgr'" in r for r in res.reasons)


def test_bools_and_strings_are_not_metrics() -> None:
    assert not gate(cand(apgr=True), CHAMP, CFG).promote  # type: ignore[arg-type]
    assert not gate({**CHAMP, "intent_accuracy": "0.9"}, CHAMP, CFG).promote


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError):
        GateConfig(apgr_tol=-0.1)
    with pytest.raises(ValueError):
        GateConfig(latency_p99_budget_us=0)
    assert gate(cand(latency_p99_us=1e9), CHAMP, GateConfig(latency_p99_budget_us=math.inf)).promote


finite = st.floats(0, 1, allow_nan=False)


@given(finite, finite, finite, finite, st.floats(0, 0.2), st.floats(0, 0.2))
def test_promotion_matches_the_rule(ci, ca, hi, ha, tol_i, tol_a) -> None:
    cfg = GateConfig(intent_accuracy_tol=tol_i, apgr_tol=tol_a)
    c = {"intent_accuracy": ci, "apgr": ca, "latency_p50_us": 100.0, "latency_p99_us": 100.0}
    h = {"intent_accuracy": hi, "apgr": ha}
    expected = (ci - hi >= -tol_i) and (ca - ha >= -tol_a)
    assert gate(c, h, cfg).promote is expected


@given(finite, finite, st.floats(0, 0.5), st.floats(0, 0.5))
def test_gate_is_monotone_in_candidate_quality(ci, ca, di, da) -> None:
    c = {"intent_accuracy": ci, "apgr": ca, "latency_p50_us": 1.0, "latency_p99_us": 1.0}
    better = {**c, "intent_accuracy": ci + di, "apgr": ca + da}
    if gate(c, CHAMP, CFG).promote:
        assert gate(better, CHAMP, CFG).promote
