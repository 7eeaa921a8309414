"""Request -> scored text and hand-crafted features.

Shared by serving and training so both see exactly the same inputs:

* ``messages_from_payload``: a prompt string or OpenAI ``messages`` -> normalised messages.
* ``scored_text``: messages -> the text the scorers read (last user turn, bounded; a short
  follow-up is read after the head of the user turn before it).
* ``budget_text``: long text -> head + tail, so tokenization cost is bounded.
* ``handcrafted_features``: messages + scored text -> a small float vector.

Pure Python, no numpy, no per-character Python loop: the character classes are counted
with ``bytes.translate`` on the UTF-8 bytes and one regex, ~5 µs for a full budget."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Text budget: the tokenizer costs ~1.25 µs per token, so the text is cut to a head
# and a tail *before* tokenization. The intent of a prompt is almost always stated in
# its first sentences or its last one; the middle of a pasted document adds cost, not signal.
HEAD_CHARS = 1000
TAIL_CHARS = 300
MAX_TOKENS = 256
# Multi-turn view: a follow-up ("continue", "now in Python", "why?") often names no task of its
# own, so the scorers read a last user turn shorter than FOLLOW_UP_CHARS after the first
# CONTEXT_CHARS of the user turn before it; a turn that fills the budget alone is read alone.
# Hand-labelled later turns of ShareGPT conversations, learned intent accuracy: last turn alone
# 0.493, this view 0.535 (benchmarks/bench_multiturn.py, BENCHMARKS.md "Multi-turn").
FOLLOW_UP_CHARS = HEAD_CHARS + TAIL_CHARS
CONTEXT_CHARS = 300

# Version of ``handcrafted_features``' semantics. The manifest records it and the scorer
# refuses a model trained on another version, so an old model never silently gets inputs
# computed differently. 2: character classes counted on bytes (upper/digit ratios count
# ASCII letters/digits only; 1 counted Unicode ``isupper``/``isdigit`` too).
FEATURES_VERSION = 2

KNOWN_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

FEATURE_NAMES: tuple[str, ...] = (
    "log_chars_total",
    "log_words",
    "n_turns",
    "has_system",
    "code_fences",
    "code_symbol_ratio",
    "digit_ratio",
    "math_symbol_ratio",
    "question_marks",
    "newline_ratio",
    "upper_ratio",
    "non_ascii_ratio",
    "bullet_lines",
    "has_url",
)

_CODE_CHARS = "{}[]();=<>_$#/\\|`"
_MATH_ASCII = "+-*/^=%"
_MATH_NON_ASCII = "√∑∫π≤≥≠×÷"


def _class_table() -> bytes:
    """-> the ``bytes.translate`` table mapping each byte to its character class: b"c" code
    only, b"m" math only, b"b" both (``/`` and ``=``), b"d" digit, b"u" ASCII upper case,
    b"l" UTF-8 lead byte (0xC0-0xFF: one per non-ASCII character), b"." anything else."""
    code, maths = set(_CODE_CHARS.encode()), set(_MATH_ASCII.encode())
    out = bytearray(b"." * 256)
    for b in range(256):
        if b in code:
            out[b] = ord("b") if b in maths else ord("c")
        elif b in maths:
            out[b] = ord("m")
        elif 0x30 <= b <= 0x39:
            out[b] = ord("d")
        elif 0x41 <= b <= 0x5A:
            out[b] = ord("u")
        elif b >= 0xC0:
            out[b] = ord("l")
    return bytes(out)


_CLASSES = _class_table()
# ASCII text -> b" " where ``str.split`` splits (its ASCII whitespace), b"x" elsewhere, so
# the number of words is the number of b" x" (plus one if the text starts with b"x").
_WORD_MARKS = bytes(32 if chr(b).isspace() else 120 for b in range(128)) + b"x" * 128
# A line that (after leading whitespace) starts like a list item; matched on "\n" + text
# (a literal "\n" anchor scans ~4x faster than ``^`` with ``re.MULTILINE``).
_BULLET = re.compile(r"\n[^\S\n]*(?:- |\* |1\.|2\.|3\.|• )")


def content_text(content: Any) -> str:
    """OpenAI message ``content`` (str, list of parts, or None) -> its text.

    Text parts are joined with newlines; image/audio/file parts are skipped.
    Anything else is stringified rather than rejected: scoring never crashes."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        content = [content]
    if isinstance(content, Iterable):
        parts: list[str] = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(parts)
    return str(content)


def messages_from_payload(payload: str | Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """A prompt string or OpenAI-style messages -> ``[{"role", "content"}]`` with text content."""
    if isinstance(payload, str):
        return [{"role": "user", "content": payload}]
    out: list[dict[str, str]] = []
    for message in payload:
        role = str(message.get("role", "user"))
        out.append({"role": role, "content": content_text(message.get("content"))})
    return out


def last_user_text(messages: Sequence[Mapping[str, str]]) -> str:
    """The last user turn; falls back to the last non-empty turn of any role."""
    for message in reversed(messages):
        content = message.get("content", "")
        if message.get("role") == "user" and content and not content.isspace():
            return content
    for message in reversed(messages):
        content = message.get("content", "")
        if content and not content.isspace():
            return content
    return ""


def budget_text(text: str, head: int = HEAD_CHARS, tail: int = TAIL_CHARS) -> str:
    """Text of any length -> at most ``head + tail + 1`` characters (head, newline, tail)."""
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[-tail:]


def conversation_view(
    messages: Sequence[Mapping[str, str]],
    follow_up_chars: int = FOLLOW_UP_CHARS,
    context_chars: int = CONTEXT_CHARS,
) -> str:
    """Messages -> the last user turn, or, when it is shorter than ``follow_up_chars`` and an
    earlier user turn exists, the first ``context_chars`` of that turn, a newline and the
    last one (``follow_up_chars`` 0: the last user turn alone). Unbounded; see scored_text."""
    last = last_user_text(messages)
    if len(last) >= follow_up_chars:
        return last
    seen_last = False
    for message in reversed(messages):
        content = message.get("content", "")
        if message.get("role") != "user" or not content or content.isspace():
            continue
        if seen_last:
            return content[:context_chars].strip() + "\n" + last
        seen_last = True
    return last


def scored_text(messages: Sequence[Mapping[str, str]]) -> str:
    """Messages -> the bounded text both scorers read: ``conversation_view`` (the last user
    turn, with the head of the one before it when the last is a short follow-up), cut to
    head + tail by ``budget_text``."""
    return budget_text(conversation_view(messages)).strip()


def handcrafted_features(messages: Sequence[Mapping[str, str]], text: str) -> list[float]:
    """Messages and their scored text -> ``len(FEATURE_NAMES)`` floats (``FEATURES_VERSION``).

    ``text`` must be ``scored_text(messages)`` (already bounded), so the cost of this
    function does not grow with the prompt; only the total length uses the full text.
    Character classes are counted in C: one ``bytes.translate`` maps every byte to its class
    (code, math and digit characters, ASCII upper case; UTF-8 lead bytes = non-ASCII
    characters) and ``bytes.count`` counts each class."""
    full_len = len(last_user_text(messages))
    n = max(len(text), 1)
    raw = text.encode("utf-8", "surrogatepass")
    classes = raw.translate(_CLASSES)
    both = classes.count(b"b")
    code = classes.count(b"c") + both
    maths = classes.count(b"m") + both
    if len(raw) != len(text):  # some non-ASCII characters
        non_ascii = classes.count(b"l")
        maths += sum(text.count(ch) for ch in _MATH_NON_ASCII)
        words = len(text.split())
    else:  # ASCII: count the words in C without building them
        non_ascii = 0
        marks = raw.translate(_WORD_MARKS)
        words = marks.count(b" x") + marks.startswith(b"x")
    newlines = text.count("\n")
    turns = sum(1 for m in messages if m.get("role") in ("user", "assistant"))
    has_system = any(m.get("role") in ("system", "developer") for m in messages)
    return [
        math.log1p(full_len),
        math.log1p(words),
        float(min(turns, 20)),
        float(has_system),
        float(min(text.count("```"), 10)),
        code / n,
        classes.count(b"d") / n,
        maths / n,
        float(min(text.count("?"), 10)),
        newlines / n * 100.0,
        classes.count(b"u") / n,
        non_ascii / n,
        float(min(len(_BULLET.findall("\n" + text)), 20)),
        float("http://" in text or "https://" in text),
    ]
