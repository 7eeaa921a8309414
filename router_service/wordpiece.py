"""Text -> WordPiece token ids, identical to ``tokenizers`` but ~5x faster on ASCII text.

The static embedding only needs ids, and the ``tokenizers`` pipeline (BERT normalizer,
pre-tokenizer, WordPiece, offsets bookkeeping) costs ~1.25 µs per token — most of the
decision budget on long prompts. For ASCII text without control characters the BERT
normalizer and pre-tokenizer reduce to "lowercase, then split into runs of letters/digits
and single punctuation characters", which one regex does in C. Each resulting word is
mapped through the tokenizer's own WordPiece model once and cached, so the ids are the
same as ``Tokenizer.encode(text, add_special_tokens=False).ids[:max_tokens]`` by
construction (a test checks it on thousands of real prompts and random strings).
Anything else (a tokenizer that is not uncased BERT WordPiece, non-ASCII text, control
characters, text containing an added token such as ``[UNK]``) goes through the full
tokenizer."""

from __future__ import annotations

import json
import re

from tokenizers import Tokenizer

# BERT's pre-tokenizer on lowercased ASCII: words of [a-z0-9], every other printable
# character is punctuation and stands alone, whitespace separates.
_ASCII_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
# What BERT's clean_text removes (control characters other than \t \n \r).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_CACHED_WORDS = 200_000


def tokenizable(text: str) -> str:
    """Text -> text the tokenizer accepts: lone surrogates (invalid UTF-8) become "?".

    Identity for every valid string; training applies it to all texts, serving only after
    the tokenizer rejected one, which gives the same ids at no cost on the hot path."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8", "replace")


def bert_uncased(tokenizer: Tokenizer) -> bool:
    """Whether the tokenizer is an uncased BERT WordPiece pipeline (the fast path's premise)."""
    spec = json.loads(tokenizer.to_str())
    normalizer = spec.get("normalizer") or {}
    pre_tokenizer = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    return (
        normalizer.get("type") == "BertNormalizer"
        and normalizer.get("clean_text") is True
        and normalizer.get("lowercase") is True
        and pre_tokenizer.get("type") == "BertPreTokenizer"
        and model.get("type") == "WordPiece"
    )


class FastWordPiece:
    """``ids(text)`` -> the tokenizer's ids (no special tokens), truncated to ``max_tokens``."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self._model = tokenizer.model
        self._added = tuple(
            tok.content for tok in tokenizer.get_added_tokens_decoder().values() if tok.content
        )
        self._cache: dict[str, list[int]] = {}
        self.enabled = bert_uncased(tokenizer)  # any other pipeline: always the full path

    def _word_ids(self, word: str) -> list[int]:
        ids = self._cache.get(word)
        if ids is None:
            ids = [token.id for token in self._model.tokenize(word)]
            if len(self._cache) < MAX_CACHED_WORDS:
                self._cache[word] = ids
        return ids

    def fast_path_applies(self, text: str) -> bool:
        return (
            self.enabled
            and text.isascii()
            and _CONTROL.search(text) is None
            and not any(tok in text for tok in self._added)
        )

    def ids(self, text: str) -> list[int]:
        if not self.fast_path_applies(text):
            return self.slow_ids(text)
        out: list[int] = []
        cache = self._cache
        limit = self.max_tokens
        for word in _ASCII_WORDS.findall(text.lower()):
            ids = cache.get(word) or self._word_ids(word)
            out.extend(ids)
            if len(out) >= limit:
                return out[:limit]
        return out

    def slow_ids(self, text: str) -> list[int]:
        """The reference path: the full ``tokenizers`` pipeline."""
        try:
            encoding = self.tokenizer.encode(text, add_special_tokens=False)
        except Exception:  # lone surrogates (invalid UTF-8): encode a cleaned copy
            encoding = self.tokenizer.encode(tokenizable(text), add_special_tokens=False)
        return list(encoding.ids[: self.max_tokens])
