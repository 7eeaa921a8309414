"""Judge prompts and reply parsing (``training.loop.judge_prompts``)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.loop import judge_prompts as jp


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("The answer is correct and concise.\nRating: [[7]]", 7),
        ("Rating: [[10]]", 10),
        ("rating: [[ 3 ]]", 3),
        ("RATING:[[1]]", 1),
        ("**Rating:** [[4]]", 4),
        ("**Rating**: **[[9]]**", 9),
        ("Rating: [[7]]\n\n", 7),
        ("Short.\nRating: [[6]]\nRating: [[6]]", 6),  # repeated, not conflicting
        ("Scored as asked, 7 out of 10.\nRating: [[7]]", 7),  # prose aside the marker
    ],
)
def test_parse_rating_accepts_the_requested_form(reply: str, rating: int) -> None:
    assert jp.parse_rating(reply) == rating


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("The answer looks fine to me.", "no 'Rating"),
        # prose ratings without the requested form are not read as scores
        ("Good answer.\nRating: 9", "no 'Rating"),
        ("**Rating:** 4", "no 'Rating"),
        ("I would give it 5/10.", "no 'Rating"),
        ("Overall 6 out of 10", "no 'Rating"),
        ("See [1] and [2]. I rate it [5].", "no 'Rating"),
        ("Final score of 3", "no 'Rating"),
        ("[[7]]", "no 'Rating"),  # brackets without the label
        ("Overrating: [[7]]", "no 'Rating"),
        ("Rating: [[0]]", "integer 1-10"),
        ("Rating: [[11]]", "integer 1-10"),
        ("Rating: [[seven]]", "integer 1-10"),
        ("Mostly right. Rating: [[7.5]]", "integer 1-10"),
        ("Rating: [[8/10]]", "integer 1-10"),
        ("Rating: [[N]] ... Rating: [[7]]", "integer 1-10"),
        ("Rating: [[3]]\nOn reflection, Rating: [[6]]", "conflicting"),
        ("First I thought [[3]] but on reflection: Rating: [[6]]", "conflicting"),
    ],
)
def test_parse_rating_refuses_anything_else(reply: str, why: str) -> None:
    with pytest.raises(jp.JudgeParseError, match=re.escape(why)):
        jp.parse_rating(reply)


def test_the_prompts_ask_for_the_forms_the_parsers_read() -> None:
    asked = re.search(r"format: (Rating: \[\[N\]\]) where N is an integer", jp.SINGLE_TEMPLATE)
    assert asked is not None
    assert [jp.parse_rating(asked.group(1).replace("N", str(n))) for n in (1, 10)] == [1, 10]
    asked = re.search(r"format: (Verdict: )\[\[A\]\]", jp.PAIRWISE_TEMPLATE)
    assert asked is not None
    letters = re.findall(r"\[\[([A-Z])\]\]", jp.PAIRWISE_TEMPLATE)
    assert letters == ["A", "B", "C"]
    assert [jp.parse_verdict(f"{asked.group(1)}[[{x}]]") for x in letters] == letters


no_brackets = st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=200)


@given(st.integers(1, 10), no_brackets, st.sampled_from(["Rating:", "rating :", "**Rating:**"]))
def test_parse_rating_finds_the_requested_form_after_any_prose(
    n: int, prose: str, label: str
) -> None:
    assert jp.parse_rating(f"{prose}\n{label} [[{n}]]") == n


@given(st.text(max_size=300).filter(lambda t: "[[" not in t))
def test_parse_rating_never_reads_prose_without_the_form(text: str) -> None:
    with pytest.raises(jp.JudgeParseError):
        jp.parse_rating(text)


@given(st.integers(1, 10), st.integers(1, 10), no_brackets)
def test_two_different_ratings_are_a_failure(n: int, m: int, prose: str) -> None:
    reply = f"Rating: [[{n}]]\n{prose}\nRating: [[{m}]]"
    if n == m:
        assert jp.parse_rating(reply) == n
    else:
        with pytest.raises(jp.JudgeParseError, match="conflicting"):
            jp.parse_rating(reply)


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
        ("They are equivalent.\n**Verdict:** [[C]]", "C"),
        ("verdict :[[ A ]]", "A"),
        ("Answer [[B]] is clearer.\nVerdict: [[B]]", "B"),  # agreeing bracket
    ],
)
def test_parse_verdict(reply: str, verdict: str) -> None:
    assert jp.parse_verdict(reply) == verdict


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("", "empty"),
        ("Both answers have merit.", "no 'Verdict"),
        ("They are equivalent. [[C]]", "no 'Verdict"),
        ("Verdict: B", "no 'Verdict"),
        ("Verdict: tie", "no 'Verdict"),
        ("Verdict: [[D]]", "A, B or C"),
        ("Verdict: [[tie]]", "A, B or C"),
        ("Verdict: [[A]] at first glance, but really Verdict: [[B]]", "conflicting"),
        ("[[A]] at first glance, but really Verdict: [[B]]", "conflicting"),
    ],
)
def test_parse_verdict_refuses_anything_else(reply: str, why: str) -> None:
    with pytest.raises(jp.JudgeParseError, match=re.escape(why)):
        jp.parse_verdict(reply)


@given(st.sampled_from("ABCabc"), no_brackets)
def test_parse_verdict_finds_the_requested_form_after_any_prose(letter: str, prose: str) -> None:
    assert jp.parse_verdict(f"{prose}\nVerdict: [[{letter}]]") == letter.upper()


@given(st.text(max_size=300).filter(lambda t: "[[" not in t))
def test_parse_verdict_never_reads_prose_without_the_form(text: str) -> None:
    with pytest.raises(jp.JudgeParseError):
        jp.parse_verdict(text)


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
    assert jp.rationale_of("Fine.\n**Rating:** [[7]]") == "Fine."
    assert len(jp.rationale_of("word " * 1000)) <= jp.MAX_RATIONALE_CHARS
