"""handcrafted_features (byte-counting, FEATURES_VERSION 2) against a per-character reference."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from router_service.features import FEATURE_NAMES, handcrafted_features

CODE = set("{}[]();=<>_$#/\\|`")
MATH = set("+-*/^=√∑∫π≤≥≠×÷%")


def reference(text: str, full_len: int, turns: int, has_system: bool) -> list[float]:
    """The feature definitions written out one character at a time."""
    n = max(len(text), 1)
    lines = text.split("\n")
    bullets = sum(1 for ln in lines if ln.lstrip()[:2] in ("- ", "* ", "1.", "2.", "3.", "• "))
    return [
        math.log1p(full_len),
        math.log1p(len(text.split())),
        float(turns),
        float(has_system),
        float(min(text.count("```"), 10)),
        sum(c in CODE for c in text) / n,
        sum("0" <= c <= "9" for c in text) / n,
        sum(c in MATH for c in text) / n,
        float(min(text.count("?"), 10)),
        (len(lines) - 1) / n * 100.0,
        sum("A" <= c <= "Z" for c in text) / n,
        sum(ord(c) > 127 for c in text) / n,
        float(min(bullets, 20)),
        float("http://" in text or "https://" in text),
    ]


ALPHABET = "abcXYZ 019\n\t\r{}[]();=<>_$#/\\|`+-*/^=%?.*• éü√∑π≤ЖΩ١\u00a0\ud800"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=400))
def test_matches_the_per_character_definition(text: str) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]
    got = handcrafted_features(messages, text)
    want = reference(text, len(text) if text.strip() else len("be brief"), 1, True)
    assert len(got) == len(FEATURE_NAMES)
    for name, g, w in zip(FEATURE_NAMES, got, want, strict=True):
        assert math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-12), (name, g, w)


def test_known_values() -> None:
    text = "Fix THIS:\n- a = b[0] + 2?\n  * x√y ü\nsee https://x.io"
    values = handcrafted_features([{"role": "user", "content": text}], text)
    f = dict(zip(FEATURE_NAMES, values, strict=True))
    n = len(text)
    assert f["code_symbol_ratio"] == 5 / n  # = [ ] / /
    assert f["upper_ratio"] == 5 / n  # F T H I S (Unicode capitals are not counted)
    assert f["digit_ratio"] == 2 / n
    assert f["math_symbol_ratio"] == 7 / n  # - = + * √ / /
    assert f["non_ascii_ratio"] == 2 / n
    assert f["bullet_lines"] == 2.0
    assert f["newline_ratio"] == 3 / n * 100.0
    assert f["question_marks"] == 1.0 and f["has_url"] == 1.0


# ASCII only (the byte-level word count), with every character ``str.split`` treats as
# whitespace, including the information separators \x1c-\x1f.
ASCII_ALPHABET = "ab Z9 .,?-*{}\n\t\r\x0b\x0c\x1c\x1d\x1e\x1f\x00\x07"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ASCII_ALPHABET, max_size=200))
def test_ascii_text_matches_the_per_character_definition(text: str) -> None:
    got = handcrafted_features([{"role": "user", "content": text}], text)
    want = reference(text, len(text) if text.strip() else 0, 1, False)
    for name, g, w in zip(FEATURE_NAMES, got, want, strict=True):
        assert math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-12), (name, g, w)
