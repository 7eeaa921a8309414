"""conversation_view / scored_text: which part of a conversation the scorers read."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.features import (
    CONTEXT_CHARS,
    FOLLOW_UP_CHARS,
    HEAD_CHARS,
    TAIL_CHARS,
    conversation_view,
    scored_text,
)
from router_service.heuristic import HeuristicScorer

STORY = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def convo(*turns: str, system: str | None = None) -> list[dict[str, str]]:
    roles = ["user", "assistant"]
    out = [{"role": "system", "content": system}] if system else []
    return out + [{"role": roles[i % 2], "content": t} for i, t in enumerate(turns)]


def test_a_short_follow_up_is_read_after_the_turn_it_continues() -> None:
    messages = convo(STORY, "Once upon a time...", "continue")
    assert scored_text(messages) == STORY + "\ncontinue"


def test_a_self_contained_last_turn_is_read_alone() -> None:
    long_turn = "Now explain, step by step, " + "how a Fresnel lens focuses light. " * 40
    assert len(long_turn) >= FOLLOW_UP_CHARS
    assert conversation_view(convo(STORY, "Once upon a time...", long_turn)) == long_turn
    assert scored_text(convo(STORY, "Once upon a time...", long_turn)) == scored_text(
        convo(long_turn)
    )


def test_one_turn_system_prompts_and_assistant_turns_add_nothing() -> None:
    assert scored_text(convo("continue", system="You are terse.")) == "continue"
    # the context is the previous *user* turn, never the assistant's answer or the system
    messages = convo("hi", "Hello! How can I help?", "thanks", system="You are terse.")
    assert scored_text(messages) == "hi\nthanks"


def test_the_context_is_cut_to_its_head() -> None:
    first = "Translate to French: " + "the sea is calm tonight. " * 60
    view = conversation_view(convo(first, "La mer...", "shorter please"))
    assert view == first[:CONTEXT_CHARS].strip() + "\nshorter please"
    assert conversation_view(convo(first, "La mer...", "ok"), follow_up_chars=0) == "ok"


def test_blank_turns_are_skipped() -> None:
    messages = convo(STORY, "...", "   ", "...", "go on")
    assert scored_text(messages) == STORY + "\ngo on"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=3000), min_size=1, max_size=6))
def test_the_view_stays_inside_the_text_budget(turns: list[str]) -> None:
    assert len(scored_text(convo(*turns))) <= HEAD_CHARS + TAIL_CHARS + 1


def test_the_heuristic_reads_the_task_a_follow_up_continues() -> None:
    scorer = HeuristicScorer()
    code = "Write a Python function that returns the n-th Fibonacci number."
    follow_up = convo(code, "def fib(n): ...", "now make it iterative")
    assert scorer.score(convo("now make it iterative")).intent != "coding"  # alone: no task
    assert scorer.score(follow_up).intent == "coding"
