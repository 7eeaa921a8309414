"""The fast WordPiece path must give exactly the ids of the ``tokenizers`` pipeline."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from router_service.features import MAX_TOKENS, budget_text
from router_service.wordpiece import FastWordPiece

TOKENIZER = Path(__file__).resolve().parents[1] / "models" / "default" / "tokenizer.json"


@pytest.fixture(scope="module")
def tokenizers_pair() -> tuple[Tokenizer, FastWordPiece]:
    tok = Tokenizer.from_file(str(TOKENIZER))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok, FastWordPiece(tok, MAX_TOKENS)


def reference(tok: Tokenizer, text: str) -> list[int]:
    return list(tok.encode(text, add_special_tokens=False).ids)


CASES = [
    "",
    "   ",
    "Hello, World!",
    "def f(x):\n\treturn x**2  # square\r\n",
    "SELECT * FROM users WHERE id=42;",
    "naïve café résumé",  # non-ASCII: full pipeline
    "日本語のテキスト and English",
    "a [UNK] token and [PAD] too",  # added tokens: full pipeline
    "bell\x07 and null\x00 chars",  # control characters: full pipeline
    "x" * 150 + " supercalifragilisticexpialidocious",  # over max_input_chars_per_word
    "word " * 400,  # truncation at MAX_TOKENS
    "emoji 🙂 mixed",
]


@pytest.mark.parametrize("text", CASES)
def test_known_cases_match_tokenizers(tokenizers_pair, text: str) -> None:
    tok, fast = tokenizers_pair
    assert fast.ids(text) == reference(tok, text)[:MAX_TOKENS]


def test_fast_path_is_taken_for_plain_ascii(tokenizers_pair) -> None:
    _, fast = tokenizers_pair
    assert fast.fast_path_applies("Explain how TCP handshakes work, step by step.")
    assert not fast.fast_path_applies("naïve")
    assert not fast.fast_path_applies("a [UNK] b")
    assert not fast.fast_path_applies("tab\x0bvertical")


def test_other_tokenizer_pipelines_always_take_the_full_path() -> None:
    from tokenizers import models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab={"[UNK]": 0, "Hello": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = FastWordPiece(tok, MAX_TOKENS)
    assert not fast.fast_path_applies("Hello world")
    assert fast.ids("Hello world") == [1, 0]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=string.printable, max_size=300))
def test_random_ascii_matches_tokenizers(tokenizers_pair, text: str) -> None:
    tok, fast = tokenizers_pair
    assert fast.ids(text) == reference(tok, text)[:MAX_TOKENS]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_unicode_matches_tokenizers(tokenizers_pair, text: str) -> None:
    tok, fast = tokenizers_pair
    try:
        expected = reference(tok, text)[:MAX_TOKENS]
    except Exception:  # lone surrogates: the scorer tokenizes a cleaned copy
        expected = fast.slow_ids(text)
    assert fast.ids(text) == expected


def test_real_prompts_match_tokenizers(tokenizers_pair) -> None:
    tok, fast = tokenizers_pair
    data = Path(__file__).resolve().parents[1] / "data" / "prompts"
    import json

    texts = []
    for path in sorted(data.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            prompt = row.get("prompt") or row["messages"][-1]["content"]
            texts.append(budget_text(prompt))
    assert len(texts) > 1000
    mismatched = [t for t in texts if fast.ids(t) != reference(tok, t)[:MAX_TOKENS]]
    assert mismatched == []
