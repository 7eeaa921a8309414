"""Judge prompts and reply parsing (``training.judge_prompts``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training import judge_prompts as jp


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("The answer is correct and concise.\nRating: [[7]]", 7),
        ("Rating: [[10]]", 10),
        ("rating: [[ 3 ]]", 3),
        ("Mostly right. Rating: [[7.5]]", 8),
        ("Mostly right. Rating: [[6,5]]", 7),
        ("Rating: [[8/10]]", 8),
        ("First I thought [[3]] but on reflection: Rating: [[6]]", 6),
        ("Good answer.\nRating: 9", 9),
        ("**Rating:** 4", 4),
        ("I would give it 5/10.", 5),
        ("Overall 6 out of 10", 6),
        ("See [1] and [2]. Rating: 8", 8),
        ("Final score: 2", 2),
    ],
)
def test_parse_rating_accepts_common_forms(reply: str, rating: int) -> None:
    assert jp.parse_rating(reply) == rating


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "   ",
        "The answer looks fine to me.",
        "Rating: [[0]]",
        "Rating: [[11]]",
        "Rating: [[seven]]",
        "Rating: 42",
    ],
)
def test_parse_rating_refuses_garbage(reply: str) -> None:
    with pytest.raises(jp.JudgeParseError):
        jp.parse_rating(reply)


@given(st.integers(1, 10), st.text(max_size=200))
def test_parse_rating_finds_the_requested_form_after_any_prose(n: int, prose: str) -> None:
    assert jp.parse_rating(f"{prose}\nRating: [[{n}]]") == n


@given(st.text(max_size=300))
def test_parse_rating_never_returns_out_of_range(text: str) -> None:
    try:
        value = jp.parse_rating(text)
    except jp.JudgeParseError:
        return
    assert 1 <= value <= 10


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("A is more accurate.\nVerdict: [[A]]", "A"),
        ("Verdict: [[b]]", "B"),
        ("They are equivalent. [[C]]", "C"),
        ("Verdict: B", "B"),
        ("Verdict: tie", "C"),
        ("[[A]] at first glance, but really [[B]]", "B"),
    ],
)
def test_parse_verdict(reply: str, verdict: str) -> None:
    assert jp.parse_verdict(reply) == verdict


@pytest.mark.parametrize("reply", ["", "Both answers have merit.", "Verdict: [[D]]"])
def test_parse_verdict_refuses_garbage(reply: str) -> None:
    with pytest.raises(jp.JudgeParseError):
        jp.parse_verdict(reply)


@pytest.mark.parametrize(
    ("cheap_first", "strong_first", "preference"),
    [
        ("A", "B", "cheap"),  # cheap wins in both orders
        ("B", "A", "strong"),  # strong wins in both orders
        ("C", "C", "tie"),
        ("A", "A", "tie"),  # always the first answer: position bias -> tie
        ("B", "B", "tie"),  # always the second answer
        ("A", "C", "tie"),
        ("C", "A", "tie"),
    ],
)
def test_combine_pairwise_cancels_position_bias(cheap_first, strong_first, preference) -> None:
    assert jp.combine_pairwise(cheap_first, strong_first) == preference


def test_prompts_carry_the_conversation_and_the_answer() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    single = jp.single_messages(messages, "4")
    assert single[0]["role"] == "system"
    text = single[1]["content"]
    assert "What is 2+2?" in text and "Be brief." in text and "<answer>\n4\n</answer>" in text
    assert "Rating: [[N]]" in text
    pair = jp.pairwise_messages(messages, "four", "4")
    assert "<answer_a>\nfour\n</answer_a>" in pair[1]["content"]
    assert "<answer_b>\n4\n</answer_b>" in pair[1]["content"]
    assert "[[A]]" in pair[1]["content"] and "[[C]]" in pair[1]["content"]


def test_long_inputs_are_bounded() -> None:
    messages = [{"role": "user", "content": "x" * 100_000}]
    text = jp.single_messages(messages, "y" * 100_000)[1]["content"]
    assert len(text) < jp.MAX_CONTEXT_CHARS + jp.MAX_ANSWER_CHARS + 2000
    assert "truncated" in text


def test_rationale_drops_the_rating_line() -> None:
    reply = "Correct, but the second step is unexplained.\nRating: [[7]]"
    assert jp.rationale_of(reply) == "Correct, but the second step is unexplained."
    assert len(jp.rationale_of("word " * 1000)) <= jp.MAX_RATIONALE_CHARS
