"""Feedback rows -> strong_win label (``training.loop.feedback_dataset.request_label``):
property tests, plus agreement with the trainer's own per-row conversion."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from training.data.sources import feedback_label
from training.loop.feedback_dataset import request_label, votes

TIERS = st.sampled_from(["local", "primary", "strong"])
CHEAP = st.sampled_from(["local", "primary"])
BAR = st.sampled_from([4.0, 5.5, 6.0, 7.0])

judge_score = st.builds(
    lambda s, status: {"source": "judge", "score": s, "status": status},
    st.integers(1, 10),
    st.sampled_from(["ok", "ok", "ok", "failed"]),
)
pairwise = st.builds(
    lambda p, status: {"source": "judge", "preference": p, "status": status},
    st.sampled_from(["cheap", "strong", "tie"]),
    st.sampled_from(["ok", "ok", "failed"]),
)
user = st.one_of(
    st.builds(lambda t: {"source": "user", "thumbs": t, "status": "ok"}, st.sampled_from([1, -1])),
    st.builds(lambda s: {"source": "user", "score": s, "status": "ok"}, st.integers(1, 10)),
    st.builds(
        lambda t, s: {"source": "user", "thumbs": t, "score": s, "status": "ok"},
        st.sampled_from([1, -1]),
        st.integers(1, 10),
    ),
)
feedback_rows = st.lists(st.one_of(judge_score, pairwise, user), max_size=8)


def failed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(r, status="failed") for r in rows]


@given(feedback_rows, TIERS, BAR)
def test_label_is_binary_or_none_and_none_iff_no_vote(rows, tier, bar) -> None:
    label = request_label(rows, tier, bar)
    assert label in (0, 1, None)
    assert (label is None) == (not votes(rows, tier, bar))


@given(feedback_rows, TIERS, BAR, st.randoms())
def test_label_ignores_row_order(rows, tier, bar, rnd: random.Random) -> None:
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert request_label(shuffled, tier, bar) == request_label(rows, tier, bar)


@given(feedback_rows, feedback_rows, TIERS, BAR)
def test_failed_judgements_never_change_the_label(rows, extra, tier, bar) -> None:
    assert request_label(rows + failed(extra), tier, bar) == request_label(rows, tier, bar)


@given(st.integers(1, 10), TIERS, BAR)
def test_single_score_agrees_with_the_trainers_conversion(score, tier, bar) -> None:
    row = {"source": "judge", "score": score, "status": "ok"}
    assert request_label([row], tier, bar) == feedback_label({"score": score, "tier": tier}, bar)


@given(st.sampled_from(["cheap", "strong", "tie"]), TIERS)
def test_single_preference_agrees_with_the_trainers_conversion(pref, tier) -> None:
    row = {"source": "judge", "preference": pref, "status": "ok"}
    assert request_label([row], tier) == feedback_label({"preference": pref}, 6.0)


@given(feedback_rows, BAR)
def test_strong_tier_grades_alone_say_nothing(rows, bar) -> None:
    no_pref = [r for r in rows if "preference" not in r]
    assert request_label(no_pref, "strong", bar) is None


def _worsen(row: dict[str, Any]) -> dict[str, Any]:
    """The same feedback, saying the cheap answer was worse."""
    out = dict(row)
    if "preference" in out:
        out["preference"] = "strong"
    elif "score" in out:
        out["score"] = max(1, out["score"] - 3)
    elif "thumbs" in out:
        out["thumbs"] = -1
    return out


@settings(max_examples=300)
@given(feedback_rows, CHEAP, BAR, st.data())
def test_worse_feedback_never_lowers_the_label(rows, tier, bar, data) -> None:
    if not rows:
        return
    i = data.draw(st.integers(0, len(rows) - 1))
    worse = [*rows[:i], _worsen(rows[i]), *rows[i + 1 :]]
    before, after = request_label(rows, tier, bar), request_label(worse, tier, bar)
    if before is not None:
        assert after is not None and after >= before


@given(st.lists(st.integers(1, 10), min_size=1, max_size=6), CHEAP, BAR)
def test_unanimous_scores_give_their_label(scores, tier, bar) -> None:
    if len({s < bar for s in scores}) != 1:
        return
    rows = [{"source": "judge", "score": s, "status": "ok"} for s in scores]
    assert request_label(rows, tier, bar) == int(scores[0] < bar)


def test_pairwise_outweighs_one_score_and_ties_keep_cheap() -> None:
    low = {"source": "judge", "score": 2, "status": "ok"}  # votes 1
    cheap = {"source": "judge", "preference": "cheap", "status": "ok"}  # votes 0, weight 2
    up = {"source": "user", "thumbs": 1, "status": "ok"}  # votes 0
    down = {"source": "user", "thumbs": -1, "status": "ok"}  # votes 1
    assert request_label([low, cheap], "local") == 0
    assert request_label([low, up], "local") == 0  # 1:1 tie -> cheap
    assert request_label([low, down], "primary") == 1
    assert request_label([down], "strong") is None
