"""The blend's fast keyword pass must give the heuristic's keyword-only intents."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.features import budget_text
from router_service.heuristic import HeuristicScorer
from router_service.intent_blend import VIEW_HEAD_CHARS, VIEW_TAIL_CHARS
from router_service.intent_keywords import keyword_probs

SCORER = HeuristicScorer()

CASES = [
    "",
    "?",
    "\n",
    "hi\n",
    "hi\n\n  \n",
    "Hi! Can you write a cover letter for a data analyst job? I have three years of SQL.",
    "Summarize this:\n" + "the quarterly report shows revenue grew " * 20,
    "what is c++ and how does it work? tl;dr please",
    "Translate 'good morning' into German",
    "你好，谢谢",
    "日本語で自己紹介を書いてください。",
    "-- ' _ 'hi' -x- it’s “quoted”",
    "Explain the difference between TCP and UDP.\nKeep it short.",
    "a\nb",
    "1234 5678",
]


def reference(text: str) -> list[float]:
    return SCORER.intent_probs(text, structure=False)


@pytest.mark.parametrize("text", CASES)
def test_known_cases_match_the_heuristic(text: str) -> None:
    np.testing.assert_allclose(keyword_probs(text), reference(text), rtol=0, atol=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(["hi", "write", "code", "explain", "what is", "in french", "?", ":"]),
            st.sampled_from(["\n", " ", "'", "-", "c++", "~", "translate", "story", "bug"]),
            st.text(max_size=8),
        ),
        max_size=60,
    ).map("".join)
)
def test_random_texts_match_the_heuristic(text: str) -> None:
    np.testing.assert_allclose(keyword_probs(text), reference(text), rtol=0, atol=1e-12)


def test_sharegpt_views_match_the_heuristic() -> None:
    """Every real ShareGPT first turn, read on the blend's view, as serving does."""
    sharegpt = pytest.importorskip("training.data.sharegpt")
    texts = [
        budget_text(budget_text(t).strip(), VIEW_HEAD_CHARS, VIEW_TAIL_CHARS)
        for t in sharegpt.first_human_turns().values()
    ]
    assert len(texts) > 10_000
    fast = np.array([keyword_probs(t) for t in texts])
    slow = np.array([reference(t) for t in texts])
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
