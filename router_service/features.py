"""Request -> scored text and hand-crafted features.

Shared by serving and training so both see exactly the same inputs:

* ``messages_from_payload``: a prompt string or OpenAI ``messages`` -> normalised messages.
* ``scored_text``: messages -> the text the scorers read (last user turn, bounded).
* ``budget_text``: long text -> head + tail, so tokenization cost is bounded.
* ``handcrafted_features``: messages + scored text -> a small float vector.

Pure Python, no numpy, so it is cheap on the request path (~10 µs)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Text budget: the tokenizer costs ~1.25 µs per token, so the text is cut to a head
# and a tail *before* tokenization. The intent of a prompt is almost always stated in
# its first sentences or its last one; the middle of a pasted document adds cost, not signal.
HEAD_CHARS = 1000
TAIL_CHARS = 300
MAX_TOKENS = 256

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

_CODE_CHARS = frozenset("{}[]();=<>_$#/\\|`")
_MATH_CHARS = frozenset("+-*/^=√∑∫π≤≥≠×÷%")


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


def scored_text(messages: Sequence[Mapping[str, str]]) -> str:
    """Messages -> the bounded text both scorers read (the last user turn, head + tail)."""
    return budget_text(last_user_text(messages)).strip()


def handcrafted_features(messages: Sequence[Mapping[str, str]], text: str) -> list[float]:
    """Messages and their scored text -> ``len(FEATURE_NAMES)`` floats.

    ``text`` must be ``scored_text(messages)`` (already bounded), so the cost of this
    function does not grow with the prompt; only the total length uses the full text."""
    import math

    full_len = len(last_user_text(messages))
    n = max(len(text), 1)
    code = digits = maths = upper = non_ascii = 0
    for ch in text:
        if ch in _CODE_CHARS:
            code += 1
        if ch.isdigit():
            digits += 1
        if ch in _MATH_CHARS:
            maths += 1
        if ch.isupper():
            upper += 1
        if ord(ch) > 127:
            non_ascii += 1
    lines = text.split("\n")
    bullets = sum(1 for line in lines if line.lstrip()[:2] in ("- ", "* ", "1.", "2.", "3.", "• "))
    turns = sum(1 for m in messages if m.get("role") in ("user", "assistant"))
    has_system = any(m.get("role") in ("system", "developer") for m in messages)
    return [
        math.log1p(full_len),
        math.log1p(len(text.split())),
        float(min(turns, 20)),
        float(has_system),
        float(min(text.count("```"), 10)),
        code / n,
        digits / n,
        maths / n,
        float(min(text.count("?"), 10)),
        (len(lines) - 1) / n * 100.0,
        upper / n,
        non_ascii / n,
        float(min(bullets, 20)),
        float("http://" in text or "https://" in text),
    ]
