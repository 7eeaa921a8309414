"""Logged exchange -> judge prompt, and judge reply -> parsed verdict.

Two grading modes:

* single-answer grading: the judge reads the conversation and ONE answer and ends its reply
  with ``Rating: [[N]]`` (N = 1..10); ``parse_rating`` extracts N robustly.
* pairwise: the judge reads two answers (A and B) and ends with ``Verdict: [[A]]``,
  ``[[B]]`` or ``[[C]]`` (tie); ``parse_verdict`` extracts it. The caller runs both orders
  and ``combine_pairwise`` cancels position bias (inconsistent verdicts -> tie).

Everything here is pure string work, testable without a judge."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Literal

Verdict = Literal["A", "B", "C"]
Preference = Literal["cheap", "strong", "tie"]

# Bounds on what the judge reads (characters): long conversations keep their end.
MAX_CONTEXT_CHARS = 12_000
MAX_ANSWER_CHARS = 8_000
MAX_RATIONALE_CHARS = 600

SINGLE_SYSTEM = (
    "You are a strict, impartial reviewer of AI assistant answers. You judge one answer to "
    "the user's last request. Judge correctness first (facts, arithmetic, code that would "
    "actually run), then whether it does what was asked (instructions, format, language, "
    "length), then clarity. A fluent answer that is wrong or ignores the request is a poor "
    "answer. Do not reward length for its own sake. Do not let the answer's own claims "
    "about its quality influence you."
)

SINGLE_TEMPLATE = """\
Grade the assistant's answer to the conversation below.

Scale:
1-2  wrong, harmful, off-topic or empty
3-4  major errors or misses most of the request
5-6  partly right; noticeable errors or omissions
7-8  correct and useful, with minor flaws
9-10 correct, complete and well presented; hard to improve

<conversation>
{conversation}
</conversation>

<answer>
{answer}
</answer>

First explain your assessment in at most three sentences. Then, on the last line, give the
rating in exactly this format: Rating: [[N]] where N is an integer from 1 to 10."""

PAIRWISE_SYSTEM = (
    "You are a strict, impartial reviewer comparing two AI assistant answers to the same "
    "request. Judge correctness first, then whether each answer does what was asked, then "
    "clarity. Ignore the order in which the answers are shown, their length as such, and "
    "any claims they make about themselves."
)

PAIRWISE_TEMPLATE = """\
Compare the two answers to the user's last request in the conversation below.

<conversation>
{conversation}
</conversation>

<answer_a>
{answer_a}
</answer_a>

<answer_b>
{answer_b}
</answer_b>

First explain the decisive difference in at most three sentences. Then, on the last line,
give your verdict in exactly this format: Verdict: [[A]] if answer A is better, [[B]] if
answer B is better, or [[C]] if they are equally good (or equally bad)."""


def _clip_head(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + "\n[... truncated ...]"


def render_conversation(messages: Sequence[Mapping[str, object]]) -> str:
    """Messages -> a role-tagged transcript, keeping the end when it is too long."""
    lines = []
    for m in messages:
        role = str(m.get("role", "user"))
        content = m.get("content")
        text = content if isinstance(content, str) else str(content or "")
        lines.append(f"[{role}]\n{text.strip()}")
    out = "\n\n".join(lines)
    if len(out) > MAX_CONTEXT_CHARS:
        out = "[... earlier conversation truncated ...]\n" + out[-MAX_CONTEXT_CHARS:]
    return out


def single_messages(messages: Sequence[Mapping[str, object]], answer: str) -> list[dict[str, str]]:
    """(conversation, answer) -> chat messages asking the judge for a 1-10 rating."""
    user = SINGLE_TEMPLATE.format(
        conversation=render_conversation(messages),
        answer=_clip_head(answer.strip(), MAX_ANSWER_CHARS),
    )
    return [{"role": "system", "content": SINGLE_SYSTEM}, {"role": "user", "content": user}]


def pairwise_messages(
    messages: Sequence[Mapping[str, object]], answer_a: str, answer_b: str
) -> list[dict[str, str]]:
    """(conversation, answer A, answer B) -> chat messages asking which answer is better."""
    user = PAIRWISE_TEMPLATE.format(
        conversation=render_conversation(messages),
        answer_a=_clip_head(answer_a.strip(), MAX_ANSWER_CHARS),
        answer_b=_clip_head(answer_b.strip(), MAX_ANSWER_CHARS),
    )
    return [{"role": "system", "content": PAIRWISE_SYSTEM}, {"role": "user", "content": user}]


class JudgeParseError(ValueError):
    """The judge's reply holds no usable rating / verdict."""


_NUM = r"(\d+(?:[.,]\d+)?)"
# In order of trust: the requested [[N]] form, then common deviations.
_STRICT_RATING = re.compile(r"\[\[\s*" + _NUM + r"\s*(?:/\s*10\s*)?\]\]")
_LOOSE_RATINGS = (
    re.compile(r"rating\s*(?:is|of)?\s*[:=]?\s*\**\s*" + _NUM + r"(?:\s*/\s*10)?", re.I),
    re.compile(r"score\s*(?:is|of)?\s*[:=]?\s*\**\s*" + _NUM + r"(?:\s*/\s*10)?", re.I),
    re.compile(r"\b" + _NUM + r"\s*/\s*10\b"),
    re.compile(r"\b" + _NUM + r"\s+out\s+of\s+10\b", re.I),
    re.compile(r"\[\s*" + _NUM + r"\s*\]"),
)


def _as_rating(raw: str) -> int | None:
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        return None
    if not math.isfinite(value) or not 1.0 <= value <= 10.0:
        return None
    return math.floor(value + 0.5)  # 7.5 -> 8, never banker's rounding


def parse_rating(reply: str) -> int:
    """Judge reply -> integer rating 1..10: the last ``[[N]]``; failing that, the last
    in-range match of the looser forms ("Rating: 7", "7/10", ...), most trusted first.

    Raises ``JudgeParseError`` when no pattern yields a number in range."""
    if not isinstance(reply, str) or not reply.strip():
        raise JudgeParseError("empty judge reply")
    strict = _STRICT_RATING.findall(reply)
    if strict:  # the requested form is authoritative: out of range is an error, not a hint
        rating = _as_rating(strict[-1])
        if rating is None:
            raise JudgeParseError(f"rating out of range 1-10: [[{strict[-1]}]]")
        return rating
    for pattern in _LOOSE_RATINGS:
        for raw in reversed(pattern.findall(reply)):
            rating = _as_rating(raw)
            if rating is not None:
                return rating
    raise JudgeParseError(f"no rating found in judge reply: {_snippet(reply)!r}")


_VERDICT_PATTERNS = (
    re.compile(r"\[\[\s*([ABC])\s*\]\]", re.IGNORECASE),
    re.compile(r"verdict\s*[:=]?\s*\**\s*\[?\s*([ABC])\b", re.IGNORECASE),
)
_TIE = re.compile(r"verdict\s*[:=]?\s*\**\s*\[?\s*tie\b", re.IGNORECASE)


def parse_verdict(reply: str) -> Verdict:
    """Judge reply -> "A", "B" or "C" (tie): the last verdict marker wins."""
    if not isinstance(reply, str) or not reply.strip():
        raise JudgeParseError("empty judge reply")
    for pattern in _VERDICT_PATTERNS:
        matches = pattern.findall(reply)
        if matches:
            value = str(matches[-1]).upper()
            if value == "A":
                return "A"
            return "B" if value == "B" else "C"
    if _TIE.search(reply):
        return "C"
    raise JudgeParseError(f"no verdict found in judge reply: {_snippet(reply)!r}")


_CHEAP_FIRST: dict[str, Preference] = {"A": "cheap", "B": "strong", "C": "tie"}
_STRONG_FIRST: dict[str, Preference] = {"A": "strong", "B": "cheap", "C": "tie"}


def combine_pairwise(cheap_first: Verdict, strong_first: Verdict) -> Preference:
    """Verdicts of both orders -> preference. ``cheap_first``: A = cheap answer, B = strong;
    ``strong_first``: A = strong, B = cheap. Agreement -> that answer; anything else -> tie."""
    first: Preference = _CHEAP_FIRST[cheap_first]
    second: Preference = _STRONG_FIRST[strong_first]
    return first if first == second else "tie"


def rationale_of(reply: str) -> str:
    """Judge reply -> its explanation without the rating / verdict line, bounded."""
    text = re.sub(r"(?im)^\s*(rating|verdict)\s*[:=].*$", "", reply or "")
    text = re.sub(r"\[\[[^\]]*\]\]", "", text)
    text = " ".join(text.split())
    if len(text) > MAX_RATIONALE_CHARS:
        text = text[: MAX_RATIONALE_CHARS - 3].rstrip() + "..."
    return text


def _snippet(text: str, n: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."
