"""The fast WordPiece path must give exactly the ids of the ``tokenizers`` pipeline."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from router_service.features import MAX_TOKENS, budget_text
from router_service.wordpiece import FastWordPiece, tokenizable

TOKENIZER = Path(__file__).resolve().parents[1] / "models" / "default" / "tokenizer.json"


@pytest.fixture(scope="module")
def tokenizers_pair() -> tuple[Tokenizer, FastWordPiece]:
    tok = Tokenizer.from_file(str(TOKENIZER))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    return tok, FastWordPiece(tok, MAX_TOKENS)


def reference(tok: Tokenizer, text: str) -> list[int]:
    """The full pipeline; lone surrogates (invalid UTF-8) are encoded as "?", as the scorer
    and training do."""
    return list(tok.encode(tokenizable(text), add_special_tokens=False).ids)


CASES = [
    "",
    "   ",
    "Hello, World!",
    "def f(x):\n\treturn x**2  # square\r\n",
    "SELECT * FROM users WHERE id=42;",
    "naïve café résumé",  # non-ASCII pieces: tokenized one by one
    "日本語のテキスト and English",
    "don’t “quote” me\u00a0on\u3000that — ok?",  # non-ASCII punctuation and whitespace
    "a [UNK] token and [PAD] too",  # added tokens: full pipeline
    "bell\x07 and null\x00 chars",  # control characters are deleted, as BERT does
    "sep\x1carated\x85by\x0bcontrols\x1f",  # Python whitespace that BERT deletes
    "lone \ud800 surrogate and café",
    "zero\u200bwidth\ufeff and soft\u00adhyphen",
    "x" * 150 + " supercalifragilisticexpialidocious",  # over max_input_chars_per_word
    "word " * 400,  # truncation at MAX_TOKENS
    "emoji 🙂 mixed",
]


@pytest.mark.parametrize("text", CASES)
def test_known_cases_match_tokenizers(tokenizers_pair, text: str) -> None:
    tok, fast = tokenizers_pair
    assert fast.ids(text) == reference(tok, text)[:MAX_TOKENS]


def test_fast_path_is_taken_unless_an_added_token_appears(tokenizers_pair) -> None:
    _, fast = tokenizers_pair
    assert fast.fast_path_applies("Explain how TCP handshakes work, step by step.")
    assert fast.fast_path_applies("naïve")
    assert fast.fast_path_applies("tab\x0bvertical")
    assert not fast.fast_path_applies("a [UNK] b")


def test_tokens_are_cached_whole_and_long_ones_are_not(tokenizers_pair) -> None:
    tok, _ = tokenizers_pair
    fast = FastWordPiece(tok, MAX_TOKENS)
    url = "https://example.com/" + "a" * 40
    text = f"it’s a café\u00a0naïve 日本 ok, OK, {url}"
    assert fast.ids(text) == reference(tok, text)
    cached = set(fast._tokens)
    assert {"it’s", "café", "naïve", "日本", "ok,", "OK,"} <= cached
    assert url not in cached


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
    assert fast.ids(text) == reference(tok, text)[:MAX_TOKENS]


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


# Characters where a hand-written BERT pipeline usually goes wrong: every kind of whitespace
# Python and BERT disagree on, control and format characters, accents (precomposed and
# combining), ligatures, CJK, emoji, typographic punctuation.
TRICKY = list(
    " \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2003\u2028\u202f\u3000"
    "\x00\x07\x7f\x9f\u200b\u200d\ufeff\u00ad\ufffd"
    "aZ9.,-'([])ée\u0301ñÅßİﬁ日本語한국😀🙂’“”—…"
)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.one_of(st.sampled_from(TRICKY), st.characters()), max_size=120))
def test_tricky_unicode_matches_tokenizers(tokenizers_pair, text: str) -> None:
    tok, fast = tokenizers_pair
    assert fast.ids(text) == reference(tok, text)[:MAX_TOKENS]


def test_sharegpt_prompts_match_tokenizers(tokenizers_pair) -> None:
    """Every real ShareGPT first turn (budgeted as the scorer reads it), ASCII or not."""
    sharegpt = pytest.importorskip("training.data.sharegpt")
    tok, fast = tokenizers_pair
    texts = [budget_text(t).strip() for t in sharegpt.first_human_turns().values()]
    assert len(texts) > 10_000
    expected = [e.ids[:MAX_TOKENS] for e in tok.encode_batch(texts, add_special_tokens=False)]
    mismatched = [t for t, e in zip(texts, expected, strict=True) if fast.ids(t) != e]
    assert mismatched == []
